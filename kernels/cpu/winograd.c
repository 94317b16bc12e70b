/* winograd.c - 3x3 convolutions by Winograd F(4x4,3x3).
 *
 * Per call: the weights go to U[36][OC][C] (G g G^T); the output's 4x4
 * tiles are cut into blocks of whole tile rows, and each thread takes a
 * block at a time: input transform (B^T d B) into V[36][C][tiles], 36
 * GEMMs M[x] = U[x] V[x], output transform (A^T m A) with the bias,
 * residual and ReLU straight into the output.  The transforms run along
 * a tile row with the tiles in the vector lanes: the input rows are
 * first split by x mod 4 so that every transform reads and writes
 * contiguous arrays. */
#include "kernels/cpu/conv_algo.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/simd.h"

/* Tiles per block, about: enough columns for an efficient GEMM, few
 * enough for V and M to stay near the core.  Measured on ResNet-101's
 * layers (tests/bench/bench_conv.c): 32 is best up to 128 channels, 128
 * above (the GEMMs' weights are then too big to repack for few tiles). */
static int block_tiles(struct conv2d_dims d)
{
	return d.C < 256 ? 32 : 128;
}

int winograd_suits(struct conv2d_dims d)
{
	return d.K == 3 && d.stride == 1 && d.pad == 1 && d.C >= 16 &&
	       d.OC >= 16 && d.H >= 4 && d.W >= 4;
}

struct plan {
	int th, tw;      /* tile rows and columns */
	int rows;        /* tile rows per block */
	int nblocks;     /* per image */
	size_t tbmax;    /* tiles per block */
	size_t per_thread;
};

static struct plan make_plan(struct conv2d_dims d, int threads)
{
	struct plan p;
	p.th = (d.H + 3) / 4;
	p.tw = (d.W + 3) / 4;
	/* Blocks of about block_tiles() tiles, as many per image as threads
	 * can share evenly when there are tiles enough. */
	int per_image = (threads + d.B - 1) / d.B;
	int k = (p.th * p.tw + block_tiles(d) * per_image / 2) /
		(block_tiles(d) * per_image);
	int want = per_image * (k < 1 ? 1 : k);
	p.rows = (p.th + want - 1) / want;
	p.nblocks = (p.th + p.rows - 1) / p.rows;
	p.tbmax = (size_t)p.rows * p.tw;
	size_t lane = (size_t)p.tw + 1;
	p.per_thread = 36 * p.tbmax * (size_t)(d.C + d.OC) /* V, M */
		       + 2 * 24 * lane                    /* D, R */
		       + 24 * lane + 16 * lane;           /* T, Y */
	/* The weight transform's scratch fits in the same room. */
	if (p.per_thread < 27 * (size_t)d.C)
		p.per_thread = 27 * (size_t)d.C;
	return p;
}

size_t winograd_workspace(struct conv2d_dims d, int threads)
{
	struct plan p = make_plan(d, threads);
	return 36 * (size_t)d.OC * d.C + (size_t)threads * p.per_thread;
}

/* r = G g along one axis, lane by lane:
 * r0 = g0/4,                 r1 = -(g0 + g1 + g2)/6,
 * r2 = -(g0 - g1 + g2)/6,    r3 = g0/24 + g1/12 + g2/6,
 * r4 = g0/24 - g1/12 + g2/6, r5 = g2. */
TK_SIMD
static void g3(float *const r[6], const float *restrict g0,
	       const float *restrict g1, const float *restrict g2, int n)
{
	float *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2];
	float *restrict r3 = r[3], *restrict r4 = r[4], *restrict r5 = r[5];
#pragma omp simd
	for (int i = 0; i < n; i++) {
		float a = g0[i] + g2[i], b = g0[i] * (1.0f / 24) + g2[i] * (1.0f / 6);
		r0[i] = g0[i] * 0.25f;
		r1[i] = -(a + g1[i]) * (1.0f / 6);
		r2[i] = -(a - g1[i]) * (1.0f / 6);
		r3[i] = b + g1[i] * (1.0f / 12);
		r4[i] = b - g1[i] * (1.0f / 12);
		r5[i] = g2[i];
	}
}

/* U[x][o][c] = (G g G^T)[x] for each 3x3 kernel g = weight[o][c]: per
 * output channel, its kernels transposed to [9][C] so that the
 * transform runs with the input channels in the vector lanes. */
static void transform_weights(float *U, float *scratch, const float *weight,
			      int OC, int C)
{
	size_t plane = (size_t)OC * C;
#pragma omp parallel for schedule(static)
	for (int o = 0; o < OC; o++) {
		float *g = scratch + (size_t)omp_get_thread_num() * 27 * C;
		float *t = g + 9 * (size_t)C;
		const float *w = weight + (size_t)o * C * 9;
		for (int c = 0; c < C; c++)
			for (int k = 0; k < 9; k++)
				g[k * C + c] = w[c * 9 + k];
		/* Along the kernel's rows: t[a][j] for each column j. */
		for (int j = 0; j < 3; j++) {
			float *r[6];
			for (int a = 0; a < 6; a++)
				r[a] = t + (size_t)(a * 3 + j) * C;
			g3(r, g + j * C, g + (3 + j) * C, g + (6 + j) * C, C);
		}
		/* Along its columns, straight into U. */
		for (int a = 0; a < 6; a++) {
			float *r[6];
			for (int b = 0; b < 6; b++)
				r[b] = U + (a * 6 + b) * plane + (size_t)o * C;
			g3(r, t + (size_t)(a * 3) * C, t + (size_t)(a * 3 + 1) * C,
			   t + (size_t)(a * 3 + 2) * C, C);
		}
	}
}

/* r = B^T d along one axis, lane by lane:
 * r0 = 4d0 - 5d2 + d4,       r1 = -4d1 - 4d2 + d3 + d4,
 * r2 = 4d1 - 4d2 - d3 + d4,  r3 = -2d1 - d2 + 2d3 + d4,
 * r4 = 2d1 - d2 - 2d3 + d4,  r5 = 4d1 - 5d3 + d5. */
TK_SIMD
static void bt6(float *const r[6], const float *const d[6], int n)
{
	float *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2];
	float *restrict r3 = r[3], *restrict r4 = r[4], *restrict r5 = r[5];
	const float *restrict d0 = d[0], *restrict d1 = d[1], *restrict d2 = d[2];
	const float *restrict d3 = d[3], *restrict d4 = d[4], *restrict d5 = d[5];
#pragma omp simd
	for (int t = 0; t < n; t++) {
		float a = d4[t] - d2[t], b = d3[t] - d1[t];
		float e = d4[t] - 4.0f * d2[t], f = d3[t] - 4.0f * d1[t];
		r0[t] = 4.0f * d0[t] - 5.0f * d2[t] + d4[t];
		r1[t] = e + f;
		r2[t] = e - f;
		r3[t] = a + 2.0f * b;
		r4[t] = a - 2.0f * b;
		r5[t] = 4.0f * d1[t] - 5.0f * d3[t] + d5[t];
	}
}

/* y = A^T m along one axis:
 * y0 = m0 + m1 + m2 + m3 + m4,  y1 = m1 - m2 + 2(m3 - m4),
 * y2 = m1 + m2 + 4(m3 + m4),    y3 = m1 - m2 + 8(m3 - m4) + m5. */
TK_SIMD
static void at6(float *const y[4], const float *const m[6], int n)
{
	float *restrict y0 = y[0], *restrict y1 = y[1], *restrict y2 = y[2],
			*restrict y3 = y[3];
	const float *restrict m0 = m[0], *restrict m1 = m[1], *restrict m2 = m[2];
	const float *restrict m3 = m[3], *restrict m4 = m[4], *restrict m5 = m[5];
#pragma omp simd
	for (int t = 0; t < n; t++) {
		float s12 = m1[t] + m2[t], d12 = m1[t] - m2[t];
		float s34 = m3[t] + m4[t], d34 = m3[t] - m4[t];
		y0[t] = m0[t] + s12 + s34;
		y1[t] = d12 + 2.0f * d34;
		y2[t] = s12 + 4.0f * s34;
		y3[t] = d12 + 8.0f * d34 + m5[t];
	}
}

/* D[q][t] = row[4t + q - 1] for t in 0..tw (zero outside 0..W-1): the
 * row split by phase, so tap j of tile t is D[j][t], or D[j-4][t+1]. */
TK_SIMD
static void split_row(float *restrict D, const float *restrict row, int W,
		      int tw)
{
	int lane = tw + 1;
	if (!row) {
		memset(D, 0, 4 * lane * sizeof *D);
		return;
	}
	/* Tiles whose four taps are all inside the row. */
	int lo = 1, hi = (W + 1) / 4; /* t in [lo, hi): 4t - 1 >= 0, 4t + 2 < W */
	if (hi > lane)
		hi = lane;
#pragma omp simd
	for (int t = lo; t < hi; t++) {
		const float *s = row + 4 * t - 1;
		D[t] = s[0];
		D[lane + t] = s[1];
		D[2 * lane + t] = s[2];
		D[3 * lane + t] = s[3];
	}
	for (int t = 0; t < lane; t++) {
		if (t >= lo && t < hi)
			continue;
		for (int q = 0; q < 4; q++) {
			int x = 4 * t + q - 1;
			D[q * lane + t] = x >= 0 && x < W ? row[x] : 0.0f;
		}
	}
}

/* Input transform of one tile row (ty) of channel plane 'in' into
 * V[x * vstride + t], t < tw. */
static void input_row(float *V, size_t vstride, const float *in, int ty,
		      int H, int W, int tw, float *D, float *R)
{
	int lane = tw + 1;
	const float *d[6];
	float *r[6];
	for (int i = 0; i < 6; i++) {
		int y = 4 * ty - 1 + i;
		split_row(D + i * 4 * lane, y >= 0 && y < H ? in + (size_t)y * W : NULL,
			  W, tw);
		d[i] = D + i * 4 * lane;
		r[i] = R + i * 4 * lane;
	}
	/* Along y: whole split rows at once. */
	bt6(r, d, 4 * lane);
	/* Along x: tap j of tile t is R[k][j][t], j < 4, or R[k][j-4][t+1]. */
	for (int k = 0; k < 6; k++) {
		const float *rk = R + k * 4 * lane;
		const float *taps[6] = {rk, rk + lane, rk + 2 * lane, rk + 3 * lane,
					rk + 1, rk + lane + 1};
		float *v[6];
		for (int l = 0; l < 6; l++)
			v[l] = V + (size_t)(6 * k + l) * vstride;
		bt6(v, taps, tw);
	}
}

/* One output row from its tile row's y[4][tw] (y[j][t]: column 4t + j):
 * plus bias, plus the residual row res (or, with res == o, what o holds),
 * ReLU. */
TK_SIMD
static void store_row(float *o, const float *res, const float *const y[4],
		      float b, int relu, int OW, int tw)
{
	/* Tiles wholly inside the row, then the ragged end. */
	int full = OW / 4;
	const float *restrict y0 = y[0], *restrict y1 = y[1], *restrict y2 = y[2],
			      *restrict y3 = y[3];
	if (res) {
#pragma omp simd
		for (int t = 0; t < full; t++) {
			float r0 = res[4 * t], r1 = res[4 * t + 1];
			float r2 = res[4 * t + 2], r3 = res[4 * t + 3];
			o[4 * t] = y0[t] + b + r0;
			o[4 * t + 1] = y1[t] + b + r1;
			o[4 * t + 2] = y2[t] + b + r2;
			o[4 * t + 3] = y3[t] + b + r3;
		}
	} else {
#pragma omp simd
		for (int t = 0; t < full; t++) {
			o[4 * t] = y0[t] + b;
			o[4 * t + 1] = y1[t] + b;
			o[4 * t + 2] = y2[t] + b;
			o[4 * t + 3] = y3[t] + b;
		}
	}
	for (int x = 4 * full; x < OW && full < tw; x++)
		o[x] = y[x - 4 * full][full] + b + (res ? res[x] : 0.0f);
	if (relu) {
#pragma omp simd
		for (int x = 0; x < OW; x++)
			o[x] = o[x] > 0.0f ? o[x] : 0.0f;
	}
}

/* Output transform of one tile row of output channel plane 'out'. */
static void output_row(float *out, const float *res, const float *M,
		       size_t mstride, int ty, int OH, int OW, int tw, float b,
		       int relu, float *T, float *Y)
{
	/* Along x: each of the 6 rows of m to 4 columns. */
	for (int a = 0; a < 6; a++) {
		const float *m[6];
		float *t[4];
		for (int j = 0; j < 6; j++)
			m[j] = M + (size_t)(6 * a + j) * mstride;
		for (int j = 0; j < 4; j++)
			t[j] = T + (size_t)(j * 6 + a) * tw;
		at6(t, m, tw);
	}
	/* Along y: column j of the 6 rows to 4 output rows. */
	for (int j = 0; j < 4; j++) {
		const float *m[6];
		float *y[4];
		for (int a = 0; a < 6; a++)
			m[a] = T + (size_t)(j * 6 + a) * tw;
		for (int i = 0; i < 4; i++)
			y[i] = Y + (size_t)(i * 4 + j) * tw;
		at6(y, m, tw);
	}
	for (int i = 0; i < 4; i++) {
		int oy = 4 * ty + i;
		if (oy >= OH)
			break;
		const float *y[4] = {Y + (size_t)(i * 4) * tw, Y + (size_t)(i * 4 + 1) * tw,
				     Y + (size_t)(i * 4 + 2) * tw,
				     Y + (size_t)(i * 4 + 3) * tw};
		store_row(out + (size_t)oy * OW, res ? res + (size_t)oy * OW : NULL,
			  y, b, relu, OW, tw);
	}
}

void winograd_forward(float *out, float *work, const float *in,
		      const float *weight, const float *bias,
		      const float *residual, int relu, struct conv2d_dims d)
{
	int threads = omp_get_max_threads();
	struct plan p = make_plan(d, threads);
	int H = d.H, W = d.W, C = d.C, OC = d.OC;
	size_t hw = (size_t)H * W;
	float *U = work;
	float *scratch = work + 36 * (size_t)OC * C;
	transform_weights(U, scratch, weight, OC, C);
	int lane = p.tw + 1;
#pragma omp parallel for schedule(dynamic) collapse(2)
	for (int b = 0; b < d.B; b++) {
		for (int blk = 0; blk < p.nblocks; blk++) {
			float *V = scratch + (size_t)omp_get_thread_num() * p.per_thread;
			float *M = V + 36 * p.tbmax * C;
			float *D = M + 36 * p.tbmax * OC;
			float *R = D + 24 * lane;
			float *T = R + 24 * lane;
			float *Y = T + 24 * lane;
			int ty0 = blk * p.rows;
			int ty1 = ty0 + p.rows < p.th ? ty0 + p.rows : p.th;
			int tb = (ty1 - ty0) * p.tw;
			const float *inb = in + (size_t)b * C * hw;
			for (int c = 0; c < C; c++)
				for (int ty = ty0; ty < ty1; ty++)
					input_row(V + (size_t)c * tb + (ty - ty0) * p.tw,
						  (size_t)C * tb, inb + c * hw, ty, H, W,
						  p.tw, D, R);
			for (int x = 0; x < 36; x++)
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
					    OC, tb, C, 1.0f, U + (size_t)x * OC * C, C,
					    V + (size_t)x * C * tb, tb, 0.0f,
					    M + (size_t)x * OC * tb, tb);
			float *outb = out + (size_t)b * OC * hw;
			const float *resb = residual ? residual + (size_t)b * OC * hw : NULL;
			for (int o = 0; o < OC; o++)
				for (int ty = ty0; ty < ty1; ty++)
					output_row(outb + o * hw,
						   resb ? resb + o * hw : NULL,
						   M + (size_t)o * tb + (ty - ty0) * p.tw,
						   (size_t)OC * tb, ty, H, W, p.tw,
						   bias ? bias[o] : 0.0f, relu, T, Y);
		}
	}
}
