/* image.c - Pillow-exact pixel operations (see image.h).
 *
 * Every formula here follows Pillow 9.4 (libImaging Resample.c, Reduce.c,
 * Blend.c, Convert.c and Image.py) down to which sums are done in float
 * and which in double, because the point is to give the same bytes as the
 * reference's PIL preprocessing.  The code is our own; the speed comes
 * from computing the same integer sums in a vector-friendly order
 * (integer sums do not depend on the order). */
#include "image.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

/* Pillow is compiled without fused multiply-add; contracting a * b + c
 * into one rounding would change float results. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Bytes allocated past the last pixel, so that vector loads may overrun. */
#define PAD 64

void tk_image_alloc(struct tk_image *im, int w, int h, int c)
{
	im->w = w;
	im->h = h;
	im->c = c;
	im->stride = xmul((size_t)w, (size_t)c);
	im->own = im->px = xmalloc(xmul(im->stride, (size_t)h) + PAD);
}

void tk_image_free(struct tk_image *im)
{
	free(im->own);
	memset(im, 0, sizeof *im);
}

void tk_image_move(struct tk_image *dst, struct tk_image *src)
{
	if (dst == src)
		return;
	free(dst->own);
	*dst = *src;
	memset(src, 0, sizeof *src);
}

struct tk_image tk_image_view(const struct tk_image *im, int x, int y, int w,
			      int h)
{
	struct tk_image v = *im;
	v.px = tk_image_row(im, y) + (size_t)x * im->c;
	v.w = w;
	v.h = h;
	v.own = NULL;
	return v;
}

static void copy_image(struct tk_image *out, const struct tk_image *in)
{
	tk_image_alloc(out, in->w, in->h, in->c);
	for (int y = 0; y < in->h; y++)
		memcpy(tk_image_row(out, y), tk_image_row(in, y), out->stride);
}

/* ---- reduce ---- */

/* Pillow's division_UINT32(n, 8): 2^32 / (256 n), computed in float. */
static uint32_t reduce_multiplier(uint32_t n)
{
	float max_int = 4294967296.0f;
	return (uint32_t)(max_int / (float)(256u * n));
}

/* sum[i] (+)= r[i]: fixed-length inner loops, which the compiler
 * vectorizes. */
static void add_row(uint32_t *restrict sum, const uint8_t *restrict r,
		    size_t n, int first)
{
	size_t i = 0;
	if (first) {
		for (; i + 32 <= n; i += 32)
			for (int k = 0; k < 32; k++)
				sum[i + k] = r[i + k];
		for (; i < n; i++)
			sum[i] = r[i];
	} else {
		for (; i + 32 <= n; i += 32)
			for (int k = 0; k < 32; k++)
				sum[i + k] += r[i + k];
		for (; i < n; i++)
			sum[i] += r[i];
	}
}

/* One output row from the column sums: blocks of fx pixels (the last one
 * px wide), each value ((sum + n / 2) * m) >> 24 with Pillow's m for its
 * block's pixel count n.  C is a constant after inlining. */
static inline __attribute__((always_inline)) void
reduce_row(uint8_t *o, const uint32_t *sum, int ow, int fx, int px, int ny,
	   const uint32_t m[2], const int C)
{
	for (int x = 0; x < ow; x++) {
		int nx = x == ow - 1 ? px : fx, last = nx != fx;
		uint32_t amend = (uint32_t)(nx * ny) / 2, s[4];
		const uint32_t *p = sum + (size_t)x * fx * C;
		for (int c = 0; c < C; c++)
			s[c] = amend;
		for (int k = 0; k < nx; k++, p += C)
			for (int c = 0; c < C; c++)
				s[c] += p[c];
		for (int c = 0; c < C; c++)
			o[x * C + c] = (uint8_t)((s[c] * m[last]) >> 24);
	}
}

void tk_reduce(struct tk_image *out, const struct tk_image *in, int fx,
	       int fy, const int box_in[4])
{
	int box[4] = {0, 0, in->w, in->h};
	if (box_in)
		memcpy(box, box_in, sizeof box);
	int bw = box[2] - box[0], bh = box[3] - box[1], C = in->c;
	int ow = (bw + fx - 1) / fx, oh = (bh + fy - 1) / fy;
	tk_image_alloc(out, ow, oh, C);
	size_t n = (size_t)bw * C;
	uint32_t *sum = xmalloc((n + 1) * sizeof *sum);
	int px = bw % fx ? bw % fx : fx, py = bh % fy ? bh % fy : fy;
	for (int y = 0; y < oh; y++) {
		int y0 = box[1] + y * fy, ny = y == oh - 1 ? py : fy;
		for (int k = 0; k < ny; k++)
			add_row(sum, tk_image_row(in, y0 + k) + (size_t)box[0] * C,
				n, k == 0);
		uint32_t m[2] = {reduce_multiplier((uint32_t)(fx * ny)),
				 reduce_multiplier((uint32_t)(px * ny))};
		uint8_t *o = tk_image_row(out, y);
		switch (C) {
		case 1: reduce_row(o, sum, ow, fx, px, ny, m, 1); break;
		case 3: reduce_row(o, sum, ow, fx, px, ny, m, 3); break;
		default: reduce_row(o, sum, ow, fx, px, ny, m, 4); break;
		}
	}
	free(sum);
}

/* ---- resampling filters (Resample.c) ---- */

static double box_filter(double x)
{
	return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double bilinear_filter(double x)
{
	if (x < 0.0)
		x = -x;
	return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x)
{
	if (x < 0.0)
		x = -x;
	if (x == 0.0)
		return 1.0;
	if (x >= 1.0)
		return 0.0;
	x = x * M_PI;
	/* The constants are floats in Pillow. */
	return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double bicubic_filter(double x)
{
	const double a = -0.5;
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

static double sinc(double x)
{
	if (x == 0.0)
		return 1.0;
	x = x * M_PI;
	return sin(x) / x;
}

static double lanczos_filter(double x)
{
	if (-3.0 <= x && x < 3.0)
		return sinc(x) * sinc(x / 3);
	return 0.0;
}

static const struct {
	double (*fn)(double);
	double support;
} filters[] = {
    [TK_BOX] = {box_filter, 0.5},
    [TK_BILINEAR] = {bilinear_filter, 1.0},
    [TK_HAMMING] = {hamming_filter, 1.0},
    [TK_BICUBIC] = {bicubic_filter, 2.0},
    [TK_LANCZOS] = {lanczos_filter, 3.0},
};

double tk_filter_support(enum tk_filter f)
{
	return filters[f].support;
}

/* 8 bits of result, 2 of headroom for the negative lobes. */
#define PRECISION_BITS (32 - 8 - 2)

struct kernel {
	int ksize;	/* coefficients per output sample */
	int *bounds;	/* [out][2]: first input sample, count */
	int32_t *k;	/* [out][ksize], fixed point */
	int lo, hi;	/* input samples used: [lo, hi) */
};

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc. */
static void precompute(struct kernel *kn, int in_size, float in0, float in1,
		       int out_size, enum tk_filter f)
{
	double (*filter)(double) = filters[f].fn;
	double scale, filterscale, support;
	filterscale = scale = (double)(in1 - in0) / out_size;
	if (filterscale < 1.0)
		filterscale = 1.0;
	support = filters[f].support * filterscale;
	int ksize = (int)ceil(support) * 2 + 1;
	kn->ksize = ksize;
	kn->bounds = xmalloc(xmul((size_t)out_size, 2 * sizeof(int)));
	kn->k = xcalloc(xmul((size_t)out_size, (size_t)ksize), sizeof(int32_t));
	double *w = xmalloc(xmul((size_t)ksize, sizeof *w));
	kn->lo = in_size;
	kn->hi = 0;
	for (int xx = 0; xx < out_size; xx++) {
		double center = in0 + (xx + 0.5) * scale;
		double ww = 0.0, ss = 1.0 / filterscale;
		int xmin = (int)(center - support + 0.5);
		if (xmin < 0)
			xmin = 0;
		int xmax = (int)(center + support + 0.5);
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		if (xmax < 0)
			xmax = 0;
		if (xmax > ksize) /* cannot happen; keeps the writes in bounds */
			xmax = ksize;
		for (int x = 0; x < xmax; x++) {
			w[x] = filter((x + xmin - center + 0.5) * ss);
			ww += w[x];
		}
		int32_t *k = kn->k + (size_t)xx * ksize;
		for (int x = 0; x < xmax; x++) {
			double v = ww != 0.0 ? w[x] / ww : w[x];
			k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
				     : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
		}
		kn->bounds[2 * xx] = xmin;
		kn->bounds[2 * xx + 1] = xmax;
		if (xmax && xmin < kn->lo)
			kn->lo = xmin;
		if (xmax && xmin + xmax > kn->hi)
			kn->hi = xmin + xmax;
	}
	if (kn->hi < kn->lo)
		kn->lo = kn->hi = 0;
	free(w);
}

static void kernel_free(struct kernel *kn)
{
	free(kn->bounds);
	free(kn->k);
}

static inline uint8_t clip8(int32_t v)
{
	v >>= PRECISION_BITS; /* arithmetic shift: floor, as Pillow */
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Values summed at once: the rows of a tile times the channels, laid out
 * TSTRIDE bytes apart per input column; VBLOCK values of a row in the
 * vertical pass. */
#define LANES 48
#define TSTRIDE 64
#define VBLOCK 64

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TK_AVX2 __attribute__((target("avx2")))

/* 8 bytes widened to 8 int32, times k, added to a. */
TK_AVX2 static inline __m256i madd8(__m256i a, const uint8_t *p, __m256i k)
{
	__m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
	return _mm256_add_epi32(a, _mm256_mullo_epi32(v, k));
}

TK_AVX2 static inline __m256i clip8x8(__m256i a)
{
	a = _mm256_srai_epi32(a, PRECISION_BITS);
	a = _mm256_max_epi32(a, _mm256_setzero_si256());
	return _mm256_min_epi32(a, _mm256_set1_epi32(255));
}

/* Four vectors of 8 clipped values to 32 bytes, in order. */
TK_AVX2 static inline __m256i pack32(__m256i a, __m256i b, __m256i c,
				     __m256i d)
{
	__m256i ab = _mm256_packus_epi32(clip8x8(a), clip8x8(b));
	__m256i cd = _mm256_packus_epi32(clip8x8(c), clip8x8(d));
	__m256i v = _mm256_packus_epi16(ab, cd);
	return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

TK_AVX2 static void hsum_tile_avx2(uint8_t *restrict out,
				   const uint8_t *restrict src,
				   const int32_t *restrict k, int n)
{
	__m256i a0, a1, a2, a3, a4, a5;
	a0 = a1 = a2 = a3 = a4 = a5 = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
	for (int t = 0; t < n; t++, src += TSTRIDE) {
		__m256i kt = _mm256_set1_epi32(k[t]);
		a0 = madd8(a0, src, kt);
		a1 = madd8(a1, src + 8, kt);
		a2 = madd8(a2, src + 16, kt);
		a3 = madd8(a3, src + 24, kt);
		a4 = madd8(a4, src + 32, kt);
		a5 = madd8(a5, src + 40, kt);
	}
	_mm256_storeu_si256((__m256i *)out, pack32(a0, a1, a2, a3));
	__m256i z = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
	_mm_storeu_si128((__m128i *)(out + 32),
			 _mm256_castsi256_si128(pack32(a4, a5, z, z)));
}

TK_AVX2 static void vsum_block_avx2(uint8_t *restrict out,
				    const uint8_t *const *rows, size_t off,
				    const int32_t *restrict k, int n)
{
	__m256i a[VBLOCK / 8];
	for (int i = 0; i < VBLOCK / 8; i++)
		a[i] = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
	for (int t = 0; t < n; t++) {
		const uint8_t *s = rows[t] + off;
		__m256i kt = _mm256_set1_epi32(k[t]);
		for (int i = 0; i < VBLOCK / 8; i++)
			a[i] = madd8(a[i], s + 8 * i, kt);
	}
	_mm256_storeu_si256((__m256i *)out, pack32(a[0], a[1], a[2], a[3]));
	_mm256_storeu_si256((__m256i *)(out + 32), pack32(a[4], a[5], a[6], a[7]));
}

/* TK_NO_AVX2 in the environment selects the portable code (for tests). */
static int have_avx2(void)
{
	return __builtin_cpu_supports("avx2") && !getenv("TK_NO_AVX2");
}
#else
static int have_avx2(void)
{
	return 0;
}
#endif

/* The portable sums. */
static void hsum_tile_c(uint8_t *restrict out, const uint8_t *restrict src,
			const int32_t *restrict k, int n)
{
	int32_t a[LANES];
	for (int i = 0; i < LANES; i++)
		a[i] = 1 << (PRECISION_BITS - 1);
	for (int t = 0; t < n; t++, src += TSTRIDE)
		for (int i = 0; i < LANES; i++)
			a[i] += src[i] * k[t];
	for (int i = 0; i < LANES; i++)
		out[i] = clip8(a[i]);
}

static void vsum_block_c(uint8_t *restrict out, const uint8_t *const *rows,
			 size_t off, const int32_t *restrict k, int n)
{
	int32_t a[VBLOCK];
	for (int i = 0; i < VBLOCK; i++)
		a[i] = 1 << (PRECISION_BITS - 1);
	for (int t = 0; t < n; t++)
		for (int i = 0; i < VBLOCK; i++)
			a[i] += rows[t][off + i] * k[t];
	for (int i = 0; i < VBLOCK; i++)
		out[i] = clip8(a[i]);
}

typedef void hsum_fn(uint8_t *, const uint8_t *, const int32_t *, int);

/* The horizontal pass over rows [y0, y0 + out->h) of in, for C channels
 * (a constant after inlining, so the small copies are plain moves).  A
 * tile of LANES / C rows is transposed so that one output column of the
 * whole tile is a sum of contiguous vectors. */
static inline __attribute__((always_inline)) void
horizontal_c(struct tk_image *out, const struct tk_image *in, int y0,
	     const struct kernel *kn, hsum_fn *hsum, uint8_t *T, const int C)
{
	int R = LANES / C, span = kn->hi - kn->lo;
	uint8_t col[LANES + 16];
	for (int ty = 0; ty < out->h; ty += R) {
		int r = out->h - ty < R ? out->h - ty : R;
		for (int rr = 0; rr < r; rr++) {
			const uint8_t *s = tk_image_row(in, y0 + ty + rr) +
					   (size_t)kn->lo * C;
			uint8_t *d = T + rr * C;
			/* 3 channels move as 4 bytes but the last: the extra
			 * byte read is the next pixel's, the extra byte
			 * written the next row's (written after) or the
			 * tile's padding. */
			int x = 0;
			if (C == 3)
				for (; x < span - 1; x++, s += C, d += TSTRIDE)
					memcpy(d, s, 4);
			for (; x < span; x++, s += C, d += TSTRIDE)
				memcpy(d, s, C);
		}
		for (int xx = 0; xx < out->w; xx++) {
			int xmin = kn->bounds[2 * xx], n = kn->bounds[2 * xx + 1];
			hsum(col, T + (size_t)(xmin - kn->lo) * TSTRIDE,
			     kn->k + (size_t)xx * kn->ksize, n);
			uint8_t *o = tk_image_row(out, ty) + (size_t)xx * C;
			for (int rr = 0; rr < r; rr++, o += out->stride)
				memcpy(o, col + rr * C, C);
		}
	}
}

static void horizontal(struct tk_image *out, const struct tk_image *in,
		       int y0, const struct kernel *kn)
{
	int span = kn->hi - kn->lo;
	uint8_t *T = xcalloc((size_t)(span > 0 ? span : 1) + 1, TSTRIDE);
	hsum_fn *hsum =
#ifdef TK_AVX2
	    have_avx2() ? hsum_tile_avx2 :
#endif
	    hsum_tile_c;
	switch (in->c) {
	case 1: horizontal_c(out, in, y0, kn, hsum, T, 1); break;
	case 3: horizontal_c(out, in, y0, kn, hsum, T, 3); break;
	default: horizontal_c(out, in, y0, kn, hsum, T, 4); break;
	}
	free(T);
}

/* The vertical pass: output row yy sums input rows bounds[2yy] + t, each
 * row's values independently. */
static void vertical(struct tk_image *out, const struct tk_image *in,
		     const struct kernel *kn)
{
	size_t n = (size_t)out->w * out->c;
	const uint8_t **rows = xmalloc((size_t)(kn->ksize ? kn->ksize : 1) *
				       sizeof *rows);
	void (*vsum)(uint8_t *, const uint8_t *const *, size_t, const int32_t *,
		     int) =
#ifdef TK_AVX2
	    have_avx2() ? vsum_block_avx2 :
#endif
	    vsum_block_c;
	for (int yy = 0; yy < out->h; yy++) {
		int ymin = kn->bounds[2 * yy], cnt = kn->bounds[2 * yy + 1];
		const int32_t *k = kn->k + (size_t)yy * kn->ksize;
		for (int t = 0; t < cnt; t++)
			rows[t] = tk_image_row(in, ymin + t);
		uint8_t *o = tk_image_row(out, yy);
		size_t i = 0;
		for (; i + VBLOCK <= n; i += VBLOCK)
			vsum(o + i, rows, i, k, cnt);
		for (; i < n; i++) {
			int32_t a = 1 << (PRECISION_BITS - 1);
			for (int t = 0; t < cnt; t++)
				a += rows[t][i] * k[t];
			o[i] = clip8(a);
		}
	}
	free(rows);
}

/* ImagingCrop for a rectangle inside the image. */
static void crop_inside(struct tk_image *out, const struct tk_image *in,
			int x0, int y0, int x1, int y1)
{
	struct tk_image v = tk_image_view(in, x0, y0, x1 - x0, y1 - y0);
	copy_image(out, &v);
}

void tk_resample(struct tk_image *out, const struct tk_image *in, int w,
		 int h, enum tk_filter f, const float box_in[4])
{
	float box[4] = {0, 0, (float)in->w, (float)in->h};
	if (box_in)
		memcpy(box, box_in, sizeof box);
	/* _resize: an integral box of the output's size is a crop. */
	if (box[0] - (int)box[0] == 0 && box[2] - box[0] == w &&
	    box[1] - (int)box[1] == 0 && box[3] - box[1] == h) {
		crop_inside(out, in, (int)box[0], (int)box[1], (int)box[2],
			    (int)box[3]);
		return;
	}
	int need_h = w != in->w || box[0] != 0 || box[2] != w;
	int need_v = h != in->h || box[1] != 0 || box[3] != h;
	struct kernel kh, kv;
	precompute(&kh, in->w, box[0], box[2], w, f);
	precompute(&kv, in->h, box[1], box[3], h, f);
	int yfirst = kv.bounds[0];
	int ylast = kv.bounds[2 * h - 2] + kv.bounds[2 * h - 1];
	struct tk_image tmp = {0}, res = {0};
	const struct tk_image *src = in;
	if (need_h) {
		for (int i = 0; i < h; i++)
			kv.bounds[2 * i] -= yfirst;
		tk_image_alloc(&tmp, w, ylast - yfirst, in->c);
		horizontal(&tmp, in, yfirst, &kh);
		src = &tmp;
	}
	if (need_v) {
		tk_image_alloc(&res, src->w, h, in->c);
		vertical(&res, src, &kv);
		tk_image_free(&tmp);
	} else if (need_h) {
		res = tmp;
	} else {
		copy_image(&res, in);
	}
	*out = res;
	kernel_free(&kh);
	kernel_free(&kv);
}

/* Image._get_safe_box: box widened by the filter's reach, in whole
 * pixels, for reduce() to keep what the resampling will read. */
static void safe_box(const struct tk_image *in, int w, int h,
		     enum tk_filter f, const double box[4], int out[4])
{
	double support = tk_filter_support(f) - 0.5;
	double sx = support * ((box[2] - box[0]) / w);
	double sy = support * ((box[3] - box[1]) / h);
	int x0 = (int)(box[0] - sx), y0 = (int)(box[1] - sy);
	double x1 = ceil(box[2] + sx), y1 = ceil(box[3] + sy);
	out[0] = x0 > 0 ? x0 : 0;
	out[1] = y0 > 0 ? y0 : 0;
	out[2] = x1 < in->w ? (int)x1 : in->w;
	out[3] = y1 < in->h ? (int)y1 : in->h;
}

static void box_to_float(const double in[4], float out[4])
{
	for (int i = 0; i < 4; i++)
		out[i] = (float)in[i];
}

void tk_resize(struct tk_image *out, const struct tk_image *in, int w, int h,
	       enum tk_filter f, const double box_in[4], double reducing_gap)
{
	double box[4] = {0, 0, in->w, in->h};
	float fbox[4];
	if (box_in)
		memcpy(box, box_in, sizeof box);
	if (w == in->w && h == in->h && box[0] == 0 && box[1] == 0 &&
	    box[2] == in->w && box[3] == in->h) {
		copy_image(out, in);
		return;
	}
	if (reducing_gap > 0) {
		int fx = (int)((box[2] - box[0]) / w / reducing_gap);
		int fy = (int)((box[3] - box[1]) / h / reducing_gap);
		fx = fx ? fx : 1;
		fy = fy ? fy : 1;
		if (fx > 1 || fy > 1) {
			int rb[4];
			struct tk_image red;
			safe_box(in, w, h, f, box, rb);
			tk_reduce(&red, in, fx, fy, rb);
			double nb[4] = {(box[0] - rb[0]) / fx, (box[1] - rb[1]) / fy,
					(box[2] - rb[0]) / fx, (box[3] - rb[1]) / fy};
			box_to_float(nb, fbox);
			tk_resample(out, &red, w, h, f, fbox);
			tk_image_free(&red);
			return;
		}
	}
	box_to_float(box, fbox);
	tk_resample(out, in, w, h, f, fbox);
}

/* ---- thumbnail size, crop, flip ---- */

/* round_aspect(number, key): floor or ceil of number, whichever the key
 * prefers (floor on a tie), at least 1. */
static long round_aspect(double number, double key_floor, double key_ceil)
{
	long f = (long)floor(number), c = (long)ceil(number);
	long r = key_ceil < key_floor ? c : f;
	return r > 1 ? r : 1;
}

int tk_thumbnail_size(int w, int h, double target, int *tw, int *th)
{
	double t = floor(target);
	long x = t < 1 ? 1 : t > 1e9 ? 1000000000 : (long)t, y = x;
	if (x >= w && y >= h)
		return 0;
	double aspect = (double)w / h;
	if ((double)x / y >= aspect) {
		double n = y * aspect, f = floor(n), c = ceil(n);
		x = round_aspect(n, fabs(aspect - f / y), fabs(aspect - c / y));
	} else {
		double n = x / aspect, f = floor(n), c = ceil(n);
		y = round_aspect(n, f == 0 ? 0 : fabs(aspect - x / f),
				 c == 0 ? 0 : fabs(aspect - x / c));
	}
	*tw = (int)x;
	*th = (int)y;
	return 1;
}

void tk_round_box(const double in[4], int out[4])
{
	for (int i = 0; i < 4; i++) {
		double v = nearbyint(in[i]); /* ties to even, as Python */
		out[i] = v < -1e9 ? -1000000000 : v > 1e9 ? 1000000000 : (int)v;
	}
}

void tk_crop(struct tk_image *out, const struct tk_image *in, int x0, int y0,
	     int x1, int y1)
{
	int w = x1 - x0, h = y1 - y0, C = in->c;
	tk_image_alloc(out, w, h, C);
	int ix0 = x0 > 0 ? x0 : 0, iy0 = y0 > 0 ? y0 : 0;
	int ix1 = x1 < in->w ? x1 : in->w, iy1 = y1 < in->h ? y1 : in->h;
	if (ix0 != x0 || iy0 != y0 || ix1 != x1 || iy1 != y1)
		memset(out->px, 0, out->stride * h);
	for (int y = iy0; y < iy1 && ix0 < ix1; y++)
		memcpy(tk_image_row(out, y - y0) + (size_t)(ix0 - x0) * C,
		       tk_image_row(in, y) + (size_t)ix0 * C,
		       (size_t)(ix1 - ix0) * C);
}

void tk_flip_h(struct tk_image *im)
{
	int C = im->c;
	for (int y = 0; y < im->h; y++) {
		uint8_t *a = tk_image_row(im, y), *b = a + (size_t)(im->w - 1) * C;
		for (; a < b; a += C, b -= C)
			for (int c = 0; c < C; c++) {
				uint8_t t = a[c];
				a[c] = b[c];
				b[c] = t;
			}
	}
}

/* (a * b + 127) / 255 the way Pillow's MULDIV255 computes it. */
static inline int muldiv255(int a, int b)
{
	int t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

void tk_to_rgb(struct tk_image *out, const struct tk_image *in)
{
	tk_image_alloc(out, in->w, in->h, 3);
	for (int y = 0; y < in->h; y++) {
		const uint8_t *s = tk_image_row(in, y);
		uint8_t *d = tk_image_row(out, y);
		if (in->c == 1) {
			for (int x = 0; x < in->w; x++, d += 3)
				d[0] = d[1] = d[2] = s[x];
		} else if (in->c == 4) { /* cmyk2rgb */
			for (int x = 0; x < in->w; x++, s += 4, d += 3) {
				int nk = 255 - s[3];
				for (int c = 0; c < 3; c++) {
					int v = nk - muldiv255(s[c], nk);
					d[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
				}
			}
		} else {
			memcpy(d, s, (size_t)in->w * 3);
		}
	}
}

/* ---- colour (ImageEnhance, torchvision adjust_hue) ---- */

/* Image.blend(degenerate, image, alpha) for one value; alpha is a float
 * in Pillow, and so is the arithmetic. */
static inline uint8_t blend1(int d, int v, float alpha)
{
	float t = (float)d + alpha * (float)(v - d);
	if (alpha >= 0 && alpha <= 1.0f)
		return (uint8_t)t;
	return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

/* ITU-R 601-2 luma as Pillow's convert("L"). */
static inline int luma(const uint8_t *p)
{
	return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
}

/* lut[v] = blend1(d, v, alpha) for every v: brightness and contrast
 * blend with one value, so a table of 256 does the whole image. */
static void blend_table(uint8_t lut[256], int d, float alpha)
{
	for (int v = 0; v < 256; v++)
		lut[v] = blend1(d, v, alpha);
}

static void apply_table(struct tk_image *im, const uint8_t lut[256])
{
	for (int y = 0; y < im->h; y++) {
		uint8_t *p = tk_image_row(im, y);
		for (size_t i = 0; i < (size_t)im->w * 3; i++)
			p[i] = lut[p[i]];
	}
}

void tk_adjust_brightness(struct tk_image *im, double factor)
{
	float a = (float)factor;
	if (a == 1.0f)
		return;
	uint8_t lut[256];
	blend_table(lut, 0, a);
	apply_table(im, lut);
}

void tk_adjust_contrast(struct tk_image *im, double factor)
{
	/* ImageStat's mean of the luma image, from its histogram (counted
	 * in integers, summed in double as ImageStat does). */
	uint64_t hist[256] = {0};
	double sum = 0, count = 0;
	for (int y = 0; y < im->h; y++) {
		const uint8_t *p = tk_image_row(im, y);
		for (int x = 0; x < im->w; x++, p += 3)
			hist[luma(p)]++;
	}
	for (int j = 0; j < 256; j++) {
		sum += j * (double)hist[j];
		count += (double)hist[j];
	}
	int mean = (int)(sum / count + 0.5);
	float a = (float)factor;
	if (a == 1.0f)
		return;
	uint8_t lut[256];
	blend_table(lut, mean, a);
	apply_table(im, lut);
}

/* Saturation blends each value with its pixel's luma: a table per luma,
 * filled when a pixel first has it. */
void tk_adjust_saturation(struct tk_image *im, double factor)
{
	float a = (float)factor;
	if (a == 1.0f)
		return;
	uint8_t (*lut)[256] = xmalloc(256 * sizeof *lut);
	uint8_t have[256] = {0};
	for (int y = 0; y < im->h; y++) {
		uint8_t *p = tk_image_row(im, y);
		for (int x = 0; x < im->w; x++, p += 3) {
			int l = luma(p);
			if (!have[l]) {
				blend_table(lut[l], l, a);
				have[l] = 1;
			}
			p[0] = lut[l][p[0]];
			p[1] = lut[l][p[1]];
			p[2] = lut[l][p[2]];
		}
	}
	free(lut);
}

static inline uint8_t clip8i(int v)
{
	return (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255);
}

/* Convert.c rgb2hsv_row, with its mix of float and double.  Its
 * fmod(x, 1.0) is x or x - 1 here (x lies in [5/6, 11/6]; both exact). */
static void rgb_to_hsv(const uint8_t *in, uint8_t *out)
{
	uint8_t r = in[0], g = in[1], b = in[2];
	uint8_t maxc = r > g ? r : g, minc = r < g ? r : g;
	maxc = b > maxc ? b : maxc;
	minc = b < minc ? b : minc;
	out[2] = maxc;
	if (minc == maxc) {
		out[0] = out[1] = 0;
		return;
	}
	float cr = (float)(maxc - minc);
	float s = cr / (float)maxc;
	float rc = ((float)(maxc - r)) / cr;
	float gc = ((float)(maxc - g)) / cr;
	float bc = ((float)(maxc - b)) / cr;
	float h;
	if (r == maxc)
		h = bc - gc;
	else if (g == maxc)
		h = 2.0 + rc - bc;
	else
		h = 4.0 + gc - rc;
	double x = h / 6.0 + 1.0;
	h = x >= 1.0 ? x - 1.0 : x;
	out[0] = clip8i((int)(h * 255.0));
	out[1] = clip8i((int)(s * 255.0));
}

/* round(x) of Convert.c's products, which are exact doubles in [0, 256)
 * whose x + 0.5 is exact too: floor(x + 0.5), a cast. */
static inline uint8_t round8(double x)
{
	return clip8i((int)(x + 0.5));
}

/* The hue of rgb_to_hsv depends only on which channel is the largest
 * (the first of r, g, b that is) and how far the other two lie below it;
 * the saturation only on the largest and smallest values.  Tables of
 * both, made once from rgb_to_hsv itself, give its bytes at a few loads
 * a pixel; so do tables of hsv_to_rgb's values of a hue and of a
 * saturation. */
static struct {
	uint8_t hue[3][256][256]; /* [largest channel][below it, in order] */
	uint8_t sat[256][256];    /* [max][min] */
	int sector[256];          /* hsv_to_rgb's i and f of a hue */
	float frac[256], fs[256]; /* and fs of a saturation */
} hsv;
static pthread_once_t hsv_once = PTHREAD_ONCE_INIT;

static void hsv_tables(void)
{
	for (int a = 0; a < 256; a++) {
		for (int b = 0; b < 256; b++) {
			uint8_t out[3];
			rgb_to_hsv((const uint8_t[]){255, 255 - a, 255 - b}, out);
			hsv.hue[0][a][b] = out[0];
			rgb_to_hsv((const uint8_t[]){255 - a, 255, 255 - b}, out);
			hsv.hue[1][a][b] = out[0];
			rgb_to_hsv((const uint8_t[]){255 - a, 255 - b, 255}, out);
			hsv.hue[2][a][b] = out[0];
			rgb_to_hsv((const uint8_t[]){a, b, b}, out);
			hsv.sat[a][b] = out[1];
		}
		hsv.sector[a] = (int)((float)a * 6.0 / 255.0);
		hsv.frac[a] = (float)a * 6.0 / 255.0 - (float)hsv.sector[a];
		hsv.fs[a] = ((float)a) / 255.0;
	}
}

/* rgb_to_hsv by the tables. */
static inline void rgb_to_hsv_fast(const uint8_t *in, uint8_t *out)
{
	uint8_t r = in[0], g = in[1], b = in[2];
	uint8_t maxc = r > g ? r : g, minc = r < g ? r : g;
	maxc = b > maxc ? b : maxc;
	minc = b < minc ? b : minc;
	out[0] = r == maxc   ? hsv.hue[0][maxc - g][maxc - b]
		 : g == maxc ? hsv.hue[1][maxc - r][maxc - b]
			     : hsv.hue[2][maxc - r][maxc - g];
	out[1] = hsv.sat[maxc][minc];
	out[2] = maxc;
}

/* Convert.c hsv2rgb (its floor of a value >= 0 is a cast), its values of
 * h and s from the tables. */
static void hsv_to_rgb(const uint8_t *in, uint8_t *out)
{
	uint8_t h = in[0], s = in[1], v = in[2];
	if (s == 0) {
		out[0] = out[1] = out[2] = v;
		return;
	}
	int i = hsv.sector[h];
	float f = hsv.frac[h];
	float fs = hsv.fs[s];
	uint8_t p = round8((float)v * (1.0 - fs));
	uint8_t q = round8((float)v * (1.0 - fs * f));
	uint8_t t = round8((float)v * (1.0 - fs * (1.0 - f)));
	switch (i % 6) {
	case 0: out[0] = v; out[1] = t; out[2] = p; break;
	case 1: out[0] = q; out[1] = v; out[2] = p; break;
	case 2: out[0] = p; out[1] = v; out[2] = t; break;
	case 3: out[0] = p; out[1] = q; out[2] = v; break;
	case 4: out[0] = t; out[1] = p; out[2] = v; break;
	default: out[0] = v; out[1] = p; out[2] = q; break;
	}
}

void tk_adjust_hue(struct tk_image *im, double hue)
{
	/* np.uint8(hue * 255): truncate toward zero, wrap modulo 256. */
	uint8_t shift = (uint8_t)(int)(hue * 255);
	pthread_once(&hsv_once, hsv_tables);
	for (int y = 0; y < im->h; y++) {
		uint8_t *p = tk_image_row(im, y);
		for (int x = 0; x < im->w; x++, p += 3) {
			uint8_t c[3];
			rgb_to_hsv_fast(p, c);
			c[0] = (uint8_t)(c[0] + shift);
			hsv_to_rgb(c, p);
		}
	}
}
