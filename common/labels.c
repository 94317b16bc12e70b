/* labels.c - image keys to labels and bboxes (labels.h).
 *
 * Each key is a record in one arena, in the file's order:
 *     key bytes, NUL, flags (SEEN, BBOX), label (int32), [bbox: 4 doubles]
 * and the table is a power of two of 64-bit slots, the key's 32-bit hash
 * above its record's arena offset (0: empty; the arena's first byte is no
 * record), probed linearly from the hash's top bits, at most 4/5 full.
 * The hash in the slot spares a look into the arena for other keys and
 * lets the table grow without one.  GLDv2's 16-hex-digit keys take 22
 * bytes each, plus 10 to 20 of table. */
#define _GNU_SOURCE
#include "labels.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "tk.h"

enum { SEEN = 1, BBOX = 2 };

struct tk_labels {
	char *arena;
	size_t used, cap;
	uint64_t *slot;
	unsigned bits; /* 1 << bits slots */
	size_t n;
};

static uint32_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a, then murmur's fmix64 */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)(h >> 32);
}

/* The slot holding key (n bytes, hash h), or the empty one where it
 * goes. */
static size_t find_slot(const struct tk_labels *t, const char *key, size_t n,
			uint32_t h)
{
	size_t mask = ((size_t)1 << t->bits) - 1, i = h >> (32 - t->bits);
	for (; t->slot[i]; i = (i + 1) & mask) {
		if (t->slot[i] >> 32 != h)
			continue;
		const char *k = t->arena + (uint32_t)t->slot[i];
		if (memcmp(k, key, n) == 0 && k[n] == 0)
			break;
	}
	return i;
}

static void grow_table(struct tk_labels *t)
{
	uint64_t *old = t->slot;
	size_t nold = old ? (size_t)1 << t->bits : 0;
	t->bits = old ? t->bits + 1 : 10; /* 4 GiB of arena: < 2^30 keys */
	size_t mask = ((size_t)1 << t->bits) - 1;
	t->slot = xcalloc(mask + 1, sizeof *t->slot);
	for (size_t j = 0; j < nold; j++)
		if (old[j]) {
			size_t i = (old[j] >> 32) >> (32 - t->bits);
			while (t->slot[i])
				i = (i + 1) & mask;
			t->slot[i] = old[j];
		}
	free(old);
}

/* The record in slot i, whose key is n bytes long: its flags byte. */
static char *flags_of(const struct tk_labels *t, size_t i, size_t n)
{
	return t->arena + (uint32_t)t->slot[i] + n + 1;
}

static int32_t label_of(const char *flags)
{
	int32_t v;
	memcpy(&v, flags + 1, sizeof v);
	return v;
}

static size_t record_size(size_t keylen, int has_bbox)
{
	return keylen + 2 + sizeof(int32_t) + (has_bbox ? 4 * sizeof(double) : 0);
}

/* Put the record of l into the arena and the empty slot i. */
static void add(struct tk_labels *t, size_t i, uint32_t h,
		const struct tk_list_line *l, const char *file, long line)
{
	size_t need = record_size(l->keylen, l->has_bbox);
	if (t->used + need > UINT32_MAX)
		die_data("%s: line %ld: more keys than tk-decode holds (4 GiB)",
			 file, line);
	if (t->used + need > t->cap) {
		while (t->used + need > t->cap)
			t->cap *= 2;
		t->arena = xrealloc(t->arena, t->cap);
	}
	char *r = t->arena + t->used;
	memcpy(r, l->key, l->keylen);
	r[l->keylen] = 0;
	r += l->keylen + 1;
	*r = l->has_bbox ? BBOX : 0;
	int32_t label = (int32_t)l->label;
	memcpy(r + 1, &label, sizeof label);
	if (l->has_bbox)
		memcpy(r + 1 + sizeof label, l->bbox, sizeof l->bbox);
	if (5 * (t->n + 1) > 4 * ((size_t)1 << t->bits)) {
		grow_table(t);
		i = find_slot(t, l->key, l->keylen, h);
	}
	t->slot[i] = (uint64_t)h << 32 | t->used;
	t->used += need;
	t->n++;
}

/* A key met again: the same label and bbox, or an error. */
static void check_same(const struct tk_labels *t, size_t i,
		       const struct tk_list_line *l, const char *file, long line)
{
	const char *key = t->arena + (uint32_t)t->slot[i];
	const char *f = flags_of(t, i, l->keylen);
	double box[4];
	if (*f & BBOX)
		memcpy(box, f + 1 + sizeof(int32_t), sizeof box);
	if (label_of(f) != l->label)
		die_data("%s: line %ld: key '%s' has label %ld, but %ld on an "
			 "earlier line", file, line, key, l->label,
			 (long)label_of(f));
	if (!(*f & BBOX) != !l->has_bbox ||
	    (l->has_bbox && memcmp(box, l->bbox, sizeof box) != 0))
		die_data("%s: line %ld: key '%s' has another bbox than on an "
			 "earlier line", file, line, key);
}

struct tk_labels *tk_labels_read(const char *path)
{
	int std = strcmp(path, "-") == 0;
	const char *name = std ? "<stdin>" : path;
	FILE *fp = std ? stdin : fopen(path, "r");
	if (!fp)
		die_io("cannot open %s:", path);
	struct tk_labels *t = xcalloc(1, sizeof *t);
	t->cap = 1 << 20;
	t->arena = xmalloc(t->cap);
	t->used = 1;
	grow_table(t);
	char *line = NULL;
	size_t linecap = 0;
	ssize_t n;
	long lineno = 0;
	while ((n = getline(&line, &linecap, fp)) >= 0) {
		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		if (!n)
			continue;
		struct tk_list_line l;
		char *err = tk_list_line_parse(line, &l);
		if (err)
			die_data("%s: line %ld: %s", name, lineno, err);
		if (l.label > INT32_MAX)
			die_data("%s: line %ld: label %ld is beyond 32 bits", name,
				 lineno, l.label);
		uint32_t h = hash(l.key, l.keylen);
		size_t i = find_slot(t, l.key, l.keylen, h);
		if (t->slot[i])
			check_same(t, i, &l, name, lineno);
		else
			add(t, i, h, &l, name, lineno);
	}
	if (ferror(fp))
		die_io("reading %s:", name);
	free(line);
	if (!std)
		fclose(fp);
	return t;
}

int tk_labels_find(struct tk_labels *t, const char *key, long *label,
		   int *has_bbox, double bbox[4])
{
	size_t n = strlen(key), i = find_slot(t, key, n, hash(key, n));
	if (!t->slot[i])
		return 0;
	char *f = flags_of(t, i, n);
	*f |= SEEN;
	*label = label_of(f);
	*has_bbox = (*f & BBOX) != 0;
	if (*has_bbox)
		memcpy(bbox, f + 1 + sizeof(int32_t), 4 * sizeof *bbox);
	return 1;
}

size_t tk_labels_count(const struct tk_labels *t)
{
	return t->n;
}

size_t tk_labels_unseen(const struct tk_labels *t, const char **first)
{
	size_t unseen = 0;
	*first = NULL;
	for (size_t off = 1; off < t->used;) {
		size_t keylen = strlen(t->arena + off);
		char f = t->arena[off + keylen + 1];
		if (!(f & SEEN) && !unseen++)
			*first = t->arena + off;
		off += record_size(keylen, f & BBOX);
	}
	return unseen;
}

void tk_labels_free(struct tk_labels *t)
{
	if (!t)
		return;
	free(t->arena);
	free(t->slot);
	free(t);
}
