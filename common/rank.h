/* rank.h - ranking by score: the total order tk-rank ranks in, top-K
 * selection, full sorts and the merge of sorted rankings.
 *
 * A ranked item is one uint64 "rank key": the score mapped to 32 bits that
 * sort *descending* in the high half, the database position in the low
 * half.  Smaller key = better item; equal scores order by the lower
 * position.  The mapping is exact and invertible, so keys carry the score
 * and the position and nothing else needs to travel with them. */
#ifndef TK_RANK_H
#define TK_RANK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t rank_key(float score, uint32_t pos)
{
	uint32_t u;
	memcpy(&u, &score, 4);
	if (u == 0x80000000u) /* -0 ranks as +0 */
		u = 0;
	/* IEEE bits -> unsigned ascending order -> descending. */
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
	return (uint64_t)~u << 32 | pos;
}

static inline uint32_t rank_key_pos(uint64_t key)
{
	return (uint32_t)key;
}

static inline float rank_key_score(uint64_t key)
{
	uint32_t u = ~(uint32_t)(key >> 32);
	u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* The K best items of a stream of scores offered in increasing position
 * order.  Candidates collect in a buffer of about 2K keys; when it fills,
 * a linear-time selection keeps the K best and raises the threshold, so
 * most scores cost one comparison. */
struct topk {
	uint64_t *buf;
	size_t n, cap, k;
	float thr; /* scores <= thr cannot enter (once n >= k) */
};

void topk_init(struct topk *t, size_t k);
void topk_free(struct topk *t);
/* Offer scores s[0..n) at positions pos0, pos0+1, ...; positions must
 * increase across calls. */
void topk_offer(struct topk *t, const float *s, size_t n, uint32_t pos0);
/* The same for items given as rank keys (any order), all of positions
 * after those offered before. */
void topk_offer_keys(struct topk *t, const uint64_t *keys, size_t n);
/* Keep only the K best and sort them best first: t->buf[0..t->n).  The
 * state stays valid: more scores may be offered afterwards. */
void topk_finish(struct topk *t);

/* Put the k smallest of a[0..n) (distinct keys) first, in any order. */
void rank_select(uint64_t *a, size_t n, size_t k);
/* Sort keys ascending.  a[] is sorted in place; tmp has room for n keys.
 * If the keys' low halves (positions) already ascend, pass
 * pos_sorted = 1: only the score halves are sorted, stably. */
void rank_sort(uint64_t *a, uint64_t *tmp, size_t n, int pos_sorted);

/* Merge nl sorted key lists into out (best first), at most nout keys;
 * returns the count written. */
size_t rank_merge(uint64_t *out, size_t nout, uint64_t *const *lists,
		  const size_t *lens, int nl);

#endif
