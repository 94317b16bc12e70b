/* fuzz_pickle - libFuzzer target for the restricted unpickler: any bytes
 * as a pickle, once with nothing allowed and once with torch's checkpoint
 * allow-list and persistent ids; the tree is then walked (bounded: the
 * memo makes DAGs and cycles) and freed; then as Revisited Oxford and
 * Paris ground truth (rv_load_buffer: the gnd_*.pkl structure checked).
 *   make fuzz && build/fuzz/fuzz_pickle -max_total_time=600 \
 *       tests/fuzz/corpus/pickle */
#include <string.h>

#include "common/pickle.h"
#include "common/revisitop.h"

/* Visit at most *budget nodes: a DAG can be exponential as a tree. */
static void walk(const struct pk_value *v, long *budget, int depth)
{
	if (!v || --*budget < 0 || depth > 200)
		return;
	switch (v->type) {
	case PK_STR:
	case PK_BYTES: {
		volatile unsigned char sum = 0;
		for (size_t i = 0; i <= v->str.len; i++) /* incl. the NUL */
			sum += (unsigned char)v->str.p[i];
		break;
	}
	case PK_LIST:
	case PK_TUPLE:
	case PK_DICT:
	case PK_SET:
		for (size_t i = 0; i < v->seq.n; i++)
			walk(v->seq.v[i], budget, depth + 1);
		break;
	case PK_GLOBAL: case PK_OPAQUE: (void)strlen(v->global); break;
	case PK_CALL:
		walk(v->call.fn, budget, depth + 1);
		walk(v->call.args, budget, depth + 1);
		walk(v->call.kwargs, budget, depth + 1);
		walk(v->call.state, budget, depth + 1);
		walk(v->call.items, budget, depth + 1);
		walk(v->call.list, budget, depth + 1);
		break;
	case PK_PERSID: walk(v->pid, budget, depth + 1); break;
	default: (void)pk_number(v); break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const allow[] = {
	    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
	    "torch._utils._rebuild_parameter", "torch.FloatStorage",
	    "torch.LongStorage", "builtins.set", NULL};
	static const struct pk_options none = {NULL, 0, 0}, torch = {allow, 1, 0},
					opaque = {allow, 1, 1};
	const struct pk_options *opts[] = {&none, &torch, &opaque};
	for (int k = 0; k < 3; k++) {
		struct pk_arena *a;
		char err[256];
		size_t used;
		struct pk_value *v = pk_load(data, size, opts[k], &a, &used, err,
					     sizeof err);
		if (v) {
			if (used > size || used == 0)
				__builtin_trap();
			long budget = 100000;
			walk(v, &budget, 0);
			(void)pk_dict_get(v, "gnd");
			(void)pk_is_str(v, "x");
		} else if (!strstr(err, "(pickle offset ") || strchr(err, '\n')) {
			__builtin_trap();
		}
		pk_free(a);
	}
	/* and as a gnd_*.pkl file, as tk-map and tk-list read them */
	struct rv_gnd g;
	char err[512];
	err[0] = 0;
	if (rv_load_buffer(&g, data, size, "gnd.pkl", err, sizeof err) == 0)
		rv_free(&g);
	else if (!err[0]) /* (a key's line break is tk_die's to escape) */
		__builtin_trap();
	return 0;
}
