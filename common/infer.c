/* infer.c - model loading for inference, weight release, memory. */
#define _GNU_SOURCE
#include "infer.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stream.h"
#include "tk.h"

const char *tk_model_path(const char *opt)
{
	if (opt && *opt)
		return opt;
	const char *env = getenv("TK_MODEL");
	if (env && *env)
		return env;
	die_usage("no model: give --model FILE or set TK_MODEL");
}

static int kept(const char *name, const char *const *keep)
{
	for (const char *const *k = keep; *k; k++)
		if (strncmp(name, *k, strlen(*k)) == 0)
			return 1;
	return 0;
}

/* Give back the whole pages inside [p, p + n). */
static void drop_pages(const void *p, size_t n)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t e = ((uintptr_t)p + n) & ~(page - 1);
	if (e > a)
		madvise((void *)a, e - a, MADV_DONTNEED);
}

void tk_infer_load(struct tk_model *m, const char *path,
		   const char *const *keep)
{
	if (access(path, R_OK) < 0)
		die_io("cannot read model %s:", path);
	char err[1024], what[768];
	struct tk_mapped map;
	struct st_doc d;
	st_init(&d);
	if (tk_map_file(path, &map, &d, err, sizeof err) < 0)
		die_data("%s", err);
	/* tk_model_from_doc checks every name, shape and dtype and builds
	 * the table; it runs on a view of the file whose tensors all read
	 * zeros from one untouched anonymous mapping (the kernel's zero
	 * page), so that it costs no file pages. */
	size_t most = 1;
	for (int i = 0; i < d.n; i++)
		most = d.t[i].nbytes > most ? d.t[i].nbytes : most;
	void *zero = mmap(NULL, most, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (zero == MAP_FAILED)
		die_io("mmap:");
	struct st_tensor *real = d.t;
	d.t = xmalloc(xmul(d.n ? d.n : 1, sizeof *d.t));
	memcpy(d.t, real, d.n * sizeof *d.t);
	for (int i = 0; i < d.n; i++)
		d.t[i].data = zero;
	int rc = tk_model_from_doc(m, &d, what, sizeof what);
	free(d.t);
	d.t = real;
	munmap(zero, most);
	if (rc < 0)
		die_data("%s: %s", path, what);
	if (m->arch.backbone_only)
		die_data("%s: holds a backbone only (tk-init --backbone makes a "
			 "model from it)",
			 path);
	/* Then the values, file page by file page. */
	for (int i = 0; i < d.n; i++) {
		const struct st_tensor *t = &d.t[i];
		const struct tk_param *p = tk_model_param(m, t->name);
		if (p && kept(t->name, keep)) {
			float *x = m->data + p->offset;
			size_t n = st_numel(t);
			if (t->dtype == ST_F32)
				memcpy(x, t->data, n * sizeof *x);
			else
				for (size_t j = 0; j < n; j++)
					x[j] = (float)st_get(t, j);
			for (size_t j = 0; j < n; j++)
				if (!isfinite(x[j]))
					die_data("%s: tensor '%s' holds %g at element %zu",
						 path, p->name, x[j], j);
		}
		drop_pages(t->data, t->nbytes);
	}
	st_free(&d);
	tk_unmap_file(&map);
	tk_model_release(m, keep);
}

void tk_model_release(struct tk_model *m, const char *const *keep)
{
	for (int i = 0; i < m->n; i++)
		if (!kept(m->p[i].name, keep))
			drop_pages(m->data + m->p[i].offset,
				   m->p[i].numel * sizeof(float));
}

static size_t status_kb(const char *key)
{
	FILE *fp = fopen("/proc/self/status", "r");
	if (!fp)
		return 0;
	char line[256];
	size_t kb = 0, n = strlen(key);
	while (fgets(line, sizeof line, fp))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			kb = strtoull(line + n + 1, NULL, 10);
			break;
		}
	fclose(fp);
	return kb * 1024;
}

size_t tk_peak_rss(void)
{
	return status_kb("VmHWM");
}

size_t tk_rss(void)
{
	return status_kb("VmRSS");
}
