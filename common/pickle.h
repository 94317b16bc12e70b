/* pickle.h - a restricted unpickler: Python pickles (protocols 0-5) read
 * into a tree of plain values, with nothing ever executed.
 *
 * Plain data (None, bool, int incl. long, float, str, bytes, bytearray,
 * list, tuple, dict, set, frozenset) and the memo opcodes are always
 * accepted.  GLOBAL/STACK_GLOBAL, REDUCE, NEWOBJ(_EX), BUILD, INST, OBJ and
 * PERSID/BINPERSID are refused with an error naming the global, unless the
 * caller allows that global (torch checkpoints: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, ...) or persistent ids.  Even then
 * nothing runs: a call of an allowed global becomes a PK_CALL node that
 * the caller interprets.  With pk_options.opaque, any other global is
 * not refused there but becomes a PK_OPAQUE node (its calls PK_CALLs of
 * it), which the caller refuses where it meets one it needs: so that a
 * checkpoint's state_dict loads beside entries it does not need (an
 * optimizer's numpy scalars, an argparse.Namespace).
 *
 * What the values mean:
 * - Python 2 str (STRING, BINSTRING, SHORT_BINSTRING) is a PK_STR whose
 *   bytes are read as Latin-1, as pickle.load(encoding='latin1') does.
 * - bytearray and frozenset arrive as PK_BYTES and PK_SET.  Protocols 0-3
 *   have no opcodes for bytes, set and bytearray: Python writes them as
 *   calls of _codecs.encode, builtins.set, builtins.bytearray, which are
 *   refused like any global unless allowed (then they are PK_CALLs).
 * - A dict or set keeps its items in pickle order; a repeated key stays
 *   repeated (pk_dict_get finds the last, as a Python dict would keep).
 * - Strings with surrogates (which Python pickles with 'surrogatepass')
 *   keep them as 3-byte sequences; PK_STR is otherwise valid UTF-8.
 * - The memo shares nodes: a value can appear in several places and a
 *   container can contain itself.  Walk trees with that in mind.
 * - Ints of more than 64 bits are an error naming their opcode (with
 *   pk_options.opaque, LONG1's and LONG4's are PK_OPAQUE); torch's
 *   legacy format starts with one (its magic number): skip that pickle by
 *   its known bytes. */
#ifndef TK_PICKLE_H
#define TK_PICKLE_H

#include <stddef.h>
#include <stdint.h>

enum pk_type {
	PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES,
	PK_LIST, PK_TUPLE, PK_DICT, PK_SET,
	PK_GLOBAL, /* an allowed global: "module.name" */
	PK_OPAQUE, /* with pk_options.opaque, any other: its name, in .global;
		    * also an int beyond 64 bits (LONG1, LONG4) */
	PK_CALL,   /* REDUCE/NEWOBJ of a global, BUILD state attached */
	PK_PERSID, /* a persistent id (torch storages), when allowed */
};

struct pk_value {
	enum pk_type type;
	union {
		int64_t i; /* PK_BOOL, PK_INT (ints beyond 64 bits: error) */
		double f;  /* PK_FLOAT */
		struct {   /* PK_STR (UTF-8, NUL-terminated), PK_BYTES */
			char *p;
			size_t len;
		} str;
		struct { /* PK_LIST, PK_TUPLE, PK_SET; PK_DICT: k0,v0,k1,v1.. */
			struct pk_value **v;
			size_t n;
		} seq;
		char *global; /* PK_GLOBAL, PK_OPAQUE */
		struct {      /* PK_CALL */
			struct pk_value *fn;    /* a PK_GLOBAL or PK_OPAQUE */
			struct pk_value *args;  /* a PK_TUPLE */
			struct pk_value *state; /* from BUILD, or NULL */
			struct pk_value *items; /* SETITEM(S) on it: a PK_DICT, or NULL */
			struct pk_value *list;  /* APPEND(S) on it: a PK_LIST, or NULL */
			struct pk_value *kwargs; /* NEWOBJ_EX: a PK_DICT; else NULL */
		} call;
		struct pk_value *pid; /* PK_PERSID: the id (a tuple for torch) */
	};
};

struct pk_options {
	/* NULL-terminated "module.name" globals that may appear; NULL: none. */
	const char *const *allow;
	int allow_persid; /* accept PERSID/BINPERSID */
	int opaque;       /* other globals as PK_OPAQUE nodes, not refused */
};

/* Everything a load allocates; freed at once. */
struct pk_arena;

/* Unpickle one pickle from buf[0..len).  Returns its root, and in *used
 * the bytes it took (so pickles back to back, as in torch's legacy format,
 * can be read in turn); NULL with a one-line message in err on any
 * malformed, truncated or refused input, ending "(pickle offset N)", the
 * offset of the opcode at fault, e.g.
 *   refused global 'os.system' (pickle offset 12)
 * Memory is linear in len; the stack and the memo are bounded.  *arena receives the memory,
 * also on failure; free it with pk_free. */
struct pk_value *pk_load(const void *buf, size_t len,
			 const struct pk_options *opt, struct pk_arena **arena,
			 size_t *used, char *err, size_t errlen);
void pk_free(struct pk_arena *arena);
/* pk_load of a whole file (bytes after the first pickle are ignored).  On
 * failure NULL, a message in err naming the file, and *io set to 1 when
 * the file could not be read (exit 3), 0 when it is a bad pickle (exit 2). */
struct pk_value *pk_load_file(const char *path, const struct pk_options *opt,
			      struct pk_arena **arena, int *io, char *err,
			      size_t errlen);

/* Value of a dict (or of a PK_CALL's items) under a str key; NULL if absent. */
const struct pk_value *pk_dict_get(const struct pk_value *d, const char *key);
/* Whether v is the str s. */
int pk_is_str(const struct pk_value *v, const char *s);
/* Number as double (PK_INT, PK_BOOL, PK_FLOAT); NAN otherwise. */
double pk_number(const struct pk_value *v);
const char *pk_type_name(enum pk_type t);

#endif
