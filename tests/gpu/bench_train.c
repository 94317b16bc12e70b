/* bench_train - training steps of R101-Token at 512 x 512 on the GPU as
 * tk-train --device cuda runs them (common/trainnet.c on the dispatch
 * layer: forward, backward, gradient norm, SGD on the device; the batch's
 * u8 pixels uploaded from pinned host memory and normalised on the device
 * each step), 81313 ArcFace classes, dropout 0.1:
 * images/s at the largest batch up to BATCH that fits the GPU's memory
 * (the network's plan measured at one image).  bench_torch.py train times
 * the same step in PyTorch (bf16 autocast, channels_last).
 *
 * Then one more step, not timed, prints the time on the device of each
 * kind of layer (dev_mark's profile, as TK_PROFILE=1 gives tk-train).
 *
 *   [TK_BENCH_DETERMINISTIC=1] bench_train [fp32|tf32|bf16] [BATCH] [STEPS] [ARCH] [SIZE]
 *   (bf16, 32, 3, r101:classes=81313, 512; tests/emu/bench.test runs a
 *   tiny ARCH and SIZE on the CUDA emulator, so that this program has run
 *   before it meets a GPU; TK_BENCH_DETERMINISTIC=1: as tk-train
 *   --deterministic, cuDNN's deterministic algorithms by its heuristics) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/devtrain.h"
#include "common/init.h"
#include "common/model.h"
#include "common/optim.h"
#include "common/tk.h"
#include "common/trainnet.h"
#include "kernels/cuda/cuda.h"
#include "kernels/dispatch.h"

int main(int argc, char **argv)
{
	tk_init("bench_train");
	if (tk_cuda_device_count() == 0) {
		printf("skipped: no CUDA device\n");
		return 77;
	}
	const char *prec = argc > 1 ? argv[1] : "bf16";
	int want = argc > 2 ? atoi(argv[2]) : 32, steps = argc > 3 ? atoi(argv[3]) : 3;
	const char *arch = argc > 4 ? argv[4] : "r101:classes=81313";
	const int S = argc > 5 ? atoi(argv[5]) : 512;
	if (want < 1 || steps < 1 || S < 32)
		die_usage("BATCH and STEPS at least 1, SIZE at least 32");
	double t0 = tk_now();
	struct tk_arch a;
	char err[256];
	if (tk_arch_parse(&a, arch, err, sizeof err) < 0)
		die_usage("%s", err);
	struct tk_model m;
	tk_model_init(&m, &a);
	tk_model_init_weights(&m, 1, 0);
	struct tk_dev dv;
	if (tk_dev_parse(&dv, "cuda", prec, err, sizeof err) < 0)
		die_usage("%s", err);
	const char *det = getenv("TK_BENCH_DETERMINISTIC");
	dv.deterministic = det && strcmp(det, "1") == 0;
	tk_dev_open(&dv);
	size_t bytes = m.numel * sizeof(float);
	float *P = dev_alloc(&dv, bytes), *mom = dev_alloc(&dv, bytes);
	float *grad = dev_alloc(&dv, bytes);
	dev_upload(&dv, P, m.data, bytes);
	dev_zero(&dv, mom, bytes);
	dev_zero(&dv, grad, bytes);
	/* the batch that fits: the plan of one image, measured */
	struct tk_net *n1 = tk_net_new_on(&dv, P, &m, 1, S, S, 0.1f);
	struct tk_net_memory mem;
	tk_net_memory(n1, &mem);
	tk_net_free(n1);
	size_t per = mem.activations + mem.scratch, fixed = mem.workspace;
	size_t fr, tot;
	tk_cuda_mem_info(&fr, &tot);
	size_t room = (size_t)(fr * 0.80) > fixed ? (size_t)(fr * 0.80) - fixed : 0;
	int B = want;
	while (B > 2 && (size_t)B * per > room)
		B /= 2;
	printf("device: %s; plan %.2f GiB an image, %.1f GiB free: batch %d\n",
	       tk_dev_describe(&dv), per / 1073741824.0, fr / 1073741824.0, B);
	struct tk_net *net = tk_net_new_on(&dv, P, &m, B, S, S, 0.1f);
	/* the batch as tk-train has it: u8 pixels in pinned memory */
	uint8_t *x = dev_host_alloc(&dv, (size_t)B * 3 * S * S);
	int32_t *lab = xmalloc(B * sizeof *lab);
	uint64_t r = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < (size_t)B * 3 * S * S; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		x[i] = (uint8_t)(r >> 56);
	}
	for (int i = 0; i < B; i++)
		lab[i] = (int32_t)((i * 7919) % (a.classes > 0 ? a.classes : 1));
	struct tk_hparams h;
	tk_hparams_default(&h);
	h.batch = B;
	double setup = tk_now() - t0, first = 0, loss = 0;
	t0 = tk_now();
	for (int s = 0; s <= steps; s++) {
		if (s == 1) {
			dev_sync(&dv);
			first = tk_now() - t0;
			t0 = tk_now();
		}
		loss = tk_net_forward_u8(net, &m, x, lab, B, 1, 77 + s);
		tk_net_backward(net, &m, grad);
		double norm = tk_grad_norm_on(&dv, &m, grad);
		tk_sgd_step_on(&dv, &m, P, mom, grad, &h, 1e-3);
		dev_zero(&dv, grad, bytes);
		if (!isfinite(loss) || !isfinite(norm))
			die_data("non-finite loss %g or gradient norm %g", loss, norm);
	}
	dev_sync(&dv);
	double dt = (tk_now() - t0) / steps;
	printf("RESULT tk train %s%s%s %s %d^2 batch %d: %.1f images/s (%.1f ms/step; "
	       "first step %.1f s with cuDNN's search; setup %.1f s; loss %.3f)\n",
	       prec, dev_train_nhwc(&dv) ? " channels-last" : "",
	       dv.deterministic ? " deterministic" : "", arch, S, B, B / dt,
	       dt * 1e3, first, setup, loss);
	fflush(stdout);
	/* One more step, profiled (not timed: the marks' events cost a
	 * little), each kind of layer's time on the device. */
	dev_profile_set(1);
	dev_profile_restart(&dv);
	tk_net_forward_u8(net, &m, x, lab, B, 1, 99);
	tk_net_backward(net, &m, grad);
	tk_grad_norm_on(&dv, &m, grad);
	tk_sgd_step_on(&dv, &m, P, mom, grad, &h, 1e-3);
	dev_profile_report(&dv);
	tk_net_free(net);
	dev_free(&dv, P), dev_free(&dv, mom), dev_free(&dv, grad);
	dev_host_free(&dv, x), free(lab);
	tk_dev_close(&dv);
	tk_model_free(&m);
	return 0;
}
