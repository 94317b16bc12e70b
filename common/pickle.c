/* pickle.c - a restricted unpickler: the pickle virtual machine of
 * Python's _pickle.c without the part that imports and calls.  Values live
 * in an arena freed at once, so memo sharing (a DAG) and cycles (a list
 * appended to itself) cost nothing to free and can never be freed twice.
 *
 * Every length is checked against the bytes left before it is used, every
 * memo index against the input length (a pickler numbers its memo entries
 * from 0, one PUT per entry, so a real index is always below the length),
 * and the stack and mark stack have a fixed bound.  Memory is linear in the
 * input: each opcode byte makes at most one node or one pointer, and the
 * memo grows with the indices used (a pickle followed by gigabytes of
 * tensor data, as in torch's legacy format, costs what the pickle uses). */
#include "pickle.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK (1u << 24) /* values on the stack, and marks */
#define CHUNK (64u << 10)    /* arena chunk */

struct chunk {
	struct chunk *next;
	size_t used, size;
	_Alignas(16) unsigned char data[];
};

struct pk_arena {
	struct chunk *chunks;
	/* Containers own a malloc'd array (seq.v) that grows; each is listed
	 * here once and its array freed by pk_free. */
	struct pk_value **owners;
	size_t nowners, capowners;
};

struct vm {
	const unsigned char *p;
	size_t len, pos, op; /* op: offset of the opcode being run */
	const struct pk_options *opt;
	struct pk_arena *a;
	struct pk_value **stack;
	size_t n, cap;
	size_t *marks;
	size_t nmarks, capmarks;
	struct pk_value **memo; /* [capmemo], NULL where unset */
	size_t capmemo, memolen; /* memolen: entries set, for MEMOIZE */
	char *err;
	size_t errlen;
	int failed;
};

/* ---- errors ---- */

static int fail(struct vm *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct vm *m, const char *fmt, ...)
{
	if (m->failed)
		return -1;
	m->failed = 1;
	if (!m->err || !m->errlen)
		return -1;
	char msg[512], where[48];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* The offset always fits: the message gives way. */
	int nw = snprintf(where, sizeof where, " (pickle offset %zu)", m->op);
	size_t room = m->errlen > (size_t)nw ? m->errlen - nw - 1 : 0;
	if (strlen(msg) > room)
		msg[room] = 0;
	snprintf(m->err, m->errlen, "%s%s", msg, where);
	/* One line, whatever the names in it held. */
	for (char *s = m->err; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	return -1;
}

/* A name from the pickle, printable ASCII and short, for a message. */
static const char *shown(char *buf, size_t size, const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 4 < size; i++)
		buf[k++] = s[i] < 0x20 || s[i] >= 0x7f ? '?' : s[i];
	if (k + 4 >= size && n > k)
		memcpy(buf + k, "...", 3), k += 3;
	buf[k] = 0;
	return buf;
}

/* ---- the arena ---- */

static void *alloc(struct vm *m, size_t n)
{
	struct pk_arena *a = m->a;
	if (n > SIZE_MAX / 2) {
		fail(m, "out of memory");
		return NULL;
	}
	n = (n + 15) & ~(size_t)15;
	struct chunk *c = a->chunks;
	if (!c || c->size - c->used < n) {
		size_t size = n > CHUNK / 4 ? n : CHUNK;
		c = malloc(sizeof *c + size);
		if (!c) {
			fail(m, "out of memory");
			return NULL;
		}
		c->size = size;
		c->used = 0;
		/* A large block goes behind the current chunk so that the
		 * current one keeps filling up. */
		if (a->chunks && size != CHUNK) {
			c->next = a->chunks->next;
			a->chunks->next = c;
		} else {
			c->next = a->chunks;
			a->chunks = c;
		}
	}
	void *p = c->data + c->used;
	c->used += n;
	return p;
}

static struct pk_value *node(struct vm *m, enum pk_type t)
{
	struct pk_value *v = alloc(m, sizeof *v);
	if (v) {
		memset(v, 0, sizeof *v);
		v->type = t;
	}
	return v;
}

/* A container whose seq.v the arena frees. */
static struct pk_value *container(struct vm *m, enum pk_type t)
{
	struct pk_arena *a = m->a;
	if (a->nowners == a->capowners) {
		size_t cap = a->capowners ? 2 * a->capowners : 64;
		struct pk_value **o = realloc(a->owners, cap * sizeof *o);
		if (!o) {
			fail(m, "out of memory");
			return NULL;
		}
		a->owners = o;
		a->capowners = cap;
	}
	struct pk_value *v = node(m, t);
	if (v)
		a->owners[a->nowners++] = v;
	return v;
}

/* A container's seq.v holds room for max(4, the next power of two >= n)
 * values, none while it is empty: it grows when n reaches such a size. */
static int seq_append(struct vm *m, struct pk_value *c, struct pk_value *x)
{
	size_t n = c->seq.n;
	if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
		struct pk_value **v = realloc(c->seq.v, (n ? 2 * n : 4) * sizeof *v);
		if (!v)
			return fail(m, "out of memory");
		c->seq.v = v;
	}
	c->seq.v[c->seq.n++] = x;
	return 0;
}

void pk_free(struct pk_arena *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nowners; i++)
		free(a->owners[i]->seq.v);
	free(a->owners);
	for (struct chunk *c = a->chunks, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(a);
}

/* ---- input ---- */

static int need(struct vm *m, size_t n, const char *what)
{
	if (n > m->len - m->pos)
		return fail(m, "pickle truncated in %s", what);
	return 0;
}

static uint64_t le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* An unsigned little-endian count of n bytes. */
static int read_count(struct vm *m, int n, const char *what, uint64_t *v)
{
	if (need(m, n, what))
		return -1;
	*v = le(m->p + m->pos, n);
	m->pos += n;
	return 0;
}

/* The text argument of a protocol-0 opcode: up to the newline, which is
 * consumed but not included. */
static int read_line(struct vm *m, const char *what, const char **s, size_t *n)
{
	const unsigned char *start = m->p + m->pos;
	const unsigned char *nl = memchr(start, '\n', m->len - m->pos);
	if (!nl)
		return fail(m, "pickle truncated in %s (no newline)", what);
	*s = (const char *)start;
	*n = nl - start;
	m->pos += *n + 1;
	return 0;
}

/* ---- the stack ---- */

static size_t fence(const struct vm *m)
{
	return m->nmarks ? m->marks[m->nmarks - 1] : 0;
}

static int push(struct vm *m, struct pk_value *v)
{
	if (!v)
		return -1;
	if (m->n == m->cap) {
		if (m->cap >= MAX_STACK)
			return fail(m, "pickle stack deeper than %u", MAX_STACK);
		size_t cap = m->cap ? 2 * m->cap : 64;
		struct pk_value **s = realloc(m->stack, cap * sizeof *s);
		if (!s)
			return fail(m, "out of memory");
		m->stack = s;
		m->cap = cap;
	}
	m->stack[m->n++] = v;
	return 0;
}

static struct pk_value *pop(struct vm *m, const char *what)
{
	if (m->n <= fence(m)) {
		fail(m, "%s: pickle stack underflow", what);
		return NULL;
	}
	return m->stack[--m->n];
}

static struct pk_value *top(struct vm *m, const char *what)
{
	if (m->n <= fence(m)) {
		fail(m, "%s: pickle stack underflow", what);
		return NULL;
	}
	return m->stack[m->n - 1];
}

static int mark(struct vm *m)
{
	if (m->nmarks == m->capmarks) {
		if (m->capmarks >= MAX_STACK)
			return fail(m, "more than %u marks", MAX_STACK);
		size_t cap = m->capmarks ? 2 * m->capmarks : 16;
		size_t *s = realloc(m->marks, cap * sizeof *s);
		if (!s)
			return fail(m, "out of memory");
		m->marks = s;
		m->capmarks = cap;
	}
	m->marks[m->nmarks++] = m->n;
	return 0;
}

/* The values above the top mark, which is removed: *items points into the
 * stack (valid until the next push), *k counts them. */
static int pop_mark(struct vm *m, const char *what, struct pk_value ***items,
		    size_t *k)
{
	*items = NULL;
	*k = 0;
	if (!m->nmarks)
		return fail(m, "%s without a MARK", what);
	size_t at = m->marks[--m->nmarks];
	*items = m->stack ? m->stack + at : NULL; /* NULL: nothing pushed yet */
	*k = m->n - at;
	m->n = at;
	return 0;
}

static struct pk_value *make_seq(struct vm *m, enum pk_type t,
				 struct pk_value **items, size_t k)
{
	struct pk_value *v = container(m, t);
	if (!v || !k)
		return v;
	size_t cap = 4;
	while (cap < k)
		cap *= 2;
	v->seq.v = malloc(cap * sizeof *v->seq.v);
	if (!v->seq.v) {
		fail(m, "out of memory");
		return NULL;
	}
	memcpy(v->seq.v, items, k * sizeof *items);
	v->seq.n = k;
	return v;
}

/* ---- values ---- */

static struct pk_value *make_int(struct vm *m, int64_t i)
{
	struct pk_value *v = node(m, PK_INT);
	if (v)
		v->i = i;
	return v;
}

static struct pk_value *make_bool(struct vm *m, int b)
{
	struct pk_value *v = node(m, PK_BOOL);
	if (v)
		v->i = b;
	return v;
}

static struct pk_value *make_float(struct vm *m, double f)
{
	struct pk_value *v = node(m, PK_FLOAT);
	if (v)
		v->f = f;
	return v;
}

/* A PK_STR or PK_BYTES of n bytes, NUL-terminated, contents to fill in. */
static struct pk_value *make_blob(struct vm *m, enum pk_type t, size_t n)
{
	if (n > SIZE_MAX - 64) {
		fail(m, "string too long");
		return NULL;
	}
	struct pk_value *v = node(m, t);
	if (!v)
		return NULL;
	v->str.p = alloc(m, n + 1);
	if (!v->str.p)
		return NULL;
	v->str.p[n] = 0;
	v->str.len = n;
	return v;
}

/* UTF-8, as Python's decoder with errors='surrogatepass' (the pickler's
 * encoding) accepts it: surrogate code points allowed, nothing overlong,
 * nothing above U+10FFFF. */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		int k;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if ((size_t)k > n - i - 1)
			return 0;
		for (int j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff)
			return 0;
		i += k + 1;
	}
	return 1;
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = 0xc0 | cp >> 6;
		out[1] = 0x80 | (cp & 0x3f);
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = 0xe0 | cp >> 12;
		out[1] = 0x80 | (cp >> 6 & 0x3f);
		out[2] = 0x80 | (cp & 0x3f);
		return 3;
	}
	out[0] = 0xf0 | cp >> 18;
	out[1] = 0x80 | (cp >> 12 & 0x3f);
	out[2] = 0x80 | (cp >> 6 & 0x3f);
	out[3] = 0x80 | (cp & 0x3f);
	return 4;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* BINUNICODE and friends: n bytes of UTF-8. */
static int op_unicode_bytes(struct vm *m, uint64_t n, const char *what)
{
	if (need(m, n, what))
		return -1;
	const unsigned char *s = m->p + m->pos;
	if (!valid_utf8(s, n))
		return fail(m, "%s is not valid UTF-8", what);
	struct pk_value *v = make_blob(m, PK_STR, n);
	if (!v)
		return -1;
	memcpy(v->str.p, s, n);
	m->pos += n;
	return push(m, v);
}

/* Python 2 str (STRING, BINSTRING, SHORT_BINSTRING): a PK_STR, its bytes
 * read as Latin-1 (what pickle.load(encoding='latin1') gives; ASCII is
 * unchanged). */
static int push_latin1(struct vm *m, const unsigned char *s, size_t n)
{
	size_t out = n;
	for (size_t i = 0; i < n; i++)
		out += s[i] >= 0x80;
	struct pk_value *v = make_blob(m, PK_STR, out);
	if (!v)
		return -1;
	char *d = v->str.p;
	for (size_t i = 0; i < n; i++)
		d += put_utf8(d, s[i]);
	return push(m, v);
}

/* The STRING opcode's argument: a quoted Python 2 repr, decoded as
 * codecs.escape_decode does. */
static int op_string(struct vm *m)
{
	const char *s;
	size_t n;
	if (read_line(m, "STRING", &s, &n))
		return -1;
	if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"'))
		return fail(m, "STRING argument is not quoted");
	s++;
	n -= 2;
	unsigned char *buf = malloc(n + 1);
	if (!buf)
		return fail(m, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c != '\\' || i + 1 == n) {
			/* A lone trailing backslash: escape_decode refuses it. */
			if (c == '\\') {
				free(buf);
				return fail(m, "STRING ends in a backslash");
			}
			buf[k++] = c;
			continue;
		}
		c = s[++i];
		switch (c) {
		case '\n': break;
		case '\\': buf[k++] = '\\'; break;
		case '\'': buf[k++] = '\''; break;
		case '"': buf[k++] = '"'; break;
		case 'a': buf[k++] = 7; break;
		case 'b': buf[k++] = 8; break;
		case 'f': buf[k++] = 12; break;
		case 'n': buf[k++] = 10; break;
		case 'r': buf[k++] = 13; break;
		case 't': buf[k++] = 9; break;
		case 'v': buf[k++] = 11; break;
		case 'x':
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
				free(buf);
				return fail(m, "STRING has a bad \\x escape");
			}
			buf[k++] = hexval(s[i + 1]) << 4 | hexval(s[i + 2]);
			i += 2;
			break;
		default:
			if (c >= '0' && c <= '7') {
				unsigned o = c - '0';
				for (int j = 0; j < 2 && i + 1 < n && s[i + 1] >= '0' &&
						s[i + 1] <= '7'; j++)
					o = o * 8 + (s[++i] - '0');
				buf[k++] = o & 0xff;
			} else { /* unknown escapes stay as they are */
				buf[k++] = '\\';
				buf[k++] = c;
			}
		}
	}
	int r = push_latin1(m, buf, k);
	free(buf);
	return r;
}

/* The UNICODE opcode's argument: raw-unicode-escape, Latin-1 bytes with
 * \uXXXX and \UXXXXXXXX. */
static int op_unicode_text(struct vm *m)
{
	const char *s;
	size_t n;
	if (read_line(m, "UNICODE", &s, &n))
		return -1;
	if (n > (SIZE_MAX - 64) / 2)
		return fail(m, "UNICODE too long");
	/* Each input byte makes at most 2 bytes of UTF-8; an escape of 6 or
	 * 10 bytes makes at most 4. */
	char *buf = malloc(2 * n + 1);
	if (!buf)
		return fail(m, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c != '\\' || i + 1 == n || (s[i + 1] != 'u' && s[i + 1] != 'U')) {
			k += put_utf8(buf + k, c);
			if (c == '\\' && i + 1 < n) /* "\\x": both literal */
				k += put_utf8(buf + k, (unsigned char)s[++i]);
			continue;
		}
		int digits = s[i + 1] == 'u' ? 4 : 8;
		if ((size_t)digits > n - i - 2) {
			free(buf);
			return fail(m, "UNICODE has a truncated \\%c escape", s[i + 1]);
		}
		uint32_t cp = 0;
		for (int j = 0; j < digits; j++) {
			int h = hexval(s[i + 2 + j]);
			if (h < 0) {
				free(buf);
				return fail(m, "UNICODE has a bad \\%c escape", s[i + 1]);
			}
			cp = cp << 4 | h;
		}
		if (cp > 0x10ffff) {
			free(buf);
			return fail(m, "UNICODE escape beyond U+10FFFF");
		}
		k += put_utf8(buf + k, cp);
		i += digits + 1;
	}
	struct pk_value *v = make_blob(m, PK_STR, k);
	if (v)
		memcpy(v->str.p, buf, k);
	free(buf);
	return v ? push(m, v) : -1;
}

static int op_bytes(struct vm *m, uint64_t n, const char *what)
{
	if (need(m, n, what))
		return -1;
	struct pk_value *v = make_blob(m, PK_BYTES, n);
	if (!v)
		return -1;
	memcpy(v->str.p, m->p + m->pos, n);
	m->pos += n;
	return push(m, v);
}

/* A decimal integer of a text opcode: optional sign, digits. */
static int parse_decimal(struct vm *m, const char *s, size_t n,
			 const char *what, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (i == n)
		return fail(m, "%s argument is not an integer", what);
	uint64_t v = 0;
	int big = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return fail(m, "%s argument is not an integer", what);
		if (v > (UINT64_MAX - 9) / 10)
			big = 1;
		else
			v = v * 10 + (s[i] - '0');
	}
	if (big || v > (uint64_t)INT64_MAX + neg)
		return fail(m, "%s: integer beyond 64 bits", what);
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* An int of n bytes beyond 64 bits: an error, or under pk_options.opaque
 * a PK_OPAQUE node saying so, refused where it is needed. */
static int big_int(struct vm *m, uint64_t n, const char *what)
{
	if (!m->opt || !m->opt->opaque)
		return fail(m, "%s: integer of %llu bytes beyond 64 bits", what,
			    (unsigned long long)n);
	struct pk_value *v = node(m, PK_OPAQUE);
	if (!v)
		return -1;
	v->global = (char *)"int beyond 64 bits";
	m->pos += n;
	return push(m, v);
}

/* LONG1/LONG4: n bytes, two's complement, little-endian. */
static int op_long_bin(struct vm *m, uint64_t n, const char *what)
{
	if (need(m, n, what))
		return -1;
	const unsigned char *b = m->p + m->pos;
	uint64_t v = 0;
	if (n) {
		int neg = b[n - 1] & 0x80;
		size_t k = n < 8 ? n : 8;
		v = le(b, k);
		if (k < 8 && neg)
			v |= ~(uint64_t)0 << (8 * k);
		/* Longer encodings fit when the rest is sign extension. */
		int vneg = (v >> 63) & 1;
		for (size_t i = 8; i < n; i++)
			if (b[i] != (vneg ? 0xff : 0x00))
				return big_int(m, n, what);
		if (n > 8 && !!neg != vneg)
			return big_int(m, n, what);
	}
	m->pos += n;
	return push(m, make_int(m, (int64_t)v));
}

/* ---- memo ---- */

static int memo_index(struct vm *m, uint64_t i, const char *what)
{
	if (i >= m->len) /* see the top of the file */
		return fail(m, "%s: memo index %llu beyond the pickle's length",
			    what, (unsigned long long)i);
	return 0;
}

static int memo_put(struct vm *m, uint64_t i, const char *what)
{
	struct pk_value *v = top(m, what);
	if (!v || memo_index(m, i, what))
		return -1;
	if (i >= m->capmemo) {
		size_t cap = m->capmemo ? 2 * m->capmemo : 64;
		if (cap <= i)
			cap = i + 1;
		struct pk_value **memo = realloc(m->memo, cap * sizeof *memo);
		if (!memo)
			return fail(m, "out of memory");
		memset(memo + m->capmemo, 0, (cap - m->capmemo) * sizeof *memo);
		m->memo = memo;
		m->capmemo = cap;
	}
	if (!m->memo[i])
		m->memolen++;
	m->memo[i] = v;
	return 0;
}

static int memo_get(struct vm *m, uint64_t i, const char *what)
{
	if (memo_index(m, i, what))
		return -1;
	if (i >= m->capmemo || !m->memo[i])
		return fail(m, "%s: memo key %llu missing", what,
			    (unsigned long long)i);
	return push(m, m->memo[i]);
}

static int text_memo_index(struct vm *m, const char *what, uint64_t *i)
{
	const char *s;
	size_t n;
	int64_t v;
	if (read_line(m, what, &s, &n) || parse_decimal(m, s, n, what, &v))
		return -1;
	if (v < 0)
		return fail(m, "%s: negative memo index", what);
	*i = (uint64_t)v;
	return 0;
}

/* ---- globals and calls ---- */

static int allowed(const struct vm *m, const char *name)
{
	if (m->opt && m->opt->allow)
		for (const char *const *a = m->opt->allow; *a; a++)
			if (strcmp(*a, name) == 0)
				return 1;
	return 0;
}

/* "module.name" as a PK_GLOBAL when allowed; if not, a PK_OPAQUE under
 * pk_options.opaque, else an error naming it. */
static int push_global(struct vm *m, const char *mod, size_t nmod,
		       const char *name, size_t nname, const char *what)
{
	char a[100], b[100];
	if (memchr(mod, 0, nmod) || memchr(name, 0, nname))
		return fail(m, "refused global '%s.%s' (%s)",
			    shown(a, sizeof a, mod, nmod),
			    shown(b, sizeof b, name, nname), what);
	struct pk_value *v = node(m, PK_GLOBAL);
	char *g = v ? alloc(m, nmod + nname + 2) : NULL;
	if (!g)
		return -1;
	memcpy(g, mod, nmod);
	g[nmod] = '.';
	memcpy(g + nmod + 1, name, nname);
	g[nmod + nname + 1] = 0;
	if (!allowed(m, g)) {
		if (!m->opt || !m->opt->opaque)
			return fail(m, "refused global '%s'",
				    shown(a, sizeof a, g, nmod + nname + 1));
		v->type = PK_OPAQUE;
	}
	v->global = g;
	return push(m, v);
}

static int op_global(struct vm *m, const char *what, const char **mod,
		     size_t *nmod, const char **name, size_t *nname)
{
	if (read_line(m, what, mod, nmod) || read_line(m, what, name, nname))
		return -1;
	return 0;
}

static int op_stack_global(struct vm *m)
{
	struct pk_value *name = pop(m, "STACK_GLOBAL");
	struct pk_value *mod = name ? pop(m, "STACK_GLOBAL") : NULL;
	if (!mod)
		return -1;
	if (mod->type != PK_STR || name->type != PK_STR)
		return fail(m, "STACK_GLOBAL: module and name are a %s and a %s, "
			       "not strings",
			    pk_type_name(mod->type), pk_type_name(name->type));
	return push_global(m, mod->str.p, mod->str.len, name->str.p,
			   name->str.len, "STACK_GLOBAL");
}

static int push_call(struct vm *m, struct pk_value *fn, struct pk_value *args,
		     struct pk_value *kwargs, const char *what)
{
	if (fn->type != PK_GLOBAL && fn->type != PK_OPAQUE)
		return fail(m, "%s: callable is a %s, not an allowed global", what,
			    pk_type_name(fn->type));
	if (args->type != PK_TUPLE)
		return fail(m, "%s: arguments are a %s, not a tuple", what,
			    pk_type_name(args->type));
	if (kwargs && kwargs->type != PK_DICT)
		return fail(m, "%s: keyword arguments are a %s, not a dict", what,
			    pk_type_name(kwargs->type));
	struct pk_value *v = node(m, PK_CALL);
	if (!v)
		return -1;
	v->call.fn = fn;
	v->call.args = args;
	v->call.kwargs = kwargs;
	return push(m, v);
}

static int op_reduce(struct vm *m, int ex, const char *what)
{
	struct pk_value *kwargs = ex ? pop(m, what) : NULL;
	if (ex && !kwargs)
		return -1;
	struct pk_value *args = pop(m, what);
	struct pk_value *fn = args ? pop(m, what) : NULL;
	if (!fn)
		return -1;
	return push_call(m, fn, args, kwargs, what);
}

/* INST and OBJ: arguments above the mark. */
static int op_inst(struct vm *m, int obj)
{
	const char *mod, *name;
	size_t nmod, nname;
	if (!obj && (op_global(m, "INST", &mod, &nmod, &name, &nname) ||
		     push_global(m, mod, nmod, name, nname, "INST")))
		return -1;
	struct pk_value *fn = obj ? NULL : m->stack[--m->n];
	struct pk_value **items;
	size_t k;
	if (pop_mark(m, obj ? "OBJ" : "INST", &items, &k))
		return -1;
	if (obj) {
		if (!k)
			return fail(m, "OBJ without a class");
		fn = items[0];
		items++;
		k--;
	}
	struct pk_value *args = make_seq(m, PK_TUPLE, items, k);
	if (!args)
		return -1;
	return push_call(m, fn, args, NULL, obj ? "OBJ" : "INST");
}

static int op_build(struct vm *m)
{
	struct pk_value *state = pop(m, "BUILD");
	struct pk_value *inst = state ? top(m, "BUILD") : NULL;
	if (!inst)
		return -1;
	if (inst->type != PK_CALL)
		return fail(m, "BUILD on a %s", pk_type_name(inst->type));
	if (inst->call.state)
		return fail(m, "BUILD twice on the same object");
	inst->call.state = state;
	return 0;
}

static int op_persid(struct vm *m, int bin)
{
	struct pk_value *pid;
	if (bin) {
		pid = pop(m, "BINPERSID");
		if (!pid)
			return -1;
	} else {
		const char *s;
		size_t n;
		if (read_line(m, "PERSID", &s, &n))
			return -1;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] >= 0x80)
				return fail(m, "PERSID argument is not ASCII");
		if (!(pid = make_blob(m, PK_STR, n)))
			return -1;
		memcpy(pid->str.p, s, n);
	}
	if (!m->opt || !m->opt->allow_persid)
		return fail(m, "refused persistent id (%s)", bin ? "BINPERSID" : "PERSID");
	struct pk_value *v = node(m, PK_PERSID);
	if (!v)
		return -1;
	v->pid = pid;
	return push(m, v);
}

/* ---- containers ---- */

/* The list APPEND(S) fills: a list, or the .list of a call. */
static struct pk_value *append_target(struct vm *m, struct pk_value *c,
				      const char *what)
{
	if (c->type == PK_LIST)
		return c;
	if (c->type == PK_CALL) {
		if (!c->call.list)
			c->call.list = container(m, PK_LIST);
		return c->call.list;
	}
	fail(m, "%s to a %s", what, pk_type_name(c->type));
	return NULL;
}

static struct pk_value *setitem_target(struct vm *m, struct pk_value *c,
				       const char *what)
{
	if (c->type == PK_DICT)
		return c;
	if (c->type == PK_CALL) {
		if (!c->call.items)
			c->call.items = container(m, PK_DICT);
		return c->call.items;
	}
	fail(m, "%s on a %s", what, pk_type_name(c->type));
	return NULL;
}

/* APPENDS, SETITEMS, ADDITEMS: the values above the mark into the
 * container below it (items stay valid: nothing is pushed meanwhile). */
enum fill { FILL_LIST, FILL_DICT, FILL_SET };
static int op_fill(struct vm *m, const char *what, enum fill kind)
{
	struct pk_value **items;
	size_t k;
	if (pop_mark(m, what, &items, &k))
		return -1;
	struct pk_value *c = top(m, what);
	if (!c)
		return -1;
	struct pk_value *t;
	if (kind == FILL_LIST)
		t = append_target(m, c, what);
	else if (kind == FILL_DICT)
		t = setitem_target(m, c, what);
	else if (c->type == PK_SET)
		t = c;
	else
		return fail(m, "%s to a %s", what, pk_type_name(c->type));
	if (!t)
		return -1;
	if (kind == FILL_DICT && k % 2)
		return fail(m, "%s with an odd number of items", what);
	for (size_t i = 0; i < k; i++)
		if (seq_append(m, t, items[i]))
			return -1;
	return 0;
}

static int op_append(struct vm *m)
{
	struct pk_value *x = pop(m, "APPEND");
	struct pk_value *c = x ? top(m, "APPEND") : NULL;
	struct pk_value *t = c ? append_target(m, c, "APPEND") : NULL;
	return t ? seq_append(m, t, x) : -1;
}

static int op_setitem(struct vm *m)
{
	struct pk_value *v = pop(m, "SETITEM");
	struct pk_value *k = v ? pop(m, "SETITEM") : NULL;
	struct pk_value *c = k ? top(m, "SETITEM") : NULL;
	struct pk_value *t = c ? setitem_target(m, c, "SETITEM") : NULL;
	if (!t || seq_append(m, t, k))
		return -1;
	return seq_append(m, t, v);
}

static int op_from_mark(struct vm *m, const char *what, enum pk_type t)
{
	struct pk_value **items;
	size_t k;
	if (pop_mark(m, what, &items, &k))
		return -1;
	if (t == PK_DICT && k % 2)
		return fail(m, "%s with an odd number of items", what);
	/* make_seq copies before push can move the stack. */
	return push(m, make_seq(m, t, items, k));
}

static int op_tuple_n(struct vm *m, size_t k, const char *what)
{
	if (m->n - fence(m) < k)
		return fail(m, "%s: pickle stack underflow", what);
	m->n -= k;
	return push(m, make_seq(m, PK_TUPLE, m->stack + m->n, k));
}

/* ---- the machine ---- */

static int step(struct vm *m, int *stop)
{
	unsigned char op = m->p[m->pos++];
	uint64_t n;
	const char *s, *s2;
	size_t ns, ns2;
	int64_t iv;
	switch (op) {
	case 0x80: /* PROTO */
		if (read_count(m, 1, "PROTO", &n))
			return -1;
		if (n > 5)
			return fail(m, "unsupported pickle protocol %d", (int)n);
		return 0;
	case 0x95: /* FRAME: a buffering hint; the length must fit */
		if (read_count(m, 8, "FRAME", &n))
			return -1;
		if (n > m->len - m->pos)
			return fail(m, "FRAME of %llu bytes beyond the end",
				    (unsigned long long)n);
		return 0;
	case '.': { /* STOP */
		struct pk_value *v = pop(m, "STOP");
		if (!v)
			return -1;
		m->stack[m->n++] = v; /* the root, where pk_load looks */
		*stop = 1;
		return 0;
	}
	case '(': return mark(m);
	case '0': /* POP: a value, or the mark right on top */
		if (m->nmarks && m->marks[m->nmarks - 1] == m->n) {
			m->nmarks--;
			return 0;
		}
		return pop(m, "POP") ? 0 : -1;
	case '1': { /* POP_MARK */
		struct pk_value **items;
		return pop_mark(m, "POP_MARK", &items, &ns);
	}
	case '2': { /* DUP */
		struct pk_value *v = top(m, "DUP");
		return v ? push(m, v) : -1;
	}
	case 'N': return push(m, node(m, PK_NONE));
	case 0x88: return push(m, make_bool(m, 1));
	case 0x89: return push(m, make_bool(m, 0));
	case 'I': /* INT; Python 2 wrote True and False as "01" and "00" */
		if (read_line(m, "INT", &s, &ns))
			return -1;
		if (ns == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1'))
			return push(m, make_bool(m, s[1] == '1'));
		if (parse_decimal(m, s, ns, "INT", &iv))
			return -1;
		return push(m, make_int(m, iv));
	case 'J':
		if (read_count(m, 4, "BININT", &n))
			return -1;
		return push(m, make_int(m, (int32_t)(uint32_t)n));
	case 'K':
		if (read_count(m, 1, "BININT1", &n))
			return -1;
		return push(m, make_int(m, (int64_t)n));
	case 'M':
		if (read_count(m, 2, "BININT2", &n))
			return -1;
		return push(m, make_int(m, (int64_t)n));
	case 'L': /* LONG: decimal, with Python 2's trailing 'L' */
		if (read_line(m, "LONG", &s, &ns))
			return -1;
		if (ns && s[ns - 1] == 'L')
			ns--;
		if (parse_decimal(m, s, ns, "LONG", &iv))
			return -1;
		return push(m, make_int(m, iv));
	case 0x8a:
		if (read_count(m, 1, "LONG1", &n))
			return -1;
		return op_long_bin(m, n, "LONG1");
	case 0x8b:
		if (read_count(m, 4, "LONG4", &n))
			return -1;
		if (n & 0x80000000u)
			return fail(m, "LONG4 with a negative byte count");
		return op_long_bin(m, n, "LONG4");
	case 'F': {
		if (read_line(m, "FLOAT", &s, &ns))
			return -1;
		char buf[64], *end;
		if (ns == 0 || ns >= sizeof buf)
			return fail(m, "FLOAT argument is not a number");
		memcpy(buf, s, ns);
		buf[ns] = 0;
		errno = 0;
		double f = strtod(buf, &end);
		while (*end == ' ' || *end == '\r')
			end++;
		if (end == buf || *end)
			return fail(m, "FLOAT argument is not a number");
		return push(m, make_float(m, f));
	}
	case 'G': {
		if (read_count(m, 8, "BINFLOAT", &n))
			return -1;
		/* big-endian: le() read it reversed */
		uint64_t b = __builtin_bswap64(n);
		double f;
		memcpy(&f, &b, sizeof f);
		return push(m, make_float(m, f));
	}
	case 'S': return op_string(m);
	case 'T':
		if (read_count(m, 4, "BINSTRING", &n))
			return -1;
		if (n & 0x80000000u)
			return fail(m, "BINSTRING with a negative length");
		if (need(m, n, "BINSTRING"))
			return -1;
		m->pos += n;
		return push_latin1(m, m->p + m->pos - n, n);
	case 'U':
		if (read_count(m, 1, "SHORT_BINSTRING", &n) ||
		    need(m, n, "SHORT_BINSTRING"))
			return -1;
		m->pos += n;
		return push_latin1(m, m->p + m->pos - n, n);
	case 'V': return op_unicode_text(m);
	case 'X':
		if (read_count(m, 4, "BINUNICODE", &n))
			return -1;
		return op_unicode_bytes(m, n, "BINUNICODE");
	case 0x8c:
		if (read_count(m, 1, "SHORT_BINUNICODE", &n))
			return -1;
		return op_unicode_bytes(m, n, "SHORT_BINUNICODE");
	case 0x8d:
		if (read_count(m, 8, "BINUNICODE8", &n))
			return -1;
		return op_unicode_bytes(m, n, "BINUNICODE8");
	case 'B':
		if (read_count(m, 4, "BINBYTES", &n))
			return -1;
		return op_bytes(m, n, "BINBYTES");
	case 'C':
		if (read_count(m, 1, "SHORT_BINBYTES", &n))
			return -1;
		return op_bytes(m, n, "SHORT_BINBYTES");
	case 0x8e:
		if (read_count(m, 8, "BINBYTES8", &n))
			return -1;
		return op_bytes(m, n, "BINBYTES8");
	case 0x96:
		if (read_count(m, 8, "BYTEARRAY8", &n))
			return -1;
		return op_bytes(m, n, "BYTEARRAY8");
	case ']': return push(m, container(m, PK_LIST));
	case 'l': return op_from_mark(m, "LIST", PK_LIST);
	case 'a': return op_append(m);
	case 'e': return op_fill(m, "APPENDS", FILL_LIST);
	case ')': return push(m, container(m, PK_TUPLE));
	case 't': return op_from_mark(m, "TUPLE", PK_TUPLE);
	case 0x85: return op_tuple_n(m, 1, "TUPLE1");
	case 0x86: return op_tuple_n(m, 2, "TUPLE2");
	case 0x87: return op_tuple_n(m, 3, "TUPLE3");
	case '}': return push(m, container(m, PK_DICT));
	case 'd': return op_from_mark(m, "DICT", PK_DICT);
	case 's': return op_setitem(m);
	case 'u': return op_fill(m, "SETITEMS", FILL_DICT);
	case 0x8f: return push(m, container(m, PK_SET));
	case 0x90: return op_fill(m, "ADDITEMS", FILL_SET);
	case 0x91: return op_from_mark(m, "FROZENSET", PK_SET);
	case 'p':
		return text_memo_index(m, "PUT", &n) ? -1 : memo_put(m, n, "PUT");
	case 'q':
		return read_count(m, 1, "BINPUT", &n) ? -1 : memo_put(m, n, "BINPUT");
	case 'r':
		return read_count(m, 4, "LONG_BINPUT", &n) ? -1
							    : memo_put(m, n, "LONG_BINPUT");
	case 0x94: return memo_put(m, m->memolen, "MEMOIZE");
	case 'g':
		return text_memo_index(m, "GET", &n) ? -1 : memo_get(m, n, "GET");
	case 'h':
		return read_count(m, 1, "BINGET", &n) ? -1 : memo_get(m, n, "BINGET");
	case 'j':
		return read_count(m, 4, "LONG_BINGET", &n) ? -1
							    : memo_get(m, n, "LONG_BINGET");
	case 'c':
		if (op_global(m, "GLOBAL", &s, &ns, &s2, &ns2))
			return -1;
		return push_global(m, s, ns, s2, ns2, "GLOBAL");
	case 0x93: return op_stack_global(m);
	case 'i': return op_inst(m, 0);
	case 'o': return op_inst(m, 1);
	case 'R': return op_reduce(m, 0, "REDUCE");
	case 0x81: return op_reduce(m, 0, "NEWOBJ");
	case 0x92: return op_reduce(m, 1, "NEWOBJ_EX");
	case 'b': return op_build(m);
	case 'P': return op_persid(m, 0);
	case 'Q': return op_persid(m, 1);
	case 0x82: case 0x83: case 0x84:
		if (read_count(m, op == 0x82 ? 1 : op == 0x83 ? 2 : 4, "EXT", &n))
			return -1;
		return fail(m, "refused extension code %llu (EXT%d)",
			    (unsigned long long)n, op == 0x84 ? 4 : op - 0x81);
	case 0x97: return fail(m, "refused out-of-band buffer (NEXT_BUFFER)");
	case 0x98: return fail(m, "refused READONLY_BUFFER");
	default:
		return fail(m, "unknown pickle opcode 0x%02x", op);
	}
}

struct pk_value *pk_load(const void *buf, size_t len,
			 const struct pk_options *opt, struct pk_arena **arena,
			 size_t *used, char *err, size_t errlen)
{
	struct vm m;
	memset(&m, 0, sizeof m);
	m.p = buf;
	m.len = len;
	m.opt = opt;
	m.err = err;
	m.errlen = errlen;
	if (err && errlen)
		err[0] = 0;
	*arena = m.a = calloc(1, sizeof *m.a);
	if (used)
		*used = 0;
	if (!m.a) {
		fail(&m, "out of memory");
		return NULL;
	}
	int stop = 0;
	while (!stop) {
		m.op = m.pos;
		if (m.pos >= m.len) {
			fail(&m, m.len ? "pickle ends without STOP" : "empty pickle");
			break;
		}
		if (step(&m, &stop))
			break;
	}
	struct pk_value *root = m.failed ? NULL : m.stack[m.n - 1];
	if (root && used)
		*used = m.pos;
	free(m.stack);
	free(m.marks);
	free(m.memo);
	return root;
}

/* ---- helpers for callers ---- */

struct pk_value *pk_load_file(const char *path, const struct pk_options *opt,
			      struct pk_arena **arena, int *io, char *err,
			      size_t errlen)
{
	*arena = NULL;
	*io = 1;
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, k;
	do {
		if (len == cap) {
			unsigned char *b = cap > SIZE_MAX / 2 ? NULL
				: realloc(buf, cap = cap ? 2 * cap : 1 << 16);
			if (!b) {
				snprintf(err, errlen, "%s: out of memory", path);
				free(buf);
				fclose(fp);
				return NULL;
			}
			buf = b;
		}
		k = fread(buf + len, 1, cap - len, fp);
		len += k;
	} while (k);
	if (ferror(fp)) {
		snprintf(err, errlen, "reading %s: %s", path, strerror(errno));
		free(buf);
		fclose(fp);
		return NULL;
	}
	fclose(fp);
	*io = 0;
	char msg[256];
	struct pk_value *v = pk_load(buf, len, opt, arena, NULL, msg, sizeof msg);
	if (!v)
		snprintf(err, errlen, "%s: %s", path, msg);
	free(buf);
	return v;
}

const struct pk_value *pk_dict_get(const struct pk_value *d, const char *key)
{
	if (d && d->type == PK_CALL)
		d = d->call.items;
	if (!d || d->type != PK_DICT)
		return NULL;
	size_t klen = strlen(key);
	/* The last of repeated keys wins, as in a Python dict. */
	for (size_t i = d->seq.n & ~(size_t)1; i >= 2; i -= 2) {
		const struct pk_value *k = d->seq.v[i - 2];
		if (k->type == PK_STR && k->str.len == klen &&
		    memcmp(k->str.p, key, klen) == 0)
			return d->seq.v[i - 1];
	}
	return NULL;
}

int pk_is_str(const struct pk_value *v, const char *s)
{
	return v && v->type == PK_STR && v->str.len == strlen(s) &&
	       memcmp(v->str.p, s, v->str.len) == 0;
}

double pk_number(const struct pk_value *v)
{
	if (!v)
		return NAN;
	switch (v->type) {
	case PK_INT:
	case PK_BOOL: return (double)v->i;
	case PK_FLOAT: return v->f;
	default: return NAN;
	}
}

const char *pk_type_name(enum pk_type t)
{
	static const char *const names[] = {
	    [PK_NONE] = "None",   [PK_BOOL] = "bool",     [PK_INT] = "int",
	    [PK_FLOAT] = "float", [PK_STR] = "str",       [PK_BYTES] = "bytes",
	    [PK_LIST] = "list",   [PK_TUPLE] = "tuple",   [PK_DICT] = "dict",
	    [PK_SET] = "set",     [PK_GLOBAL] = "global", [PK_CALL] = "call",
	    [PK_OPAQUE] = "refused global", [PK_PERSID] = "persistent id",
	};
	return (unsigned)t < sizeof names / sizeof *names && names[t] ? names[t]
								     : "?";
}
