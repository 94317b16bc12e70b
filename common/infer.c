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

void tk_infer_load(struct tk_model *m, const char *path)
{
	if (access(path, R_OK) < 0)
		die_io("cannot read model %s:", path);
	char err[1024];
	if (tk_model_load(m, path, err, sizeof err) < 0)
		die_data("%s", err);
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		const float *x = m->data + p->offset;
		for (size_t j = 0; j < p->numel; j++)
			if (!isfinite(x[j]))
				die_data("%s: tensor '%s' holds %g at element %zu", path,
					 p->name, x[j], j);
	}
}

void tk_model_release(struct tk_model *m, const char *const *keep)
{
	long page = sysconf(_SC_PAGESIZE);
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		int kept = 0;
		for (const char *const *k = keep; *k && !kept; k++)
			kept = strncmp(p->name, *k, strlen(*k)) == 0;
		if (kept)
			continue;
		/* Only whole pages inside the tensor: its neighbours stay. */
		uintptr_t a = (uintptr_t)(m->data + p->offset);
		uintptr_t e = a + p->numel * sizeof(float);
		a = (a + page - 1) & ~(uintptr_t)(page - 1);
		e &= ~(uintptr_t)(page - 1);
		if (e > a)
			madvise((void *)a, e - a, MADV_DONTNEED);
	}
}

size_t tk_peak_rss(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	if (!fp)
		return 0;
	char line[256];
	size_t kb = 0;
	while (fgets(line, sizeof line, fp))
		if (sscanf(line, "VmHWM: %zu kB", &kb) == 1)
			break;
	fclose(fp);
	return kb * 1024;
}
