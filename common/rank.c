/* rank.c - top-K selection, radix sort and merge of rank keys. */
#include "rank.h"

#include <math.h>
#include <stdlib.h>

#include "tk.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static inline void swap_u64(uint64_t *a, uint64_t *b)
{
	uint64_t t = *a;
	*a = *b;
	*b = t;
}

void rank_select(uint64_t *a, size_t n, size_t k)
{
	if (k == 0 || k >= n)
		return;
	ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, want = (ptrdiff_t)k - 1;
	/* Quickselect with a median-of-three pivot; should the data defeat
	 * it, the rest is sorted instead (introselect's safety net). */
	for (int rounds = 0; lo < hi; rounds++) {
		if (rounds > 64) {
			qsort(a + lo, hi - lo + 1, sizeof *a, cmp_u64);
			return;
		}
		ptrdiff_t mid = lo + (hi - lo) / 2;
		if (a[mid] < a[lo])
			swap_u64(&a[mid], &a[lo]);
		if (a[hi] < a[lo])
			swap_u64(&a[hi], &a[lo]);
		if (a[hi] < a[mid])
			swap_u64(&a[hi], &a[mid]);
		uint64_t p = a[mid];
		ptrdiff_t i = lo, j = hi;
		while (i <= j) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i <= j)
				swap_u64(&a[i++], &a[j--]);
		}
		if (want <= j)
			hi = j;
		else if (want >= i)
			lo = i;
		else
			return;
	}
}

/* One stable counting pass on the digit at 'shift' (11 bits). */
#define RADIX_BITS 11
#define RADIX (1u << RADIX_BITS)

void rank_sort(uint64_t *a, uint64_t *tmp, size_t n, int pos_sorted)
{
	if (n < 256) {
		qsort(a, n, sizeof *a, cmp_u64);
		return;
	}
	/* Digits from the least significant up; with the positions already
	 * ascending, only the score half needs sorting (LSD is stable). */
	static const int shifts[] = {0, 11, 22, 32, 43, 54};
	int first = pos_sorted ? 3 : 0, npass = 6 - first;
	size_t(*hist)[RADIX] = xcalloc(npass, sizeof *hist);
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p < npass; p++)
			hist[p][(a[i] >> shifts[first + p]) & (RADIX - 1)]++;
	uint64_t *src = a, *dst = tmp;
	for (int p = 0; p < npass; p++) {
		int shift = shifts[first + p];
		size_t *h = hist[p];
		/* A digit all keys share moves nothing: skip the pass. */
		if (h[(src[0] >> shift) & (RADIX - 1)] == n)
			continue;
		size_t sum = 0;
		for (unsigned d = 0; d < RADIX; d++) {
			size_t c = h[d];
			h[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[h[(src[i] >> shift) & (RADIX - 1)]++] = src[i];
		uint64_t *t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof *a);
	free(hist);
}

void topk_init(struct topk *t, size_t k)
{
	memset(t, 0, sizeof *t);
	t->k = k;
	t->thr = -INFINITY;
}

void topk_free(struct topk *t)
{
	free(t->buf);
	memset(t, 0, sizeof *t);
}

/* Keep the K best of the buffer and raise the threshold to the worst of
 * them. */
static void topk_compact(struct topk *t)
{
	rank_select(t->buf, t->n, t->k);
	t->n = t->k;
	uint64_t worst = 0;
	for (size_t i = 0; i < t->n; i++)
		worst = t->buf[i] > worst ? t->buf[i] : worst;
	t->thr = rank_key_score(worst);
}

/* Room for one more item in a full buffer: grow it up to 2K + 64 items,
 * then compact it to the K best (which may raise the threshold). */
static void topk_make_room(struct topk *t)
{
	size_t capmax = 2 * t->k + 64;
	if (t->n < t->cap)
		return;
	if (t->cap < capmax) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->cap = t->cap < capmax ? t->cap : capmax;
		t->buf = xrealloc(t->buf, t->cap * sizeof *t->buf);
	} else {
		topk_compact(t);
	}
}

void topk_offer(struct topk *t, const float *s, size_t n, uint32_t pos0)
{
	if (t->k == 0)
		return;
	size_t j = 0;
	while (j < n) {
		topk_make_room(t);
		/* Items come in increasing position: one equal to the
		 * threshold's score ranks below it, hence '>'. */
		float thr = t->thr;
		uint64_t *b = t->buf;
		size_t m = t->n, room = t->cap - m;
		for (; j < n && room; j++)
			if (s[j] > thr) {
				b[m++] = rank_key(s[j], pos0 + (uint32_t)j);
				room--;
			}
		t->n = m;
	}
}

void topk_offer_keys(struct topk *t, const uint64_t *keys, size_t n)
{
	if (t->k == 0)
		return;
	for (size_t j = 0; j < n; j++) {
		/* Later positions: an equal score ranks below, hence '>'. */
		if (!(rank_key_score(keys[j]) > t->thr))
			continue;
		topk_make_room(t);
		if (!(rank_key_score(keys[j]) > t->thr)) /* raised by a compaction */
			continue;
		t->buf[t->n++] = keys[j];
	}
}

void topk_finish(struct topk *t)
{
	if (t->n > t->k)
		topk_compact(t);
	qsort(t->buf, t->n, sizeof *t->buf, cmp_u64);
	if (t->n == t->k && t->n)
		t->thr = rank_key_score(t->buf[t->n - 1]);
}

/* k-way merge through a binary min-heap of list heads. */
struct head {
	uint64_t key;
	int list;
};

static void sift_down(struct head *h, int n, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && h[l].key < h[m].key)
			m = l;
		if (r < n && h[r].key < h[m].key)
			m = r;
		if (m == i)
			return;
		struct head t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

size_t rank_merge(uint64_t *out, size_t nout, uint64_t *const *lists,
		  const size_t *lens, int nl)
{
	struct head *h = xmalloc((size_t)(nl ? nl : 1) * sizeof *h);
	size_t *at = xcalloc(nl ? nl : 1, sizeof *at);
	int nh = 0;
	for (int i = 0; i < nl; i++)
		if (lens[i])
			h[nh++] = (struct head){lists[i][0], i};
	for (int i = nh / 2 - 1; i >= 0; i--)
		sift_down(h, nh, i);
	size_t n = 0;
	while (nh && n < nout) {
		int l = h[0].list;
		out[n++] = h[0].key;
		if (++at[l] < lens[l])
			h[0].key = lists[l][at[l]];
		else
			h[0] = h[--nh];
		sift_down(h, nh, 0);
	}
	free(h);
	free(at);
	return n;
}
