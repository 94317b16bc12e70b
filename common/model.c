/* model.c - the model table: names and shapes of the reference Token model
 * for an architecture, one allocation, loading and saving. */
#define _GNU_SOURCE
#include "model.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "tk.h"

/* ---- architecture ---- */

static const struct {
	const char *key;
	size_t off;
	int is_float;
} arch_fields[] = {
	{"depth", offsetof(struct tk_arch, depth), 0},
	{"width", offsetof(struct tk_arch, width), 0},
	{"mid_dim", offsetof(struct tk_arch, mid_dim), 0},
	{"tokens", offsetof(struct tk_arch, tokens), 0},
	{"heads", offsetof(struct tk_arch, heads), 0},
	{"encoder_layers", offsetof(struct tk_arch, enc_layers), 0},
	{"decoder_layers", offsetof(struct tk_arch, dec_layers), 0},
	{"out_dim", offsetof(struct tk_arch, out_dim), 0},
	{"classes", offsetof(struct tk_arch, classes), 0},
	{"arcface_s", offsetof(struct tk_arch, arc_s), 1},
	{"arcface_m", offsetof(struct tk_arch, arc_m), 1},
};
#define NFIELDS (sizeof arch_fields / sizeof *arch_fields)

static int set_field(struct tk_arch *a, const char *key, const char *val,
		     char *err, size_t errlen)
{
	for (size_t i = 0; i < NFIELDS; i++) {
		if (strcmp(arch_fields[i].key, key) != 0)
			continue;
		char *end;
		double v = strtod(val, &end);
		if (end == val || *end || !isfinite(v))
			return tk_errf(err, errlen, "architecture: %s='%s' is not a number",
				    key, val);
		if (arch_fields[i].is_float) {
			if (!(fabs(v) <= FLT_MAX)) /* else it would become inf */
				return tk_errf(err, errlen,
					    "architecture: %s='%s' is beyond a float's range",
					    key, val);
			*(float *)((char *)a + arch_fields[i].off) = (float)v;
		} else {
			if (v != floor(v) || v < 0 || v > 1e9)
				return tk_errf(err, errlen,
					    "architecture: %s='%s' is not a count",
					    key, val);
			*(int *)((char *)a + arch_fields[i].off) = (int)v;
		}
		return 0;
	}
	return tk_errf(err, errlen, "architecture: unknown field '%s'", key);
}

/* Bounds keep every size computed from an architecture far from int
 * overflow, whatever a file's metadata says. */
static const struct {
	const char *key;
	size_t off;
	int lo, hi;
} arch_bounds[] = {
	{"width", offsetof(struct tk_arch, width), 1, 1024},
	{"mid_dim", offsetof(struct tk_arch, mid_dim), 1, 65536},
	{"tokens", offsetof(struct tk_arch, tokens), 1, 1024},
	{"heads", offsetof(struct tk_arch, heads), 1, 65536},
	{"encoder_layers", offsetof(struct tk_arch, enc_layers), 0, 64},
	{"decoder_layers", offsetof(struct tk_arch, dec_layers), 0, 64},
	{"out_dim", offsetof(struct tk_arch, out_dim), 1, 65536},
	{"classes", offsetof(struct tk_arch, classes), 0, 1 << 24},
};

static int check_arch(const struct tk_arch *a, char *err, size_t errlen)
{
	if (a->depth != 50 && a->depth != 101)
		return tk_errf(err, errlen, "architecture: depth %d (50 or 101)",
			    a->depth);
	size_t nb = a->backbone_only ? 1 : sizeof arch_bounds / sizeof *arch_bounds;
	for (size_t i = 0; i < nb; i++) {
		int v = *(const int *)((const char *)a + arch_bounds[i].off);
		if (v < arch_bounds[i].lo || v > arch_bounds[i].hi)
			return tk_errf(err, errlen,
				    "architecture: %s %d is outside [%d, %d]",
				    arch_bounds[i].key, v, arch_bounds[i].lo,
				    arch_bounds[i].hi);
	}
	if (a->backbone_only)
		return 0;
	if (a->mid_dim % a->heads)
		return tk_errf(err, errlen,
			    "architecture: mid_dim %d is not a multiple of %d heads",
			    a->mid_dim, a->heads);
	if (!(a->arc_s > 0) || !(a->arc_m >= 0))
		return tk_errf(err, errlen,
			    "architecture: ArcFace s %g must be > 0 and m %g >= 0",
			    (double)a->arc_s, (double)a->arc_m);
	return 0;
}

int tk_arch_parse(struct tk_arch *a, const char *spec, char *err, size_t errlen)
{
	memset(a, 0, sizeof *a);
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	if (n == 3 && strncmp(spec, "r50", 3) == 0)
		a->depth = 50;
	else if (n == 4 && strncmp(spec, "r101", 4) == 0)
		a->depth = 101;
	else
		return tk_errf(err, errlen, "unknown architecture '%.*s' (r50, r101)",
			    (int)n, spec);
	a->width = 64;
	a->mid_dim = 1024;
	a->tokens = 4;
	a->heads = 8;
	a->enc_layers = 1;
	a->dec_layers = 2;
	a->out_dim = 1024;
	a->classes = 0;
	a->arc_m = 0.2f;
	int have_s = 0;
	if (colon) {
		char *list = xstrdup(colon + 1), *save = NULL;
		for (char *kv = strtok_r(list, ",", &save); kv;
		     kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');
			if (!eq) {
				tk_errf(err, errlen,
				     "architecture: '%s' is not key=value", kv);
				free(list);
				return -1;
			}
			*eq = 0;
			have_s |= strcmp(kv, "arcface_s") == 0;
			if (set_field(a, kv, eq + 1, err, errlen) < 0) {
				free(list);
				return -1;
			}
		}
		free(list);
	}
	if (!have_s)
		a->arc_s = sqrtf((float)a->out_dim);
	return check_arch(a, err, errlen);
}

void tk_arch_to_meta(const struct tk_arch *a, struct st_doc *d)
{
	st_meta_set(d, "format", a->backbone_only ? "tk-backbone" : "tk-model");
	st_meta_set(d, "backbone", a->depth == 50 ? "resnet50" : "resnet101");
	/* A backbone alone: depth and width are its whole architecture. */
	size_t nf = a->backbone_only ? 2 : NFIELDS;
	for (size_t i = 0; i < nf; i++) {
		const char *p = (const char *)a + arch_fields[i].off;
		if (arch_fields[i].is_float)
			st_meta_setf(d, arch_fields[i].key, "%.9g",
				     (double)*(const float *)p);
		else
			st_meta_setf(d, arch_fields[i].key, "%d", *(const int *)p);
	}
}

const char *tk_meta_format(const struct st_doc *d)
{
	const char *format = st_meta_get(d, "format");
	return format && strncmp(format, "tk-", 3) == 0 ? format : NULL;
}

int tk_arch_from_meta(struct tk_arch *a, const struct st_doc *d, char *err,
		      size_t errlen)
{
	memset(a, 0, sizeof *a);
	const char *format = st_meta_get(d, "format");
	/* Other formats (checkpoints) are models with more beside them. */
	if (format && strcmp(format, "tk-backbone") == 0)
		a->backbone_only = 1;
	/* A state_dict that another program saved as safetensors (Hugging
	 * Face's save_file writes "format": "pt"). */
	if (!tk_meta_format(d))
		return tk_errf(err, errlen,
			    "no tk architecture in its metadata (format %s%s%s): "
			    "another program's safetensors? tk-import converts "
			    "a state_dict",
			    format ? "'" : "", format ? format : "absent",
			    format ? "'" : "");
	size_t nf = a->backbone_only ? 2 : NFIELDS;
	for (size_t i = 0; i < nf; i++) {
		const char *v = st_meta_get(d, arch_fields[i].key);
		if (!v)
			return tk_errf(err, errlen,
				    "no architecture: metadata key '%s' is missing",
				    arch_fields[i].key);
		if (set_field(a, arch_fields[i].key, v, err, errlen) < 0)
			return -1;
	}
	return check_arch(a, err, errlen);
}

/* ---- the table ---- */

static const char *xname(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *xname(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		die_io("tensor name too long");
	return buf;
}

struct builder {
	struct tk_model *m;
	int cap;
};

static void add(struct builder *b, enum tk_param_kind kind, int rank,
		const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(struct builder *b, enum tk_param_kind kind, int rank,
		const int64_t *shape, const char *fmt, ...)
{
	struct tk_model *m = b->m;
	if (m->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 256;
		m->p = xrealloc(m->p, xmul(b->cap, sizeof *m->p));
	}
	struct tk_param *p = &m->p[m->n++];
	memset(p, 0, sizeof *p);
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&p->name, fmt, ap) < 0)
		die_io("out of memory");
	va_end(ap);
	p->kind = kind;
	p->rank = rank;
	p->numel = 1;
	for (int i = 0; i < rank; i++) {
		p->shape[i] = shape[i];
		p->numel *= (size_t)shape[i];
	}
	p->offset = m->numel;
	m->numel += tk_param_slot(p->numel);
	const char *dot = strrchr(p->name, '.');
	p->decay = kind == TK_PARAM && rank > 1 && !(dot && strcmp(dot, ".bias") == 0);
}

#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static void conv(struct builder *b, int cout, int cin, int k, int bias,
		 const char *name)
{
	add(b, TK_PARAM, SHAPE(cout, cin, k, k), "%s.weight", name);
	if (bias)
		add(b, TK_PARAM, SHAPE(cout), "%s.bias", name);
}

static void batchnorm(struct builder *b, int c, const char *name)
{
	add(b, TK_PARAM, SHAPE(c), "%s.weight", name);
	add(b, TK_PARAM, SHAPE(c), "%s.bias", name);
	add(b, TK_BUFFER, SHAPE(c), "%s.running_mean", name);
	add(b, TK_BUFFER, SHAPE(c), "%s.running_var", name);
	add(b, TK_COUNTER, 0, NULL, "%s.num_batches_tracked", name);
}

static void linear(struct builder *b, int out, int in, const char *name)
{
	add(b, TK_PARAM, SHAPE(out, in), "%s.weight", name);
	add(b, TK_PARAM, SHAPE(out), "%s.bias", name);
}

static void layernorm(struct builder *b, int c, const char *name)
{
	add(b, TK_PARAM, SHAPE(c), "%s.weight", name);
	add(b, TK_PARAM, SHAPE(c), "%s.bias", name);
}

static void attention(struct builder *b, int d, const char *prefix)
{
	static const char *const parts[] = {"q", "k", "v", "proj"};
	char name[128];
	for (int i = 0; i < 4; i++) {
		xname(name, sizeof name, "%s.%s", prefix, parts[i]);
		linear(b, d, d, name);
	}
}

/* ResNet stage sizes (torchvision Bottleneck, stride in the 3x3 conv). */
static const int blocks50[4] = {3, 4, 6, 3}, blocks101[4] = {3, 4, 23, 3};

static const char *block_name(char *buf, size_t len, int stage, int i,
			      const char *part)
{
	return xname(buf, len, "backbone.block%d.%d.%s", stage, i, part);
}

static void backbone(struct builder *b, const struct tk_arch *a)
{
	int w = a->width;
	const int *nb = a->depth == 50 ? blocks50 : blocks101;
	char n[128];
	conv(b, w, 3, 7, 0, "backbone.block1.0");
	batchnorm(b, w, "backbone.block1.1");
	int cin = w;
	for (int s = 0; s < 4; s++) {
		int planes = w << s, cout = planes * 4, st = s + 2;
		for (int i = 0; i < nb[s]; i++) {
			conv(b, planes, cin, 1, 0, block_name(n, sizeof n, st, i, "conv1"));
			batchnorm(b, planes, block_name(n, sizeof n, st, i, "bn1"));
			conv(b, planes, planes, 3, 0, block_name(n, sizeof n, st, i, "conv2"));
			batchnorm(b, planes, block_name(n, sizeof n, st, i, "bn2"));
			conv(b, cout, planes, 1, 0, block_name(n, sizeof n, st, i, "conv3"));
			batchnorm(b, cout, block_name(n, sizeof n, st, i, "bn3"));
			if (i == 0) {
				conv(b, cout, cin, 1, 0,
				     block_name(n, sizeof n, st, i, "downsample.0"));
				batchnorm(b, cout,
					  block_name(n, sizeof n, st, i, "downsample.1"));
			}
			cin = cout;
		}
	}
}

static void token_head(struct builder *b, const struct tk_arch *a)
{
	int d = a->mid_dim;
	char name[128];
	conv(b, d, 32 * a->width, 1, 1, "tr.conv.0");
	batchnorm(b, d, "tr.conv.1");
	for (int l = 0; l < a->enc_layers; l++) {
		xname(name, sizeof name, "tr.encoder.%d.attn", l);
		attention(b, d, name);
		xname(name, sizeof name, "tr.encoder.%d.bn", l);
		batchnorm(b, d, name);
		xname(name, sizeof name, "tr.encoder.%d.mlp", l);
		linear(b, d, d, name);
	}
	add(b, TK_PARAM, SHAPE(1, a->tokens, d), "tr.query");
	linear(b, d, d, "tr.token_norm.0");
	layernorm(b, d, "tr.token_norm.1");
	for (int l = 0; l < a->dec_layers; l++) {
		static const char *const parts[] = {"self_attn", "cross_attn"};
		for (int i = 0; i < 2; i++) {
			xname(name, sizeof name, "tr.decoder.%d.%s", l, parts[i]);
			attention(b, d, name);
		}
		xname(name, sizeof name, "tr.decoder.%d.bn1", l);
		layernorm(b, d, name);
		xname(name, sizeof name, "tr.decoder.%d.bn2", l);
		layernorm(b, d, name);
		xname(name, sizeof name, "tr.decoder.%d.mlp.fc1", l);
		linear(b, 2 * d, d, name);
		xname(name, sizeof name, "tr.decoder.%d.mlp.fc2", l);
		linear(b, d, 2 * d, name);
	}
	linear(b, a->out_dim, d * a->tokens, "tr.proj.0");
	batchnorm(b, a->out_dim, "tr.proj.1");
	if (a->classes > 0)
		add(b, TK_PARAM, SHAPE(a->classes, a->out_dim), "classifier.weight");
}

/* The table alone, without data: describing an architecture or checking
 * a file's shapes costs no allocation of its size. */
static void build_table(struct tk_model *m, const struct tk_arch *a)
{
	memset(m, 0, sizeof *m);
	m->arch = *a;
	struct builder b = {m, 0};
	backbone(&b, a);
	if (!a->backbone_only)
		token_head(&b, a);
}

static void alloc_data(struct tk_model *m)
{
	m->data = aligned_alloc(64, xmul((m->numel + 15) & ~(size_t)15, sizeof(float)));
	if (!m->data)
		die_io("out of memory for %zu parameters", m->numel);
	memset(m->data, 0, m->numel * sizeof(float));
	m->counters = xcalloc(m->n, sizeof *m->counters);
}

void tk_model_init(struct tk_model *m, const struct tk_arch *a)
{
	build_table(m, a);
	alloc_data(m);
}

void tk_model_free(struct tk_model *m)
{
	for (int i = 0; i < m->n; i++)
		free(m->p[i].name);
	free(m->p);
	free(m->data);
	free(m->counters);
	memset(m, 0, sizeof *m);
}

const struct tk_param *tk_model_param(const struct tk_model *m,
				      const char *name)
{
	/* Hundreds of names, looked up at load time only: a scan will do. */
	for (int i = 0; i < m->n; i++)
		if (strcmp(m->p[i].name, name) == 0)
			return &m->p[i];
	return NULL;
}

float *tk_model_tensor(const struct tk_model *m, const char *name)
{
	const struct tk_param *p = tk_model_param(m, name);
	return p ? m->data + p->offset : NULL;
}

size_t tk_model_count(const struct tk_model *m, enum tk_param_kind kind)
{
	size_t n = 0;
	for (int i = 0; i < m->n; i++)
		if (m->p[i].kind == kind)
			n += m->p[i].numel;
	return n;
}

void tk_arch_describe(const struct tk_arch *a, char *buf, size_t len)
{
	struct tk_model m;
	build_table(&m, a);
	if (a->backbone_only)
		snprintf(buf, len, "resnet%d width %d backbone, %.1fM parameters",
			 a->depth, a->width, tk_model_count(&m, TK_PARAM) / 1e6);
	else
		snprintf(buf, len,
			 "resnet%d width %d, mid %d, %d tokens, %d heads, "
			 "%d+%d layers, out %d, %d classes, %.1fM parameters",
			 a->depth, a->width, a->mid_dim, a->tokens, a->heads,
			 a->enc_layers, a->dec_layers, a->out_dim, a->classes,
			 tk_model_count(&m, TK_PARAM) / 1e6);
	tk_model_free(&m);
}

/* ---- loading and saving ---- */

static int is_state(const char *name)
{
	return strncmp(name, "optim.", 6) == 0 || strncmp(name, "state.", 6) == 0;
}

static void shape_str(char *buf, size_t len, int rank, const int64_t *shape)
{
	buf[0] = 0;
	for (int k = 0; k < rank; k++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%lld",
			 k ? "," : "", (long long)shape[k]);
}

/* Whether tensor t of a file may fill table entry p: the same shape (a
 * counter may also come as a 1-element vector) and a dtype that converts
 * to float (integers only for counters). */
static int check_tensor(const struct tk_param *p, const struct st_tensor *t,
			char *err, size_t errlen)
{
	int same = t->rank == p->rank;
	for (int k = 0; same && k < p->rank; k++)
		same = t->shape[k] == p->shape[k];
	if (p->kind == TK_COUNTER && st_numel(t) == 1)
		same = 1;
	if (!same) {
		char want[96], got[96];
		shape_str(want, sizeof want, p->rank, p->shape);
		shape_str(got, sizeof got, t->rank, t->shape);
		return tk_errf(err, errlen,
			    "tensor '%s' has shape [%s], the architecture needs [%s]",
			    t->name, got, want);
	}
	switch (t->dtype) {
	case ST_F32: case ST_F16: case ST_BF16: case ST_F64:
		return 0;
	case ST_I64: case ST_I32:
		if (p->kind == TK_COUNTER)
			return 0;
		/* fall through */
	default:
		return tk_errf(err, errlen, "tensor '%s': dtype %s is not a float",
			    t->name, st_dtype_name(t->dtype));
	}
}

static void convert(float *dst, const struct st_tensor *t)
{
	size_t n = st_numel(t);
	if (t->dtype == ST_F32) {
		memcpy(dst, t->data, n * sizeof(float));
		return;
	}
	for (size_t i = 0; i < n; i++)
		dst[i] = (float)st_get(t, i);
}

/* Match d's tensors against m's table (already built, not yet
 * allocated): every entry exactly once, nothing else but checkpoint
 * state.  Fills match[i] with the tensor for entry i. */
static int match_tensors(const struct tk_model *m, const struct st_doc *d,
			 const struct st_tensor **match, char *err,
			 size_t errlen)
{
	for (int i = 0; i < d->n; i++) {
		const struct st_tensor *t = &d->t[i];
		if (is_state(t->name))
			continue;
		const struct tk_param *p = tk_model_param(m, t->name);
		if (!p)
			return tk_errf(err, errlen,
				    "unexpected tensor '%s' for this architecture%s",
				    t->name,
				    m->arch.backbone_only ? " (a backbone only)" : "");
		if (match[p - m->p])
			return tk_errf(err, errlen, "tensor '%s' appears twice",
				    t->name);
		if (check_tensor(p, t, err, errlen) < 0)
			return -1;
		match[p - m->p] = t;
	}
	for (int i = 0; i < m->n; i++)
		if (!match[i])
			return tk_errf(err, errlen, "missing tensor '%s'",
				    m->p[i].name);
	return 0;
}

int tk_model_from_doc(struct tk_model *m, const struct st_doc *d, char *err,
		      size_t errlen)
{
	struct tk_arch a;
	if (tk_arch_from_meta(&a, d, err, errlen) < 0)
		return -1;
	/* Shapes are checked before the data is allocated, so that metadata
	 * asking for a huge model is refused as bad data. */
	build_table(m, &a);
	const struct st_tensor **match = xcalloc(m->n, sizeof *match);
	if (match_tensors(m, d, match, err, errlen) < 0) {
		free(match);
		tk_model_free(m);
		return -1;
	}
	alloc_data(m);
	for (int i = 0; i < m->n; i++)
		convert(m->data + m->p[i].offset, match[i]);
	free(match);
	return 0;
}

int tk_model_load(struct tk_model *m, const char *path, char *err,
		  size_t errlen)
{
	struct tk_mapped map;
	struct st_doc d;
	st_init(&d);
	if (tk_map_file(path, &map, &d, err, errlen) < 0) {
		st_free(&d);
		return -1;
	}
	char what[768];
	int rc = tk_model_from_doc(m, &d, what, sizeof what);
	if (rc == 0 && m->arch.backbone_only) {
		tk_model_free(m);
		snprintf(what, sizeof what,
			 "holds a backbone only (tk-init --backbone makes a "
			 "model from it)");
		rc = -1;
	}
	if (rc < 0)
		snprintf(err, errlen, "%s: %s", path, what);
	st_free(&d);
	tk_unmap_file(&map);
	return rc;
}

int tk_model_copy_backbone(struct tk_model *m, const char *path, char *err,
			   size_t errlen)
{
	struct tk_mapped map;
	struct st_doc d;
	st_init(&d);
	if (tk_map_file(path, &map, &d, err, errlen) < 0) {
		st_free(&d);
		return -1;
	}
	char what[768];
	struct tk_model src;
	int rc = tk_model_from_doc(&src, &d, what, sizeof what);
	if (rc == 0) {
		if (src.arch.depth != m->arch.depth ||
		    src.arch.width != m->arch.width) {
			snprintf(what, sizeof what,
				 "backbone resnet%d width %d, the model needs "
				 "resnet%d width %d",
				 src.arch.depth, src.arch.width, m->arch.depth,
				 m->arch.width);
			rc = -1;
		}
		for (int i = 0; rc == 0 && i < src.n; i++) {
			const struct tk_param *p = &src.p[i];
			if (strncmp(p->name, "backbone.", 9) != 0)
				continue;
			float *dst = tk_model_tensor(m, p->name);
			memcpy(dst, src.data + p->offset, p->numel * sizeof(float));
		}
		tk_model_free(&src);
	}
	if (rc < 0)
		snprintf(err, errlen, "%s: %s", path, what);
	st_free(&d);
	tk_unmap_file(&map);
	return rc;
}

void tk_model_to_doc(const struct tk_model *m, struct st_doc *d)
{
	tk_arch_to_meta(&m->arch, d);
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind == TK_COUNTER) {
			m->counters[i] = (int64_t)m->data[p->offset];
			st_add(d, p->name, ST_I64, 0, NULL, &m->counters[i]);
		} else {
			st_add(d, p->name, ST_F32, p->rank, p->shape,
			       m->data + p->offset);
		}
	}
}

void tk_model_save(const struct tk_model *m, const char *path)
{
	struct st_doc d;
	st_init(&d);
	tk_model_to_doc(m, &d);
	struct tk_outfile o;
	FILE *fp = tk_outfile_open(&o, path);
	if (st_write(fp, &d) < 0)
		die_io("writing %s:", path);
	tk_outfile_commit(&o);
	st_free(&d);
}
