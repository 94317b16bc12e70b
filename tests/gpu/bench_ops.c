/* bench_ops - tk's GPU ops timed alone: GEMM rate per precision (the
 * "achieved against peak" figure), and exact search over 1M x 1024
 * descriptors for 70 queries, full ranking and top-100, with the
 * database resident on the GPU and, apart, its upload.  Prints one
 * "RESULT tk ..." line each; bench_torch.py does the same in PyTorch.
 *
 *   bench_ops [gemm] [rank] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tk.h"
#include "kernels/cuda/cuda.h"

static float *dev_random(size_t n, uint64_t seed, float scale)
{
	float *h = xmalloc(xmul(n, sizeof *h));
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		h[i] = ((x >> 40) / 16777216.0f * 2 - 1) * scale;
	}
	float *d = tk_cuda_malloc(n * sizeof *d);
	tk_cuda_copy(d, h, n * sizeof *d, NULL);
	tk_cuda_sync(NULL);
	free(h);
	return d;
}

static int cmpf(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

/* Median of reps timed runs of fn after warm-up, in ms. */
static float time_ms(void (*fn)(void *), void *arg, int warm, int reps)
{
	tk_event a = tk_cuda_event_create(), b = tk_cuda_event_create();
	float t[64];
	for (int i = 0; i < warm; i++)
		fn(arg);
	for (int i = 0; i < reps; i++) {
		tk_cuda_event_record(a, NULL);
		fn(arg);
		tk_cuda_event_record(b, NULL);
		t[i] = tk_cuda_event_ms(a, b);
	}
	qsort(t, reps, sizeof *t, cmpf);
	tk_cuda_event_destroy(a);
	tk_cuda_event_destroy(b);
	return t[reps / 2];
}

struct gemm_args {
	int n;
	float *a, *b, *c;
};

static void run_gemm(void *p)
{
	struct gemm_args *g = p;
	gemm_cuda(0, 0, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f,
		  g->c, g->n, NULL);
}

static void bench_gemm(void)
{
	struct gemm_args g = {8192, NULL, NULL, NULL};
	size_t nn = (size_t)g.n * g.n;
	g.a = dev_random(nn, 1, 1), g.b = dev_random(nn, 2, 1);
	g.c = tk_cuda_malloc(nn * 4);
	for (int p = TK_FP32; p <= TK_BF16; p++) {
		tk_cuda_set_precision(p);
		float ms = time_ms(run_gemm, &g, 3, 10);
		printf("RESULT tk gemm %s %d^3 (float data): %.1f TFLOP/s (%.2f ms)\n",
		       tk_precision_name(p), g.n, 2.0 * g.n * g.n * g.n / ms / 1e9,
		       ms);
	}
	tk_cuda_set_precision(TK_FP32);
	tk_cuda_free(g.a), tk_cuda_free(g.b), tk_cuda_free(g.c);
}

struct rank_args {
	int nq, D;
	long n, k;
	float *q, *db;
	uint64_t *keys;
};

static void run_rank(void *p)
{
	struct rank_args *r = p;
	rank_chunk_cuda(r->keys, r->q, r->db, r->nq, r->n, r->D, 0, r->k, NULL);
}

static void bench_rank(void)
{
	struct rank_args r = {70, 1024, 1000000, 1000000, NULL, NULL, NULL};
	r.q = dev_random((size_t)r.nq * r.D, 3, 0.03f);
	r.db = dev_random((size_t)r.n * r.D, 4, 0.03f);
	r.keys = tk_cuda_malloc((size_t)r.nq * r.n * 8);
	float ms = time_ms(run_rank, &r, 1, 5);
	printf("RESULT tk rank full 1Mx1024 70 queries fp32 (database on the GPU): %.1f ms\n", ms);
	r.k = 100;
	static const char *const ways[] = {"tiles", "select", "sort"};
	for (int i = 0; i < 3; i++) { /* rank.cu's top-K ways */
		setenv("TK_RANK_TOPK", ways[i], 1);
		ms = time_ms(run_rank, &r, 1, 5);
		printf("RESULT tk rank top100 1Mx1024 70 queries fp32 (database on the GPU, "
		       "TK_RANK_TOPK=%s): %.1f ms\n", ways[i], ms);
	}
	unsetenv("TK_RANK_TOPK");
	/* The upload of the database from pinned host memory. */
	size_t bytes = (size_t)r.n * r.D * 4;
	float *h = tk_cuda_host_alloc(bytes);
	memset(h, 0, bytes);
	double t = tk_now();
	tk_cuda_copy(r.db, h, bytes, NULL);
	tk_cuda_sync(NULL);
	t = tk_now() - t;
	printf("RESULT tk rank upload 1Mx1024 fp32 from pinned memory: %.1f ms (%.1f GB/s)\n",
	       t * 1e3, bytes / t / 1e9);
	tk_cuda_host_free(h);
	tk_cuda_free(r.q), tk_cuda_free(r.db), tk_cuda_free(r.keys);
}

int main(int argc, char **argv)
{
	tk_init("bench_ops");
	if (tk_cuda_device_count() == 0) {
		printf("skipped: no CUDA device\n");
		return 77;
	}
	tk_cuda_init(0);
	printf("device: %s\n", tk_cuda_device_name());
	int all = argc < 2;
	for (int i = 1; i < argc || all; i++) {
		const char *w = all ? NULL : argv[i];
		if (!w || !strcmp(w, "gemm"))
			bench_gemm();
		if (!w || !strcmp(w, "rank"))
			bench_rank();
		if (all)
			break;
	}
	return 0;
}
