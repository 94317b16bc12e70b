/* torchload.c - torch.save checkpoints, zip and legacy, read through the
 * restricted unpickler. */
#define _GNU_SOURCE
#include "torchload.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"
#include "tk.h"

/* The allow-list: exactly what torch.save writes for a state_dict (and
 * the optimizer state beside it). */
static const char *const allowed_globals[] = {
	"collections.OrderedDict",
	"torch._utils._rebuild_tensor_v2",
	"torch._utils._rebuild_tensor",
	"torch._utils._rebuild_parameter",
	"torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage",
	"torch.DoubleStorage", "torch.LongStorage", "torch.IntStorage",
	"torch.ShortStorage", "torch.CharStorage", "torch.ByteStorage",
	"torch.BoolStorage",
	NULL,
};

static const struct {
	const char *global;
	enum st_dtype dtype;
} storage_types[] = {
	{"torch.FloatStorage", ST_F32}, {"torch.HalfStorage", ST_F16},
	{"torch.BFloat16Storage", ST_BF16}, {"torch.DoubleStorage", ST_F64},
	{"torch.LongStorage", ST_I64}, {"torch.IntStorage", ST_I32},
	{"torch.ShortStorage", ST_I16}, {"torch.CharStorage", ST_I8},
	{"torch.ByteStorage", ST_U8}, {"torch.BoolStorage", ST_BOOL},
};

/* Keys under which a wrapper dict holds the state_dict. */
static const char *const wrapper_keys[] = {"state_dict", "model_state_dict",
					   "model"};

/* A storage: what the pickle declares, and where its bytes are. */
struct storage {
	char *key;
	enum st_dtype dtype;
	uint64_t numel;
	int needed;
	const uint8_t *data; /* NULL until read */
};

/* A storage as a tensor sees it: a root storage, or a legacy view of one. */
struct sref {
	struct storage *s;
	uint64_t off, numel; /* in elements */
};

struct pending {
	char *name;
	struct sref ref;
	uint64_t offset;
	int rank;
	int64_t shape[ST_MAX_RANK], stride[ST_MAX_RANK];
};

struct loader {
	struct tl_checkpoint *c;
	char *err;
	size_t errlen;
	/* storages by key: open addressing */
	struct storage **tab;
	size_t tabcap, nstorages;
	struct pending *pend;
	int npend;
	unsigned flags; /* TL_* */
};

static int fail(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct loader *L, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(L->err, L->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int is_str(const struct pk_value *v, const char *s)
{
	return v && (v->type == PK_STR || v->type == PK_BYTES) &&
	       v->str.len == strlen(s) && memcmp(v->str.p, s, v->str.len) == 0;
}

/* A str (or Python 2 bytes) without NUL bytes; NULL otherwise. */
static const char *str_of(const struct pk_value *v)
{
	if (!v || (v->type != PK_STR && v->type != PK_BYTES) ||
	    strlen(v->str.p) != v->str.len)
		return NULL;
	return v->str.p;
}

static int get_int(const struct pk_value *v, int64_t *out)
{
	if (!v || v->type != PK_INT)
		return -1;
	*out = v->i;
	return 0;
}

/* What v is, for messages: a global's name, a call's callable's, else
 * its type. */
static const char *what_is(const struct pk_value *v)
{
	if (v->type == PK_CALL && v->call.fn)
		v = v->call.fn;
	return v->type == PK_GLOBAL || v->type == PK_OPAQUE ? v->global
							    : pk_type_name(v->type);
}

static int is_call(const struct pk_value *v, const char *fn)
{
	return v && v->type == PK_CALL && v->call.fn &&
	       v->call.fn->type == PK_GLOBAL && strcmp(v->call.fn->global, fn) == 0;
}

/* Whether v is an instance of a class tk does not read (a pickled
 * nn.Module, say), as opposed to plain data. */
static int is_object(const struct pk_value *v)
{
	return v->type == PK_OPAQUE ||
	       (v->type == PK_CALL && v->call.fn && v->call.fn->type == PK_OPAQUE);
}

/* ---- storages ---- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static struct storage **slot(struct loader *L, const char *key)
{
	size_t mask = L->tabcap - 1, i = hash_str(key) & mask;
	while (L->tab[i] && strcmp(L->tab[i]->key, key) != 0)
		i = (i + 1) & mask;
	return &L->tab[i];
}

static struct storage *find_storage(struct loader *L, const char *key)
{
	return L->tabcap ? *slot(L, key) : NULL;
}

static struct storage *add_storage(struct loader *L, const char *key,
				   enum st_dtype dtype, uint64_t numel)
{
	if (2 * (L->nstorages + 1) > L->tabcap) {
		struct storage **old = L->tab;
		size_t oldcap = L->tabcap;
		L->tabcap = oldcap ? 2 * oldcap : 64;
		L->tab = xcalloc(L->tabcap, sizeof *L->tab);
		for (size_t i = 0; i < oldcap; i++)
			if (old[i])
				*slot(L, old[i]->key) = old[i];
		free(old);
	}
	struct storage *s = xcalloc(1, sizeof *s);
	s->key = xstrdup(key);
	s->dtype = dtype;
	s->numel = numel;
	*slot(L, key) = s;
	L->nstorages++;
	return s;
}

/* A persistent id: ('storage', type, key, location, numel) in zip files;
 * legacy files add view metadata (view_key, offset, size) or None. */
static int parse_pid(struct loader *L, const struct pk_value *pid,
		     struct sref *ref)
{
	if (!pid || pid->type != PK_TUPLE || pid->seq.n < 5 || pid->seq.n > 6)
		return fail(L, "persistent id is not a storage tuple");
	struct pk_value **v = pid->seq.v;
	if (!is_str(v[0], "storage")) {
		const char *what = str_of(v[0]);
		return fail(L, "persistent id of kind '%s' (a pickled module, "
			       "not a state_dict?)",
			    what ? what : pk_type_name(v[0]->type));
	}
	if (v[1]->type == PK_OPAQUE)
		return fail(L, "refused global '%s': not a storage type tk reads",
			    v[1]->global);
	if (v[1]->type != PK_GLOBAL)
		return fail(L, "storage type is a %s", pk_type_name(v[1]->type));
	int dtype = -1;
	for (size_t i = 0; i < sizeof storage_types / sizeof *storage_types; i++)
		if (strcmp(storage_types[i].global, v[1]->global) == 0)
			dtype = (int)storage_types[i].dtype;
	if (dtype < 0) /* an allowed global that is not a storage type */
		return fail(L, "'%s' is not a storage type", v[1]->global);
	const char *key = str_of(v[2]);
	int64_t numel;
	if (!key)
		return fail(L, "storage key is not a string");
	if (get_int(v[4], &numel) < 0 || numel < 0 ||
	    (uint64_t)numel > SIZE_MAX / 8)
		return fail(L, "storage '%s': bad size", key);
	struct storage *s = find_storage(L, key);
	if (!s)
		s = add_storage(L, key, (enum st_dtype)dtype, (uint64_t)numel);
	else if ((int)s->dtype != dtype || s->numel != (uint64_t)numel)
		return fail(L, "storage '%s' is declared twice, differently", key);
	ref->s = s;
	ref->off = 0;
	ref->numel = s->numel;
	if (pid->seq.n == 6 && v[5]->type != PK_NONE) {
		const struct pk_value *vm = v[5];
		int64_t off, size;
		if (vm->type != PK_TUPLE || vm->seq.n != 3 ||
		    get_int(vm->seq.v[1], &off) < 0 ||
		    get_int(vm->seq.v[2], &size) < 0 || off < 0 || size < 0 ||
		    (uint64_t)off > s->numel || (uint64_t)size > s->numel - (uint64_t)off)
			return fail(L, "storage '%s': bad view", key);
		ref->off = (uint64_t)off;
		ref->numel = (uint64_t)size;
	}
	return 0;
}

/* Register every storage the pickle mentions (the legacy format needs all
 * of their sizes to find any of them).  The memo can share nodes and make
 * cycles: each node is visited once. */
static int register_all(struct loader *L, const struct pk_value *root)
{
	size_t cap = 1024, mask = cap - 1, nseen = 0;
	const struct pk_value **seen = xcalloc(cap, sizeof *seen);
	const struct pk_value **stack = NULL;
	size_t n = 0, scap = 0;
	int rc = 0;
#define PUSH(x)                                                             \
	do {                                                                \
		if (x) {                                                    \
			if (n == scap) {                                    \
				scap = scap ? 2 * scap : 256;               \
				stack = xrealloc(stack, xmul(scap, sizeof *stack)); \
			}                                                   \
			stack[n++] = (x);                                   \
		}                                                           \
	} while (0)
	PUSH(root);
	while (n && rc == 0) {
		const struct pk_value *v = stack[--n];
		size_t i = ((uintptr_t)v >> 4) * 0x9e3779b97f4a7c15ull & mask;
		while (seen[i] && seen[i] != v)
			i = (i + 1) & mask;
		if (seen[i])
			continue;
		seen[i] = v;
		if (2 * ++nseen > cap) { /* grow the set */
			const struct pk_value **old = seen;
			size_t oldcap = cap;
			cap *= 2;
			mask = cap - 1;
			seen = xcalloc(cap, sizeof *seen);
			for (size_t k = 0; k < oldcap; k++) {
				if (!old[k])
					continue;
				size_t j = ((uintptr_t)old[k] >> 4) * 0x9e3779b97f4a7c15ull & mask;
				while (seen[j])
					j = (j + 1) & mask;
				seen[j] = old[k];
			}
			free(old);
		}
		struct sref ref;
		switch (v->type) {
		case PK_LIST: case PK_TUPLE: case PK_DICT: case PK_SET:
			for (size_t k = 0; k < v->seq.n; k++)
				PUSH(v->seq.v[k]);
			break;
		case PK_CALL:
			PUSH(v->call.args);
			PUSH(v->call.state);
			PUSH(v->call.items);
			PUSH(v->call.list);
			PUSH(v->call.kwargs);
			break;
		case PK_PERSID:
			rc = parse_pid(L, v->pid, &ref);
			break;
		default:
			break;
		}
	}
#undef PUSH
	free(seen);
	free(stack);
	return rc;
}

/* ---- the state_dict ---- */

/* The (key, value) pairs of a dict or an OrderedDict call. */
struct pairs {
	const struct pk_value **k, **v;
	size_t n;
};

static int dict_pairs(const struct pk_value *d, struct pairs *p)
{
	p->k = p->v = NULL;
	p->n = 0;
	const struct pk_value *items = NULL, *args = NULL;
	if (d->type == PK_DICT)
		items = d;
	else if (is_call(d, "collections.OrderedDict")) {
		items = d->call.items;
		args = d->call.args;
	} else
		return -1;
	size_t n = items ? items->seq.n / 2 : 0;
	/* OrderedDict([(k, v), ...]): pairs as the argument. */
	const struct pk_value *list = NULL;
	if (args && args->type == PK_TUPLE && args->seq.n == 1 &&
	    (args->seq.v[0]->type == PK_LIST || args->seq.v[0]->type == PK_TUPLE))
		list = args->seq.v[0];
	else if (args && (args->type != PK_TUPLE || args->seq.n != 0))
		return -1;
	size_t nl = list ? list->seq.n : 0;
	p->k = xmalloc(xmul(n + nl + 1, sizeof *p->k));
	p->v = xmalloc(xmul(n + nl + 1, sizeof *p->v));
	for (size_t i = 0; i < nl; i++) {
		const struct pk_value *kv = list->seq.v[i];
		if (kv->type != PK_TUPLE || kv->seq.n != 2) {
			free(p->k);
			free(p->v);
			return -1;
		}
		p->k[p->n] = kv->seq.v[0];
		p->v[p->n++] = kv->seq.v[1];
	}
	for (size_t i = 0; i < n; i++) {
		p->k[p->n] = items->seq.v[2 * i];
		p->v[p->n++] = items->seq.v[2 * i + 1];
	}
	return 0;
}

static void pairs_free(struct pairs *p)
{
	free(p->k);
	free(p->v);
}

static int is_tensor(const struct pk_value *v)
{
	return is_call(v, "torch._utils._rebuild_tensor_v2") ||
	       is_call(v, "torch._utils._rebuild_tensor") ||
	       is_call(v, "torch._utils._rebuild_parameter");
}

/* Whether d is a dict with tensors among its values (any others are
 * reported when it is read). */
static int is_state_dict(const struct pk_value *d)
{
	struct pairs p;
	if (dict_pairs(d, &p) < 0)
		return 0;
	int ok = 0;
	for (size_t i = 0; !ok && i < p.n; i++)
		ok = is_tensor(p.v[i]);
	pairs_free(&p);
	return ok;
}

static int int_tuple(const struct pk_value *v, int64_t *out, int *n)
{
	if (!v || v->type != PK_TUPLE || v->seq.n > ST_MAX_RANK)
		return -1;
	for (size_t i = 0; i < v->seq.n; i++)
		if (get_int(v->seq.v[i], &out[i]) < 0)
			return -1;
	*n = (int)v->seq.n;
	return 0;
}

static int parse_tensor(struct loader *L, const char *name,
			const struct pk_value *v, struct pending *t)
{
	if (is_call(v, "torch._utils._rebuild_parameter")) {
		const struct pk_value *a = v->call.args;
		if (!a || a->type != PK_TUPLE || a->seq.n < 1 ||
		    is_call(a->seq.v[0], "torch._utils._rebuild_parameter") ||
		    !is_tensor(a->seq.v[0]))
			return fail(L, "tensor '%s': bad parameter", name);
		v = a->seq.v[0];
	}
	const struct pk_value *a = v->call.args;
	int v2 = is_call(v, "torch._utils._rebuild_tensor_v2");
	if (!a || a->type != PK_TUPLE ||
	    (v2 ? a->seq.n != 6 && a->seq.n != 7 : a->seq.n != 4))
		return fail(L, "tensor '%s': bad arguments", name);
	memset(t, 0, sizeof *t);
	if (a->seq.v[0]->type != PK_PERSID)
		return fail(L, "tensor '%s': storage is not a persistent id", name);
	if (parse_pid(L, a->seq.v[0]->pid, &t->ref) < 0) {
		char why[512];
		snprintf(why, sizeof why, "%s", L->err);
		return fail(L, "tensor '%s': %s", name, why);
	}
	int64_t off;
	int rank, srank;
	if (get_int(a->seq.v[1], &off) < 0 || off < 0)
		return fail(L, "tensor '%s': bad storage offset", name);
	if (int_tuple(a->seq.v[2], t->shape, &rank) < 0) {
		const struct pk_value *s = a->seq.v[2];
		for (size_t i = 0; s->type == PK_TUPLE && i < s->seq.n; i++)
			if (s->seq.v[i]->type == PK_OPAQUE)
				return fail(L, "tensor '%s': size %zu is an %s", name,
					    i, s->seq.v[i]->global);
		return fail(L, "tensor '%s': size is not a tuple of at most %d ints",
			    name, ST_MAX_RANK);
	}
	if (int_tuple(a->seq.v[3], t->stride, &srank) < 0 || srank != rank)
		return fail(L, "tensor '%s': stride does not match its size", name);
	t->rank = rank;
	t->offset = (uint64_t)off;
	/* Every element must lie inside the storage (view). */
	uint64_t numel = 1, last = (uint64_t)off;
	for (int i = 0; i < rank; i++) {
		if (t->shape[i] < 0)
			return fail(L, "tensor '%s': negative size %lld", name,
				    (long long)t->shape[i]);
		if (t->stride[i] < 0)
			return fail(L, "tensor '%s': negative stride", name);
		if (__builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel))
			return fail(L, "tensor '%s': size overflows", name);
	}
	if (numel > SIZE_MAX / 16)
		return fail(L, "tensor '%s': size overflows", name);
	if (numel > 0) {
		for (int i = 0; i < rank; i++) {
			uint64_t step;
			if (__builtin_mul_overflow((uint64_t)(t->shape[i] - 1),
						   (uint64_t)t->stride[i], &step) ||
			    __builtin_add_overflow(last, step, &last))
				return fail(L, "tensor '%s': extent overflows", name);
		}
		if (last >= t->ref.numel)
			return fail(L,
				    "tensor '%s' reaches element %llu of a storage "
				    "of %llu",
				    name, (unsigned long long)last,
				    (unsigned long long)t->ref.numel);
	}
	t->name = xstrdup(name);
	t->ref.s->needed = 1;
	return 0;
}

static void top_keys(const struct pairs *p, char *buf, size_t len)
{
	buf[0] = 0;
	for (size_t i = 0; i < p->n && strlen(buf) + 40 < len; i++) {
		const char *k = str_of(p->k[i]);
		snprintf(buf + strlen(buf), len - strlen(buf), "%s'%.32s'",
			 i ? ", " : "", k ? k : "?");
	}
}

/* Find the state_dict under the root and parse its tensors. */
static int select_state_dict(struct loader *L, const struct pk_value *root)
{
	struct pairs top;
	if (dict_pairs(root, &top) < 0)
		return fail(L, "the pickle holds a %s, not a dict of tensors%s",
			    what_is(root),
			    is_object(root) ? " (a whole model, torch.save(model)? "
					      "save model.state_dict())" : "");
	const struct pk_value *sd = NULL;
	L->c->epoch = -1;
	for (size_t i = 0; i < top.n; i++) {
		for (size_t w = 0; !sd && w < sizeof wrapper_keys / sizeof *wrapper_keys; w++)
			if (is_str(top.k[i], wrapper_keys[w]) && is_state_dict(top.v[i])) {
				sd = top.v[i];
				L->c->wrapper = wrapper_keys[w];
			}
		int64_t e;
		if (is_str(top.k[i], "epoch") && get_int(top.v[i], &e) == 0)
			L->c->epoch = (long)e;
	}
	if (!sd) {
		int any = 0;
		for (size_t i = 0; i < top.n; i++)
			any |= is_tensor(top.v[i]);
		/* torch.save({'model': model, ...}): the module itself where
		 * its state_dict was meant. */
		for (size_t i = 0; !any && i < top.n; i++)
			for (size_t w = 0; w < sizeof wrapper_keys / sizeof *wrapper_keys; w++)
				if (is_str(top.k[i], wrapper_keys[w]) &&
				    is_object(top.v[i])) {
					fail(L, "'%s' holds a %s, not a dict of "
						"tensors (a whole model? save "
						"model.state_dict())",
					     wrapper_keys[w], what_is(top.v[i]));
					pairs_free(&top);
					return -1;
				}
		if (!any) {
			char keys[256];
			top_keys(&top, keys, sizeof keys);
			pairs_free(&top);
			return fail(L, "no state_dict: the top-level dict has %s%s "
				       "and no dict of tensors",
				    top.n ? "keys " : "no keys", keys);
		}
		sd = root;
		L->c->epoch = -1;
	}
	pairs_free(&top);
	struct pairs p;
	dict_pairs(sd, &p);
	L->pend = xcalloc(p.n ? p.n : 1, sizeof *L->pend);
	for (size_t i = 0; i < p.n; i++) {
		const char *name = str_of(p.k[i]);
		if (!name || !*name) {
			pairs_free(&p);
			return fail(L, "state_dict key %zu is not a string", i);
		}
		if (!is_tensor(p.v[i])) {
			const struct pk_value *v = p.v[i];
			fail(L, "state_dict entry '%s' is a %s, not a tensor", name,
			     what_is(v));
			pairs_free(&p);
			return -1;
		}
		if (parse_tensor(L, name, p.v[i], &L->pend[L->npend]) < 0) {
			pairs_free(&p);
			return -1;
		}
		L->npend++;
	}
	pairs_free(&p);
	return 0;
}

/* ---- tensors from storages ---- */

static void *keep(struct tl_checkpoint *c, void *buf)
{
	c->bufs = xrealloc(c->bufs, xmul(c->nbufs + 1, sizeof *c->bufs));
	c->bufs[c->nbufs++] = buf;
	return buf;
}

static int make_tensors(struct loader *L)
{
	struct tl_checkpoint *c = L->c;
	c->t = xcalloc(L->npend ? L->npend : 1, sizeof *c->t);
	for (int i = 0; i < L->npend; i++) {
		struct pending *p = &L->pend[i];
		struct tl_tensor *t = &c->t[c->n];
		if (!p->ref.s->data)
			return fail(L, "tensor '%s': storage '%s' is not in the file",
				    p->name, p->ref.s->key);
		size_t es = st_dtype_size(p->ref.s->dtype), numel = 1;
		for (int k = 0; k < p->rank; k++)
			numel *= (size_t)p->shape[k];
		t->name = p->name;
		p->name = NULL;
		c->n++;
		t->dtype = p->ref.s->dtype;
		t->rank = p->rank;
		memcpy(t->shape, p->shape, sizeof t->shape);
		t->nbytes = numel * es;
		if (numel == 0) {
			t->data = NULL;
			continue;
		}
		const uint8_t *base = p->ref.s->data + (p->ref.off + p->offset) * es;
		/* C-order contiguous (dimensions of size 1 have any stride):
		 * point into the storage. */
		int contiguous = 1;
		int64_t want = 1;
		for (int k = p->rank - 1; k >= 0; k--) {
			if (p->shape[k] != 1 && p->stride[k] != want)
				contiguous = 0;
			want *= p->shape[k];
		}
		if (contiguous) {
			t->data = base;
			continue;
		}
		uint8_t *dst = keep(c, xmalloc(t->nbytes));
		int64_t idx[ST_MAX_RANK] = {0};
		for (size_t e = 0; e < numel; e++) {
			uint64_t src = 0;
			for (int k = 0; k < p->rank; k++)
				src += (uint64_t)idx[k] * (uint64_t)p->stride[k];
			memcpy(dst + e * es, base + src * es, es);
			for (int k = p->rank - 1; k >= 0; k--) {
				if (++idx[k] < p->shape[k])
					break;
				idx[k] = 0;
			}
		}
		t->data = dst;
	}
	return 0;
}

/* ---- the two formats ---- */

/* Globals outside the list are refused where the state_dict needs them
 * (a tensor, a storage type), not in the entries beside it that tk-import
 * never reads: the reference's train.py saves an optimizer state whose
 * learning rates are numpy scalars. */
static const struct pk_options torch_options = {allowed_globals, 1, 1};

static struct pk_value *load_pickle(struct loader *L, const uint8_t *buf,
				    size_t len, const struct pk_options *opt,
				    struct pk_arena **arena, size_t *used,
				    const char *what)
{
	char why[512];
	struct pk_value *v = pk_load(buf, len, opt, arena, used, why, sizeof why);
	if (!v)
		fail(L, "%s: %s", what, why);
	return v;
}

static int parse_object(struct loader *L, const struct pk_value *root)
{
	if (register_all(L, root) < 0 || select_state_dict(L, root) < 0)
		return -1;
	return 0;
}

/* A zip member that libarchive could not read to its end: its size or
 * CRC-32 does not match the central directory's, or its data is damaged. */
static int member_error(struct loader *L, struct archive *a, const char *name)
{
	const char *why = archive_error_string(a);
	if (!why)
		why = "unreadable";
	/* torch.save under torch.serialization.set_crc32_options(False) writes
	 * 0 for every CRC-32, and torch.load checks none: say how to read such
	 * a file.  (libarchive says "ZIP bad CRC: 0x... should be 0x...";
	 * worded otherwise, its message stands alone.) */
	static const char zero[] = "should be 0x0";
	size_t n = strlen(why), z = strlen(zero);
	if (n >= z && strcmp(why + n - z, zero) == 0)
		return fail(L, "zip member %s: %s (torch.save wrote it without "
			       "checksums: --no-crc-check reads it)", name, why);
	if (strstr(why, "CRC"))
		return fail(L, "zip member %s: %s (the file is damaged)", name, why);
	return fail(L, "zip member %s: %s", name, why);
}

/* The size bytes of the member whose header was just read, in *out: a
 * pointer into buf when libarchive hands them over in one block from it
 * (a stored member, as torch.save writes them all), else a copy that the
 * checkpoint keeps.  Reading to the member's end is what makes libarchive
 * check its size and CRC-32. */
static int read_member(struct loader *L, struct archive *a, const void *buf,
		       size_t len, size_t size, const char *name,
		       const uint8_t **out)
{
	const uint8_t *lo = buf, *hi = lo + len;
	const uint8_t *data = NULL;
	uint8_t *copy = NULL;
	size_t got = 0;
	for (;;) {
		const void *p;
		size_t n;
		la_int64_t off;
		int r = archive_read_data_block(a, &p, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK)
			return member_error(L, a, name);
		if (n == 0)
			continue;
		if (off != (la_int64_t)got || n > size - got)
			return fail(L, "zip member %s is longer than its size", name);
		const uint8_t *b = p;
		if (got == 0 && n == size && b >= lo && b <= hi && n <= (size_t)(hi - b)) {
			data = b;
		} else {
			if (!copy)
				copy = keep(L->c, xmalloc(size));
			memcpy(copy + got, b, n);
			data = copy;
		}
		got += n;
	}
	if (got != size)
		return fail(L, "zip member %s is truncated", name);
	*out = size ? data : lo; /* not NULL: NULL is "not read" */
	return 0;
}

/* Member names: <prefix>/data.pkl and <prefix>/data/<key>. */
static const char *member(const char *path, const char *prefix, size_t plen,
			  const char *rest)
{
	if (strncmp(path, prefix, plen) != 0 || path[plen] != '/')
		return NULL;
	size_t n = strlen(rest);
	if (strncmp(path + plen + 1, rest, n) != 0)
		return NULL;
	return path + plen + 1 + n;
}

static struct archive *open_zip(struct loader *L, const void *buf, size_t len)
{
	struct archive *a = archive_read_new();
	if (!a)
		die_io("out of memory");
	/* The central directory is authoritative, as for torch's reader. */
	archive_read_support_format_zip_seekable(a);
	if ((L->flags & TL_NO_CRC) &&
	    archive_read_set_format_option(a, "zip", "ignorecrc32", "1") !=
		ARCHIVE_OK) {
		fail(L, "libarchive cannot skip CRC-32 checks (%s)",
		     archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK) {
		fail(L, "not a readable zip archive (%s)", archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

#define MAX_PICKLE ((size_t)1 << 30)

static int read_zip(struct loader *L, const void *buf, size_t len)
{
	L->c->format = "zip";
	struct archive *a = open_zip(L, buf, len);
	if (!a)
		return -1;
	struct archive_entry *e;
	const uint8_t *pkl = NULL;
	size_t pkllen = 0;
	char *prefix = NULL;
	int rc = 0, r;
	/* First pass: the pickle and the markers of what this is. */
	while (rc == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *path = archive_entry_pathname(e);
		const char *slash = path ? strchr(path, '/') : NULL;
		if (!slash)
			continue;
		if (strcmp(slash, "/constants.pkl") == 0)
			rc = fail(L, "a TorchScript archive (torch.jit.save), not a "
				     "torch.save checkpoint");
		else if (strcmp(slash, "/byteorder") == 0) {
			const uint8_t *bo;
			la_int64_t size = archive_entry_size(e);
			if (size < 0 || size >= 8)
				rc = fail(L, "zip member %s: bad size", path);
			else if ((rc = read_member(L, a, buf, len, (size_t)size,
						   path, &bo)) == 0 &&
				 (size != 6 || memcmp(bo, "little", 6) != 0))
				rc = fail(L, "a checkpoint of byte order '%.*s' (only "
					     "little-endian is read)", (int)size, bo);
		} else if (strcmp(slash, "/data.pkl") == 0) {
			if (pkl) {
				rc = fail(L, "two data.pkl members");
				break;
			}
			la_int64_t size = archive_entry_size(e);
			if (!archive_entry_size_is_set(e) || size < 0 ||
			    (uint64_t)size > MAX_PICKLE) {
				rc = fail(L, "zip member %s: bad size", path);
				break;
			}
			pkllen = (size_t)size;
			prefix = xstrndup(path, (size_t)(slash - path));
			rc = read_member(L, a, buf, len, pkllen, path, &pkl);
		}
	}
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = fail(L, "zip archive: %s", archive_error_string(a));
	if (rc == 0 && !pkl)
		rc = fail(L, "zip archive without a data.pkl member: not a "
			     "torch.save checkpoint");
	archive_read_free(a);
	struct pk_arena *arena = NULL;
	struct pk_value *root = NULL;
	size_t used;
	if (rc == 0) {
		root = load_pickle(L, pkl, pkllen, &torch_options, &arena, &used,
				   "data.pkl");
		if (!root)
			rc = -1;
		else if (used != pkllen)
			rc = fail(L, "data.pkl: %zu bytes after the pickle",
				  pkllen - used);
	}
	if (rc == 0)
		rc = parse_object(L, root);
	pk_free(arena);
	/* Second pass: the storages the state_dict uses. */
	if (rc == 0 && !(a = open_zip(L, buf, len)))
		rc = -1;
	if (rc == 0) {
		size_t plen = strlen(prefix);
		while (rc == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
			const char *path = archive_entry_pathname(e);
			const char *key = path ? member(path, prefix, plen, "data/") : NULL;
			struct storage *s = key ? find_storage(L, key) : NULL;
			if (!s || !s->needed)
				continue;
			if (s->data) {
				rc = fail(L, "zip member %s appears twice", path);
				break;
			}
			size_t es = st_dtype_size(s->dtype), nbytes = (size_t)s->numel * es;
			if (!archive_entry_size_is_set(e) ||
			    (uint64_t)archive_entry_size(e) != nbytes) {
				rc = fail(L, "storage %s holds %lld bytes, the pickle "
					     "says %llu elements of %zu bytes",
					  path, (long long)archive_entry_size(e),
					  (unsigned long long)s->numel, es);
				break;
			}
			rc = read_member(L, a, buf, len, nbytes, path, &s->data);
		}
		if (rc == 0 && r != ARCHIVE_EOF)
			rc = fail(L, "zip archive: %s", archive_error_string(a));
		archive_read_free(a);
	}
	free(prefix);
	return rc;
}

/* The legacy format's first pickle is its magic number, an int of 80 bits
 * that the unpickler refuses: match its bytes (protocols 2 to 5). */
static const uint8_t legacy_magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9,
				       0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

static size_t skip_magic(const uint8_t *p, size_t len)
{
	size_t i = 0;
	if (len < 2 || p[0] != 0x80 || p[1] < 2 || p[1] > 5)
		return 0;
	i = 2;
	if (len > i + 9 && p[i] == 0x95) /* FRAME, protocol 4 and up */
		i += 9;
	if (len < i + sizeof legacy_magic ||
	    memcmp(p + i, legacy_magic, sizeof legacy_magic) != 0)
		return 0;
	return i + sizeof legacy_magic;
}

static int read_legacy(struct loader *L, const uint8_t *buf, size_t len)
{
	L->c->format = "legacy";
	size_t pos = skip_magic(buf, len), used;
	struct pk_arena *arena = NULL;
	struct pk_value *v;
	static const struct pk_options plain = {NULL, 0, 0};
	int rc = 0;
	v = load_pickle(L, buf + pos, len - pos, &plain, &arena, &used,
			"protocol version");
	if (!v)
		rc = -1;
	else if (v->type != PK_INT || v->i != 1001)
		rc = fail(L, "legacy format protocol version is not 1001");
	pos += used;
	pk_free(arena);
	arena = NULL;
	if (rc == 0) {
		v = load_pickle(L, buf + pos, len - pos, &plain, &arena, &used,
				"sys_info");
		if (!v)
			rc = -1;
		else if (v->type != PK_DICT)
			rc = fail(L, "legacy format sys_info is not a dict");
		else {
			const struct pk_value *le = pk_dict_get(v, "little_endian");
			if (le && le->type == PK_BOOL && !le->i)
				rc = fail(L, "a big-endian checkpoint");
		}
		pos += used;
		pk_free(arena);
		arena = NULL;
	}
	if (rc == 0) {
		v = load_pickle(L, buf + pos, len - pos, &torch_options, &arena,
				&used, "object pickle");
		rc = v ? parse_object(L, v) : -1;
		pos += used;
		pk_free(arena);
		arena = NULL;
	}
	if (rc < 0)
		return -1;
	/* The storages, in the order of the key list. */
	v = load_pickle(L, buf + pos, len - pos, &plain, &arena, &used,
			"storage keys");
	if (!v || v->type != PK_LIST) {
		if (v)
			fail(L, "legacy format storage keys are not a list");
		pk_free(arena);
		return -1;
	}
	pos += used;
	for (size_t i = 0; rc == 0 && i < v->seq.n; i++) {
		const char *key = str_of(v->seq.v[i]);
		struct storage *s = key ? find_storage(L, key) : NULL;
		if (!s) {
			rc = fail(L, "storage key %zu is not a storage of the pickle", i);
			break;
		}
		if (s->data) {
			rc = fail(L, "storage '%s' appears twice", key);
			break;
		}
		uint64_t numel = 0;
		if (len - pos < 8) {
			rc = fail(L, "truncated before storage '%s'", key);
			break;
		}
		for (int k = 7; k >= 0; k--)
			numel = numel << 8 | buf[pos + k];
		pos += 8;
		size_t es = st_dtype_size(s->dtype);
		if (numel != s->numel)
			rc = fail(L, "storage '%s' holds %llu elements, the pickle "
				     "says %llu",
				  key, (unsigned long long)numel,
				  (unsigned long long)s->numel);
		else if (numel > (len - pos) / es)
			rc = fail(L, "storage '%s' is truncated: %llu elements of "
				     "%zu bytes, %zu bytes left",
				  key, (unsigned long long)numel, es, len - pos);
		else {
			s->data = buf + pos;
			pos += (size_t)numel * es;
		}
	}
	pk_free(arena);
	if (rc == 0 && pos != len)
		rc = fail(L, "%zu bytes after the last storage", len - pos);
	return rc;
}

int tl_is_torch(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	return (len >= 4 && memcmp(p, "PK\3\4", 4) == 0) || skip_magic(p, len) > 0;
}

int tl_read_buffer(struct tl_checkpoint *c, const void *buf, size_t len,
		   unsigned flags, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	c->epoch = -1;
	struct loader L = {.c = c, .err = err, .errlen = errlen, .flags = flags};
	const uint8_t *p = buf;
	int rc;
	if (len >= 4 && memcmp(p, "PK\3\4", 4) == 0)
		rc = read_zip(&L, buf, len);
	else if (skip_magic(p, len))
		rc = read_legacy(&L, p, len);
	else if (len >= 262 && memcmp(p + 257, "ustar", 5) == 0)
		rc = fail(&L, "the tar format of torch < 0.4 is not supported "
			      "(load and save it again with a newer torch)");
	else
		rc = fail(&L, "not a PyTorch checkpoint (neither the zip nor the "
			      "legacy format of torch.save)");
	if (rc == 0)
		rc = make_tensors(&L);
	for (size_t i = 0; i < L.tabcap; i++)
		if (L.tab[i]) {
			free(L.tab[i]->key);
			free(L.tab[i]);
		}
	free(L.tab);
	for (int i = 0; i < L.npend; i++)
		free(L.pend[i].name);
	free(L.pend);
	if (rc < 0)
		tl_free(c);
	return rc;
}

int tl_read_file(struct tl_checkpoint *c, const char *path, unsigned flags,
		 char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	struct tk_mapped m;
	if (tk_map_whole(path, &m, err, errlen) < 0)
		return -2;
	char what[1024];
	if (tl_read_buffer(c, m.addr ? m.addr : "", m.len, flags, what,
			   sizeof what) < 0) {
		snprintf(err, errlen, "%s: %s", path, what);
		tk_unmap_file(&m);
		return -1;
	}
	c->map = m;
	return 0;
}

void tl_free(struct tl_checkpoint *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->t[i].name);
	free(c->t);
	for (int i = 0; i < c->nbufs; i++)
		free(c->bufs[i]);
	free(c->bufs);
	tk_unmap_file(&c->map);
	memset(c, 0, sizeof *c);
	c->epoch = -1;
}
