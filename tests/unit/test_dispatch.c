/* test_dispatch - the device layer on the CPU: --device/--precision
 * parsing (and its errors in a build without CUDA), memory helpers, and
 * dev_* ops giving exactly the CPU op's result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/tk.h"
#include "kernels/act.h"
#include "kernels/dispatch.h"
#include "kernels/linear.h"
#include "kernels/norm.h"

static void t_parse(void)
{
	struct tk_dev dv;
	char err[256];
	CHECK(tk_dev_parse(&dv, "cpu", NULL, err, sizeof err) == 0);
	CHECK(dv.kind == TK_DEV_CPU && dv.precision == 0);
	CHECK(tk_dev_parse(&dv, NULL, "fp32", err, sizeof err) == 0);
	CHECK(tk_dev_parse(&dv, "cpu", "bf16", err, sizeof err) == -1);
	CHECK(strstr(err, "fp32 only") != NULL);
	CHECK(tk_dev_parse(&dv, "gpu", NULL, err, sizeof err) == -1);
	CHECK(tk_dev_parse(&dv, "cuda:x", NULL, err, sizeof err) == -1);
	CHECK(tk_dev_parse(&dv, "cuda:", NULL, err, sizeof err) == -1);
	int rc = tk_dev_parse(&dv, "cuda:1", "tf32", err, sizeof err);
	if (tk_have_cuda()) {
		CHECK(rc == 0 && dv.kind == TK_DEV_CUDA && dv.index == 1 &&
		      dv.precision == 1);
	} else {
		CHECK(rc == -1 && strstr(err, "not built in") != NULL);
	}
	CHECK(tk_dev_parse(&dv, "cuda", "fp16", err, sizeof err) == -1);
}

static void t_ops(void)
{
	struct tk_dev dv;
	char err[256];
	CHECK(tk_dev_parse(&dv, "cpu", NULL, err, sizeof err) == 0);
	tk_dev_open(&dv);
	int N = 5, C = 7;
	float row[7] = {1, 2, 3, 4, 5, 6, 7};
	float *a = dev_alloc(&dv, N * C * sizeof *a), *b = dev_alloc(&dv, N * C * 4);
	dev_fill_rows(&dv, a, row, N, C);
	for (int i = 0; i < N * C; i++)
		CHECK(a[i] == row[i % C]);
	dev_transpose(&dv, b, a, N, C);
	for (int r = 0; r < N; r++)
		for (int c = 0; c < C; c++)
			CHECK(b[c * N + r] == a[r * C + c]);
	size_t at = 99;
	CHECK(dev_all_finite(&dv, a, N * C, &at) && at == 99);
	a[17] = NAN;
	CHECK(!dev_all_finite(&dv, a, N * C, &at) && at == 17);
	a[17] = -3;
	float want[35], got[35];
	softmax_forward(want, a, N, C);
	dev_softmax_forward(&dv, got, a, N, C);
	CHECK(memcmp(want, got, sizeof want) == 0);
	float w[21], bias[3] = {0.5f, -1, 2};
	for (int i = 0; i < 21; i++)
		w[i] = (float)i / 10 - 1;
	linear_forward(want, a, w, bias, N, C, 3);
	dev_linear_forward(&dv, got, a, w, bias, N, C, 3);
	CHECK(memcmp(want, got, N * 3 * sizeof *got) == 0);
	l2norm_forward(want, a, 1e-12f, N, C);
	dev_l2norm_forward(&dv, got, a, 1e-12f, N, C);
	CHECK(memcmp(want, got, sizeof want) == 0);
	CHECK(dev_conv2d_backward_workspace(&dv, (struct conv2d_dims){1, 3, 8, 8, 4, 3, 1, 1}) > 0);
	CHECK(strstr(tk_dev_describe(&dv), "cpu") != NULL);
	dev_free(&dv, a);
	dev_free(&dv, b);
	tk_dev_close(&dv);
}

int main(void)
{
	tk_init("test_dispatch");
	t_parse();
	t_ops();
	return CHECK_DONE();
}
