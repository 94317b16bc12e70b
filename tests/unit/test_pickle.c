/* test_pickle - the restricted unpickler.
 *
 * Without arguments: hand-made pickles (cycles, memo sharing, refused
 * globals, hostile lengths and indices, allowed calls, every truncation).
 * With arguments, a helper for tests/tools/pickle-*.test:
 *   test_pickle --dump FILE [--allow G1,G2,..] [--persid] [--offset N]
 *               [--count K]
 *       renders K pickles (default 1) read back to back from offset N as
 *       tests/ref/pickle_render.py does, one line each, then "used U";
 *       on error prints "error: MSG" and exits 2.
 *   test_pickle --truncate FILE [--allow ..] [--persid]
 *       every proper prefix of FILE must fail with a one-line message
 *       ending in "(pickle offset N)". */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/pickle.h"

/* ---- rendering: a growing string ---- */

struct buf {
	char *p;
	size_t n, cap;
};

static void put(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		size_t room = b->cap - b->n;
		int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
		va_end(ap);
		if ((size_t)k < room) {
			b->n += k;
			return;
		}
		b->cap = b->cap * 2 + k + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
}

static void put_quoted(struct buf *b, const char *s, size_t n)
{
	put(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			put(b, "%c", c);
		else
			put(b, "\\x%02x", c);
	}
	put(b, "\"");
}

/* The nodes on the path from the root: a node met again on it is a cycle,
 * rendered "...". */
#define MAX_DEPTH 2000
static const struct pk_value *path[MAX_DEPTH];

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void render(struct buf *b, const struct pk_value *v, int depth);

static void render_seq(struct buf *b, const struct pk_value *v, int depth,
		       const char *open, const char *close)
{
	put(b, "%s", open);
	for (size_t i = 0; i < v->seq.n; i++) {
		if (i)
			put(b, v->type == PK_DICT && i % 2 ? ": " : ", ");
		render(b, v->seq.v[i], depth + 1);
	}
	put(b, "%s", close);
}

static void render(struct buf *b, const struct pk_value *v, int depth)
{
	if (depth >= MAX_DEPTH) {
		put(b, "<too deep>");
		return;
	}
	for (int i = 0; i < depth; i++)
		if (path[i] == v) {
			put(b, "...");
			return;
		}
	path[depth] = v;
	switch (v->type) {
	case PK_NONE: put(b, "None"); break;
	case PK_BOOL: put(b, v->i ? "True" : "False"); break;
	case PK_INT: put(b, "%lld", (long long)v->i); break;
	case PK_FLOAT: put(b, "%.17g", v->f); break;
	case PK_STR: put_quoted(b, v->str.p, v->str.len); break;
	case PK_BYTES:
		put(b, "b");
		put_quoted(b, v->str.p, v->str.len);
		break;
	case PK_LIST: render_seq(b, v, depth, "[", "]"); break;
	case PK_TUPLE: render_seq(b, v, depth, "(", ")"); break;
	case PK_DICT: render_seq(b, v, depth, "{", "}"); break;
	case PK_SET: { /* Python's set order is its hash order: sort */
		char **items = calloc(v->seq.n + 1, sizeof *items);
		for (size_t i = 0; i < v->seq.n; i++) {
			struct buf e = {0};
			put(&e, "%s", "");
			render(&e, v->seq.v[i], depth + 1);
			items[i] = e.p;
		}
		qsort(items, v->seq.n, sizeof *items, cmp_str);
		put(b, "set{");
		for (size_t i = 0; i < v->seq.n; i++) {
			put(b, "%s%s", i ? ", " : "", items[i]);
			free(items[i]);
		}
		put(b, "}");
		free(items);
		break;
	}
	case PK_GLOBAL: put(b, "G%s", v->global); break;
	case PK_OPAQUE: put(b, "O%s", v->global); break;
	case PK_CALL:
		put(b, "C(");
		render(b, v->call.fn, depth + 1);
		put(b, ", ");
		render(b, v->call.args, depth + 1);
		if (v->call.kwargs) {
			put(b, ", kwargs=");
			render(b, v->call.kwargs, depth + 1);
		}
		if (v->call.state) {
			put(b, ", state=");
			render(b, v->call.state, depth + 1);
		}
		if (v->call.items) {
			put(b, ", items=");
			render(b, v->call.items, depth + 1);
		}
		if (v->call.list) {
			put(b, ", list=");
			render(b, v->call.list, depth + 1);
		}
		put(b, ")");
		break;
	case PK_PERSID:
		put(b, "P(");
		render(b, v->pid, depth + 1);
		put(b, ")");
		break;
	}
}

/* Load and render; the rendering or "error: MSG" in *out (malloc'd). */
static int load_render(const void *p, size_t n, const struct pk_options *o,
		       char **out, size_t *used)
{
	struct pk_arena *a;
	char err[512];
	size_t u = 0;
	struct pk_value *v = pk_load(p, n, o, &a, &u, err, sizeof err);
	struct buf b = {0};
	if (v)
		render(&b, v, 0);
	else
		put(&b, "error: %s", err);
	pk_free(a);
	*out = b.p;
	if (used)
		*used = u;
	return v ? 0 : -1;
}

/* Check that bytes load to the rendering want (or "error: ..."). */
static int expect(const char *what, const void *p, size_t n,
		  const struct pk_options *o, const char *want)
{
	char *got;
	load_render(p, n, o, &got, NULL);
	int ok = strcmp(got, want) == 0;
	if (!ok)
		fprintf(stderr, "%s: got   %s\n%s: want  %s\n", what, got, what, want);
	CHECK(ok);
	free(got);
	return ok;
}

#define EXPECT(bytes, want) expect(#bytes, bytes, sizeof bytes - 1, NULL, want)
#define EXPECT_OPT(bytes, o, want) expect(#bytes, bytes, sizeof bytes - 1, o, want)

/* Every proper prefix fails with one line naming an offset. */
static int truncations(const unsigned char *p, size_t n,
		       const struct pk_options *o)
{
	int bad = 0;
	for (size_t k = 0; k < n; k++) {
		struct pk_arena *a;
		char err[512];
		struct pk_value *v = pk_load(p, k, o, &a, NULL, err, sizeof err);
		if (v || !strstr(err, "(pickle offset ") || strchr(err, '\n')) {
			fprintf(stderr, "prefix of %zu bytes: %s\n", k,
				v ? "loaded" : err);
			bad++;
		}
		pk_free(a);
	}
	return bad;
}

static void test_plain(void)
{
	EXPECT("N.", "None");
	EXPECT("\x80\x02\x88.", "True");
	EXPECT("I01\n.", "True");
	EXPECT("I00\n.", "False");
	EXPECT("I1\n.", "1");
	EXPECT("I-42\n.", "-42");
	EXPECT("L-9223372036854775808L\n.", "-9223372036854775808");
	EXPECT("L9223372036854775807\n.", "9223372036854775807");
	EXPECT("L9223372036854775808L\n.",
	       "error: LONG: integer beyond 64 bits (pickle offset 0)");
	EXPECT("J\xff\xff\xff\xff.", "-1");
	EXPECT("K\xff.", "255");
	EXPECT("M\xff\xff.", "65535");
	EXPECT("\x8a\x00.", "0");
	EXPECT("\x8a\x01\xff.", "-1");
	EXPECT("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f.", "9223372036854775807");
	EXPECT("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\xff.",
	       "-9223372036854775808");
	EXPECT("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.",
	       "error: LONG1: integer of 9 bytes beyond 64 bits (pickle offset 0)");
	EXPECT("\x8b\xff\xff\xff\xff.",
	       "error: LONG4 with a negative byte count (pickle offset 0)");
	EXPECT("F1.5\n.", "1.5");
	EXPECT("G?\xf8\x00\x00\x00\x00\x00\x00.", "1.5");
	EXPECT("S'a\\'b\\x41\\101\\n\\q'\n.", "\"a'bAA\\x0a\\x5cq\"");
	EXPECT("U\x02\xe9x.", "\"\\xc3\\xa9x\"");
	EXPECT("Vx\\u00e9\\U0001F600\\\\u\n.",
	       "\"x\\xc3\\xa9\\xf0\\x9f\\x98\\x80\\x5c\\x5cu\"");
	EXPECT("X\x02\x00\x00\x00\xc3\xa9.", "\"\\xc3\\xa9\"");
	EXPECT("X\x01\x00\x00\x00\xe9.",
	       "error: BINUNICODE is not valid UTF-8 (pickle offset 0)");
	EXPECT("C\x02" "ab.", "b\"ab\"");
	EXPECT("(I1\nI2\nl.", "[1, 2]");
	EXPECT("(I1\nI2\nt.", "(1, 2)");
	EXPECT("(I1\nI2\nd.", "{1: 2}");
	EXPECT("(I1\nd.", "error: DICT with an odd number of items (pickle offset 4)");
	EXPECT("K\x01K\x02\x86.", "(1, 2)");
	EXPECT("\x8f(K\x01K\x02\x90.", "set{1, 2}");
	EXPECT("(K\x01\x91.", "set{1}");
	EXPECT("K\x01K\x02" "0.", "1");
	EXPECT("K\x01(K\x02K\x03" "1.", "1");
	EXPECT("K\x01(0.", "1"); /* POP right after MARK pops the mark */
	EXPECT("K\x01" "2\x86.", "(1, 1)");
	EXPECT("(0.", "error: STOP: pickle stack underflow (pickle offset 2)");
	EXPECT("K\x01(.", "error: STOP: pickle stack underflow (pickle offset 3)");
	EXPECT("K\x01(\x85.", "error: TUPLE1: pickle stack underflow (pickle offset 3)");
	EXPECT("}K\x01s.", "error: SETITEM: pickle stack underflow (pickle offset 3)");
	EXPECT("l.", "error: LIST without a MARK (pickle offset 0)");
	EXPECT("\x80\x06N.", "error: unsupported pickle protocol 6 (pickle offset 0)");
	EXPECT("\xff", "error: unknown pickle opcode 0xff (pickle offset 0)");
	EXPECT("", "error: empty pickle (pickle offset 0)");
	EXPECT("N", "error: pickle ends without STOP (pickle offset 1)");
	EXPECT("X\xff\xff\xff\xff" "ab.",
	       "error: pickle truncated in BINUNICODE (pickle offset 0)");
	EXPECT("\x8e\xff\xff\xff\xff\xff\xff\xff\xff" "ab.",
	       "error: pickle truncated in BINBYTES8 (pickle offset 0)");
	EXPECT("\x95\xff\xff\xff\xff\xff\xff\xff\x7fN.",
	       "error: FRAME of 9223372036854775807 bytes beyond the end (pickle offset 0)");
	EXPECT("Nr\xff\xff\xff\xff.",
	       "error: LONG_BINPUT: memo index 4294967295 beyond the pickle's length (pickle offset 1)");
	EXPECT("NNNNh\x05.", "error: BINGET: memo key 5 missing (pickle offset 4)");
	EXPECT("Np99999999999999999999\n.",
	       "error: PUT: integer beyond 64 bits (pickle offset 1)");
	EXPECT("\x97", "error: refused out-of-band buffer (NEXT_BUFFER) (pickle offset 0)");
	EXPECT("\x82\x07", "error: refused extension code 7 (EXT1) (pickle offset 0)");
	EXPECT("]Nb.", "error: BUILD on a list (pickle offset 2)");
	EXPECT("]K\x01u.", "error: SETITEMS without a MARK (pickle offset 3)");
	EXPECT(")(K\x01" "e.", "error: APPENDS to a tuple (pickle offset 4)");
	EXPECT("N)R.", "error: REDUCE: callable is a None, not an allowed global "
		       "(pickle offset 2)");
}

static void test_refused(void)
{
	/* protocol 0 with GLOBAL, protocol 4 with STACK_GLOBAL */
	EXPECT("cos\nsystem\n(S'echo hi'\ntR.",
	       "error: refused global 'os.system' (pickle offset 0)");
	EXPECT("\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x08" "builtins"
	       "\x94\x8c\x04" "eval\x94\x93\x94.",
	       "error: refused global 'builtins.eval' (pickle offset 29)");
	EXPECT("(cos\nsystem\nS'x'\ni.",
	       "error: refused global 'os.system' (pickle offset 1)");
	EXPECT("\x8c\x02os\x8c\x07sys\ntem\x93.",
	       "error: refused global 'os.sys?tem' (pickle offset 13)");
	EXPECT("K\x01K\x02\x93.",
	       "error: STACK_GLOBAL: module and name are a int and a int, not "
	       "strings (pickle offset 4)");
	EXPECT("S'x'\nQ.", "error: refused persistent id (BINPERSID) (pickle offset 5)");
	EXPECT("Pabc\n.", "error: refused persistent id (PERSID) (pickle offset 0)");
	/* Allowed for another caller is not allowed here. */
	static const char *const allow[] = {"collections.OrderedDict", NULL};
	struct pk_options o = {allow, 0, 0};
	EXPECT_OPT("cos\nsystem\n.", &o,
		   "error: refused global 'os.system' (pickle offset 0)");
	/* opaque: other globals are named nodes, their calls calls of them,
	 * never run; the allowed ones as before */
	struct pk_options op = {allow, 0, 1};
	EXPECT_OPT("cos\nsystem\n.", &op, "Oos.system");
	EXPECT_OPT("cos\nsystem\nS'x'\n\x85R.", &op, "C(Oos.system, (\"x\"))");
	EXPECT_OPT("ccollections\nOrderedDict\n)R.", &op,
		   "C(Gcollections.OrderedDict, ())");
	/* numpy.float64(0.5) as numpy pickles it (protocol 2): a call of
	 * numpy's scalar with a dtype that BUILD sets, and bytes made by
	 * _codecs.encode */
	static const char np_half[] =
	    "\200\002cnumpy.core.multiarray\012scalar\012q\000cnumpy\012dtype\012"
	    "q\001X\002\000\000\000f8q\002\211\210\207q\003Rq\004(K\003X\001\000"
	    "\000\000<q\005NNNJ\377\377\377\377J\377\377\377\377K\000tq\006bc_"
	    "codecs\012encode\012q\007X\011\000\000\000\000\000\000\000\000\000"
	    "\303\240\077q\010X\006\000\000\000latin1q\011\206q\012Rq\013\206q"
	    "\014Rq\015.";
	char *got;
	int r = load_render(np_half, sizeof np_half - 1, &op, &got, NULL);
	if (r || strncmp(got, "C(Onumpy.core.multiarray.scalar, (C(Onumpy.dtype, ", 50))
		fprintf(stderr, "numpy.float64: %s\n", got);
	CHECK(r == 0 && !strncmp(got, "C(Onumpy.core.multiarray.scalar, (C(Onumpy.dtype, ", 50));
	free(got);
	CHECK(load_render(np_half, sizeof np_half - 1, &o, &got, NULL) == -1 &&
	      strstr(got, "refused global 'numpy.core.multiarray.scalar'"));
	free(got);
	/* still refused: a persistent id without allow_persid */
	EXPECT_OPT("S'x'\nQ.", &op, "error: refused persistent id (BINPERSID) (pickle offset 5)");
}

static void test_memo(void)
{
	/* l = []; l.append(l): a cycle, freed once by pk_free */
	EXPECT("]q\x00h\x00" "a.", "[...]");
	/* d = {}; d['self'] = d; l = [d, d] */
	EXPECT("](}q\x01X\x04\x00\x00\x00selfh\x01sh\x01" "e.",
	       "[{\"self\": ...}, {\"self\": ...}]");
	/* a shared list, filled after it was shared */
	EXPECT("]q\x00(h\x00h\x00tq\x01" "0K\x01" "aK\x02" "a0h\x01.",
	       "([1, 2], [1, 2])");
	/* MEMOIZE numbers entries in order, after sparse PUTs too */
	EXPECT("K\x07p3\n0K\x08\x94(g3\nh\x01t.", "(7, 8)");
	/* a long chain of DUP + APPEND: lists nested 100000 deep */
	size_t depth = 100000;
	unsigned char *p = malloc(2 * depth + 2), *q = p;
	*q++ = ']';
	for (size_t i = 0; i < depth; i++) {
		*q++ = ']';
		*q++ = 'a';
	}
	*q++ = '.';
	struct pk_arena *a;
	char err[256];
	struct pk_value *v = pk_load(p, q - p, NULL, &a, NULL, err, sizeof err);
	CHECK(v && v->type == PK_LIST && v->seq.n == depth);
	pk_free(a);
	free(p);
}

static void test_allowed(void)
{
	static const char *const allow[] = {
	    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
	    "torch.FloatStorage", "mod.Cls", NULL};
	struct pk_options o = {allow, 1, 0};
	/* OrderedDict() with SETITEMS and BUILD state */
	EXPECT_OPT("ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00" "aK\x01u"
		   "}X\x08\x00\x00\x00_metadatNsb.",
		   &o,
		   "C(Gcollections.OrderedDict, (), state={\"_metadat\": None}, "
		   "items={\"a\": 1})");
	EXPECT_OPT("ccollections\nOrderedDict\n)Rb.", &o,
		   "error: BUILD: pickle stack underflow (pickle offset 27)");
	EXPECT_OPT("ccollections\nOrderedDict\n)R}b}b.", &o,
		   "error: BUILD twice on the same object (pickle offset 30)");
	/* a persistent id tuple naming a storage type */
	EXPECT_OPT("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00"
		   "\x00\x00" "0tQ.",
		   &o, "P((\"storage\", Gtorch.FloatStorage, \"0\"))");
	EXPECT_OPT("Pabc\n.", &o, "P(\"abc\")");
	/* NEWOBJ, NEWOBJ_EX, OBJ, INST, APPENDS on a call */
	EXPECT_OPT("cmod\nCls\nK\x01\x85\x81(K\x02" "e.", &o,
		   "C(Gmod.Cls, (1), list=[2])");
	EXPECT_OPT("cmod\nCls\n)}\x92.", &o, "C(Gmod.Cls, (), kwargs={})");
	EXPECT_OPT("(cmod\nCls\nK\x01o.", &o, "C(Gmod.Cls, (1))");
	EXPECT_OPT("(K\x01imod\nCls\n.", &o, "C(Gmod.Cls, (1))");
	EXPECT_OPT("cmod\nCls\nK\x01R.", &o,
		   "error: REDUCE: arguments are a int, not a tuple (pickle offset 11)");
	EXPECT_OPT("cmod\nCls\n)RK\x01\x90.", &o, "error: ADDITEMS without a MARK "
						  "(pickle offset 13)");
}

static void test_truncations(void)
{
	static const char *const allow[] = {"collections.OrderedDict", "mod.Cls",
					    NULL};
	struct pk_options o = {allow, 1, 0};
	static const char p1[] =
	    "\x80\x04\x95\x35\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01" "a\x94]"
	    "\x94(K\x01M\x00\x01J\x00\x00\x00\x80\x8a\x02\x00\x80G?\xf0\x00\x00"
	    "\x00\x00\x00\x00" "e\x8c\x01" "b\x94" "C\x02xy\x8f(N\x88\x89\x90h\x02\x85u.";
	CHECK(expect("p1", p1, sizeof p1 - 1, NULL,
		     "{\"a\": [1, 256, -2147483648, -32768, 1], \"b\": b\"xy\", "
		     "set{False, None, True}: ([1, 256, -2147483648, -32768, 1])}"));
	CHECK(truncations((const unsigned char *)p1, sizeof p1 - 1, NULL) == 0);
	static const char p2[] =
	    "(dp0\nS'k'\np1\n(lp2\nI01\naF2.5\naL12L\naVx\\u00e9\np3\nag3\nasS"
	    "'t'\n(I1\nI2\ntp4\ns(cmod\nCls\nK\x01o(K\x02K\x03u.";
	CHECK(truncations((const unsigned char *)p2, sizeof p2 - 1, &o) == 0);
}

/* ---- the command-line helper ---- */

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		perror(path);
		exit(3);
	}
	unsigned char *p = NULL;
	size_t cap = 0;
	*n = 0;
	for (;;) {
		if (*n == cap)
			p = realloc(p, cap = cap * 2 + 65536);
		size_t k = fread(p + *n, 1, cap - *n, fp);
		if (!k)
			break;
		*n += k;
	}
	fclose(fp);
	return p;
}

static int tool(int argc, char **argv)
{
	const char *mode = argv[1], *file = NULL;
	char *allowlist = NULL;
	const char *allow[64] = {NULL};
	struct pk_options o = {allow, 0, 0};
	size_t offset = 0;
	long count = 1;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--allow") && i + 1 < argc) {
			allowlist = strdup(argv[++i]);
			int k = 0;
			for (char *t = strtok(allowlist, ","); t && k < 63;
			     t = strtok(NULL, ","))
				allow[k++] = t;
		} else if (!strcmp(argv[i], "--persid")) {
			o.allow_persid = 1;
		} else if (!strcmp(argv[i], "--offset") && i + 1 < argc) {
			offset = strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			count = strtol(argv[++i], NULL, 10);
		} else if (!file) {
			file = argv[i];
		} else {
			fprintf(stderr, "usage: test_pickle --dump|--truncate FILE ...\n");
			return 1;
		}
	}
	if (!file)
		return 1;
	size_t n;
	unsigned char *p = read_file(file, &n);
	int rc = 0;
	if (!strcmp(mode, "--truncate")) {
		rc = truncations(p, n, &o) ? 1 : 0;
	} else if (!strcmp(mode, "--dump")) {
		if (offset > n)
			offset = n;
		for (long c = 0; c < count && !rc; c++) {
			char *out;
			size_t used;
			rc = load_render(p + offset, n - offset, &o, &out, &used) ? 2 : 0;
			printf("%s\n", out);
			free(out);
			offset += used;
		}
		if (!rc)
			printf("used %zu\n", offset);
	} else {
		rc = 1;
	}
	free(p);
	free(allowlist);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return tool(argc, argv);
	test_plain();
	test_refused();
	test_memo();
	test_allowed();
	test_truncations();
	return CHECK_DONE();
}
