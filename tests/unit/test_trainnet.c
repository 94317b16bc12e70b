/* test_trainnet - the training network's gradient against central
 * differences of its own loss, on a small model: one tensor of every
 * kind (convolutions of the stem, the blocks and the head, batch norms,
 * attention, layer norms, the MLP, the query, the projection, the
 * classifier), with dropout on, in training mode.
 *
 *   test_trainnet MODEL FRAMES OUT [DROPOUT SEED]
 *
 * instead runs one training forward and backward pass of MODEL on the
 * image frames of FRAMES (one batch) and writes the loss, the logits, every
 * parameter's gradient ("grad.<name>") and the updated buffers
 * ("state.<name>") to OUT, for tests/ref/train_ref.py grads to compare. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/model.h"
#include "common/stream.h"
#include "common/threads.h"
#include "common/tk.h"
#include "common/trainnet.h"
#include "common/trainnet_impl.h"
#include "kernels/image.h"

static uint64_t rng = 0x853c49e6748fea9bull;
static double urand(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(rng >> 11) * 0x1.0p-53;
}

static float nrand(void)
{
	double u = urand() + 1e-12, v = urand();
	return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

/* Roughly the reference's initialisation: Kaiming-like convolutions,
 * small linears, unit norms. */
static void init_model(struct tk_model *m)
{
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		float *x = m->data + p->offset;
		const char *dot = strrchr(p->name, '.');
		size_t fan = p->rank > 1 ? p->numel / p->shape[0] : 1;
		if (p->kind == TK_COUNTER)
			continue;
		/* Small last norms of the residual branches, as a trained
		 * ResNet has: a well-conditioned network whose loss is
		 * smooth enough for finite differences. */
		if (strstr(p->name, "bn3.weight")) {
			for (size_t j = 0; j < p->numel; j++)
				x[j] = 0.2f + 0.05f * nrand();
			continue;
		}
		if (strstr(p->name, "running_var") ||
		    (p->rank == 1 && dot && !strcmp(dot, ".weight"))) {
			for (size_t j = 0; j < p->numel; j++)
				x[j] = 1.0f + 0.2f * nrand();
		} else if (p->rank == 1) {
			for (size_t j = 0; j < p->numel; j++)
				x[j] = 0.1f * nrand();
		} else {
			float sd = sqrtf(2.0f / fan);
			for (size_t j = 0; j < p->numel; j++)
				x[j] = sd * nrand();
		}
	}
}

static int dump(int argc, char **argv)
{
	struct tk_model m;
	char err[1024];
	if (tk_model_load(&m, argv[1], err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	float p = argc > 4 ? (float)atof(argv[4]) : 0.0f;
	uint64_t seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
	struct tk_stream s;
	struct st_doc d;
	st_init(&d);
	tk_stream_open(&s, argv[2]);
	float *x = NULL;
	int32_t *label = NULL;
	int B = 0, H = 0, W = 0;
	while (tk_read_frame(&s, &d)) {
		struct st_tensor *t = tk_frame_tensor(&s, &d, "image", ST_U8, 3);
		H = (int)t->shape[0];
		W = (int)t->shape[1];
		x = xrealloc(x, (size_t)(B + 1) * 3 * H * W * sizeof *x);
		label = xrealloc(label, (B + 1) * sizeof *label);
		image_normalize_forward(x + (size_t)B * 3 * H * W, t->data,
					imagenet_mean, imagenet_std, H, W);
		label[B++] = atoi(st_meta_get(&d, "label"));
	}
	tk_stream_close(&s);
	struct tk_net *net = tk_net_new(&m, B, H, W, p);
	float *grad = xcalloc(m.numel, sizeof *grad);
	float loss = (float)tk_net_forward(net, &m, x, label, B, 1, seed);
	tk_net_backward(net, &m, grad);
	st_clear(&d);
	int64_t one = 1, lshape[2] = {B, m.arch.classes};
	st_add(&d, "loss", ST_F32, 1, &one, &loss);
	st_add(&d, "logits", ST_F32, 2, lshape, tk_net_logits(net));
	/* The descriptor, its gradient and the projection before its norm. */
	int64_t eshape[2] = {B, m.arch.out_dim};
	st_add(&d, "net.e", ST_F32, 2, eshape, net->e);
	st_add(&d, "net.de", ST_F32, 2, eshape, net->de);
	st_add(&d, "net.pj", ST_F32, 2, eshape, net->pj);
	int64_t pshape[2] = {B, (int64_t)m.arch.tokens * m.arch.mid_dim};
	st_add(&d, "net.pin", ST_F32, 2, pshape,
	       m.arch.dec_layers ? net->dec[m.arch.dec_layers - 1].out : net->tq);
	char **names = xcalloc(2 * m.n, sizeof *names);
	for (int i = 0; i < m.n; i++) {
		const struct tk_param *q = &m.p[i];
		if (asprintf(&names[2 * i], "grad.%s", q->name) < 0 ||
		    asprintf(&names[2 * i + 1], "state.%s", q->name) < 0)
			return 1;
		if (q->kind == TK_PARAM)
			st_add(&d, names[2 * i], ST_F32, q->rank, q->shape,
			       grad + q->offset);
		else
			st_add(&d, names[2 * i + 1], ST_F32, q->rank, q->shape,
			       m.data + q->offset);
	}
	FILE *fp = fopen(argv[3], "wb");
	if (!fp || st_write(fp, &d) < 0 || fclose(fp) != 0) {
		perror(argv[3]);
		return 1;
	}
	printf("loss %.7g\n", loss);
	for (int i = 0; i < 2 * m.n; i++)
		free(names[i]);
	free(names);
	st_free(&d);
	tk_net_free(net);
	tk_model_free(&m);
	free(grad);
	free(x);
	free(label);
	return 0;
}

int main(int argc, char **argv)
{
	tk_init("test_trainnet");
	tk_threads_set(0);
	if (argc > 3)
		return dump(argc, argv);
	struct tk_arch a;
	char err[256];
	if (tk_arch_parse(&a, "r50:width=4,mid_dim=16,out_dim=12,heads=2,classes=7",
			  err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct tk_model m;
	tk_model_init(&m, &a);
	init_model(&m);
	int B = 4, H = 64, W = 60;
	struct tk_net *net = tk_net_new(&m, B, H, W, 0.1f);
	size_t nx = (size_t)B * 3 * H * W;
	float *x = xmalloc(nx * sizeof *x);
	for (size_t i = 0; i < nx; i++)
		x[i] = nrand();
	int32_t label[4] = {1, 6, 1, 3};
	float *grad = xcalloc(m.numel, sizeof *grad);
	double loss = tk_net_forward(net, &m, x, label, B, 1, 42);
	tk_net_backward(net, &m, grad);
	printf("loss %.6f\n", loss);
	CHECK(isfinite(loss));
	/* The directional derivative along each tensor's gradient: central
	 * differences of the loss at w +- h g / |g| against |g|.  Along a
	 * direction the kinks of ReLU and max-pool average out, where single
	 * coordinates of the early layers would cross them. */
	static const char *names[] = {
	    "backbone.block1.0.weight", "backbone.block1.1.weight",
	    "backbone.block1.1.bias", "backbone.block2.0.conv1.weight",
	    "backbone.block2.0.conv2.weight", "backbone.block2.0.downsample.0.weight",
	    "backbone.block2.0.downsample.1.weight", "backbone.block3.1.bn3.bias",
	    "backbone.block4.0.conv2.weight", "backbone.block5.2.conv3.weight",
	    "backbone.block5.2.bn2.weight", "tr.conv.0.weight", "tr.conv.1.weight",
	    "tr.conv.1.bias", "tr.encoder.0.attn.q.weight",
	    "tr.encoder.0.attn.v.bias", "tr.encoder.0.attn.proj.weight",
	    "tr.encoder.0.bn.weight", "tr.encoder.0.mlp.weight", "tr.query",
	    "tr.token_norm.0.weight", "tr.token_norm.1.bias",
	    "tr.decoder.0.cross_attn.k.weight", "tr.decoder.0.cross_attn.q.bias",
	    "tr.decoder.0.bn1.weight", "tr.decoder.0.mlp.fc1.weight",
	    "tr.decoder.1.mlp.fc2.bias", "tr.decoder.1.self_attn.k.weight",
	    "tr.decoder.1.bn2.bias", "tr.proj.0.weight", "tr.proj.1.weight",
	    "classifier.weight"};
	float *saved = xmalloc(m.numel * sizeof *saved);
	memcpy(saved, m.data, m.numel * sizeof *saved);
	for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
		const struct tk_param *p = tk_model_param(&m, names[k]);
		CHECK(p != NULL);
		if (!p)
			continue;
		const float *g = grad + p->offset;
		double norm = 0, wn = 0;
		for (size_t j = 0; j < p->numel; j++) {
			norm += (double)g[j] * g[j];
			wn += (double)saved[p->offset + j] * saved[p->offset + j];
		}
		norm = sqrt(norm);
		/* A step that moves the loss by about 2e-3: small enough for
		 * the curvature, large enough for float's rounding. */
		double h = 2e-3 / norm;
		(void)wn;
		double l[2];
		for (int sgn = 0; sgn < 2; sgn++) {
			/* Training forwards move the running statistics: start
			 * from the same ones each time. */
			memcpy(m.data, saved, m.numel * sizeof *saved);
			for (size_t j = 0; j < p->numel; j++)
				m.data[p->offset + j] += (float)((sgn ? -h : h) * g[j] / norm);
			l[sgn] = tk_net_forward(net, &m, x, label, B, 1, 42);
		}
		memcpy(m.data, saved, m.numel * sizeof *saved);
		double num = (l[0] - l[1]) / (2 * h);
		double e = fabs(num - norm) / norm;
		/* The stem's norm feeds ReLU and max-pool over small planes:
		 * its parameters move many values across the kinks at once. */
		int ok = e < (strstr(names[k], "block1.1.") ? 6e-2 : 2e-2);
		printf("%-5s %-40s |g|=%-10.4g d/dh=%-10.4g rel=%.3g\n",
		       ok ? "ok" : "FAIL", names[k], norm, num, e);
		CHECK(ok);
	}
	struct tk_net_memory mem;
	tk_net_memory(net, &mem);
	printf("memory: activations %zu, scratch %zu, workspace %zu bytes\n",
	       mem.activations, mem.scratch, mem.workspace);
	tk_net_free(net);
	tk_model_free(&m);
	free(x);
	free(grad);
	free(saved);
	return CHECK_DONE();
}
