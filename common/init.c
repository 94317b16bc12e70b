/* init.c - the reference model's initialisation, tensor by tensor. */
#include "init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "tk.h"

/* Tensors are drawn in chunks with a stream each, so that a large one
 * (the classifier) is shared among threads without changing its values. */
#define CHUNK (1 << 20)

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The layer of a tensor: its name without the last component. */
static size_t layer_len(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? (size_t)(dot - name) : strlen(name);
}

/* Attention linears are "<...>attn.{q,k,v,proj}.{weight,bias}". */
static const char *attention_part(const char *name)
{
	size_t n = layer_len(name);
	const char *p = name + n;
	while (p > name && p[-1] != '.')
		p--;
	if (p - name < 5 || strncmp(p - 5, "attn.", 5) != 0)
		return NULL;
	static const char *const parts[] = {"q", "k", "v", "proj"};
	for (int i = 0; i < 4; i++)
		if ((size_t)(name + n - p) == strlen(parts[i]) &&
		    strncmp(p, parts[i], name + n - p) == 0)
			return parts[i];
	return NULL;
}

/* The weight of the layer a bias belongs to. */
static const struct tk_param *layer_weight(const struct tk_model *m,
					   const struct tk_param *p)
{
	char name[256];
	snprintf(name, sizeof name, "%.*s.weight", (int)layer_len(p->name),
		 p->name);
	return tk_model_param(m, name);
}

static size_t fan_in(const struct tk_param *w)
{
	return w->numel / (size_t)w->shape[0];
}

struct tk_init_rule tk_init_rule(const struct tk_model *m,
				 const struct tk_param *p)
{
	struct tk_init_rule r = {TK_INIT_ZERO, 0};
	if (p->kind == TK_COUNTER)
		return r;
	if (p->kind == TK_BUFFER) {
		r.kind = ends_with(p->name, ".running_var") ? TK_INIT_ONE : TK_INIT_ZERO;
		return r;
	}
	if (strcmp(p->name, "tr.query") == 0)
		return (struct tk_init_rule){TK_INIT_NORMAL, 1.0};
	if (strcmp(p->name, "classifier.weight") == 0)
		return (struct tk_init_rule){
		    TK_INIT_UNIFORM,
		    sqrt(6.0 / (double)(p->shape[0] + p->shape[1]))};
	int is_bias = ends_with(p->name, ".bias");
	const struct tk_param *w = is_bias ? layer_weight(m, p) : p;
	if (!w || w->rank == 1) /* BatchNorm, LayerNorm */
		return (struct tk_init_rule){is_bias ? TK_INIT_ZERO : TK_INIT_ONE, 0};
	const char *part = attention_part(p->name);
	if (part) {
		if (is_bias || strcmp(part, "proj") == 0)
			return r;
		return (struct tk_init_rule){TK_INIT_TRUNC_NORMAL, 0.02};
	}
	if (strncmp(p->name, "backbone.", 9) == 0) /* convs without bias */
		return (struct tk_init_rule){
		    TK_INIT_NORMAL, sqrt(2.0 / (double)(w->numel / (size_t)w->shape[1]))};
	return (struct tk_init_rule){TK_INIT_UNIFORM, 1.0 / sqrt((double)fan_in(w))};
}

static void fill(float *x, size_t n, struct tk_init_rule r, struct tk_rng *g)
{
	for (size_t i = 0; i < n; i++) {
		double v = 0;
		switch (r.kind) {
		case TK_INIT_ZERO: v = 0; break;
		case TK_INIT_ONE: v = 1; break;
		case TK_INIT_NORMAL: v = r.scale * tk_rng_normal(g); break;
		case TK_INIT_TRUNC_NORMAL:
			/* The reference truncates at +-2 absolute: for std 0.02
			 * a redraw never happens in practice. */
			do
				v = r.scale * tk_rng_normal(g);
			while (fabs(v) > 2.0);
			break;
		case TK_INIT_UNIFORM:
			v = r.scale * (2.0 * tk_rng_uniform(g) - 1.0);
			break;
		}
		x[i] = (float)v;
	}
}

void tk_model_init_weights(struct tk_model *m, uint64_t seed,
			   int keep_backbone)
{
	/* Work items: (tensor, chunk). */
	size_t nitems = 0;
	for (int i = 0; i < m->n; i++)
		nitems += (m->p[i].numel + CHUNK - 1) / CHUNK;
	size_t *item_p = xmalloc(xmul(nitems, sizeof *item_p));
	size_t *item_c = xmalloc(xmul(nitems, sizeof *item_c));
	nitems = 0;
	for (int i = 0; i < m->n; i++)
		for (size_t c = 0; c * CHUNK < m->p[i].numel; c++) {
			item_p[nitems] = (size_t)i;
			item_c[nitems++] = c;
		}
#pragma omp parallel for schedule(dynamic)
	for (size_t k = 0; k < nitems; k++) {
		const struct tk_param *p = &m->p[item_p[k]];
		if (keep_backbone && strncmp(p->name, "backbone.", 9) == 0)
			continue;
		size_t c = item_c[k], lo = c * CHUNK;
		size_t n = p->numel - lo < CHUNK ? p->numel - lo : CHUNK;
		struct tk_rng g;
		tk_rng_stream(&g, seed, p->name, c);
		fill(m->data + p->offset + lo, n, tk_init_rule(m, p), &g);
	}
	free(item_p);
	free(item_c);
}
