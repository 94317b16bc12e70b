/* test_model - the model table: architecture specs and metadata, the
 * reference's tensor count, loading with missing, extra, duplicated and
 * mis-shaped tensors, F16/BF16/F64 conversion, checkpoint state left
 * alone, backbone-only files, the initialisation rules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/init.h"
#include "common/model.h"
#include "common/tk.h"

#define SMALL "r50:width=8,mid_dim=32,out_dim=32,heads=4,classes=10"

static void test_arch(void)
{
	struct tk_arch a;
	char err[256];
	CHECK(tk_arch_parse(&a, "r101", err, sizeof err) == 0);
	CHECK(a.depth == 101 && a.width == 64 && a.mid_dim == 1024 &&
	      a.tokens == 4 && a.heads == 8 && a.enc_layers == 1 &&
	      a.dec_layers == 2 && a.out_dim == 1024 && a.classes == 0);
	CHECK(fabsf(a.arc_s - 32.0f) < 1e-6f && fabsf(a.arc_m - 0.2f) < 1e-7f);
	CHECK(tk_arch_parse(&a, SMALL, err, sizeof err) == 0);
	CHECK(a.depth == 50 && a.width == 8 && a.classes == 10 && a.heads == 4);
	CHECK(fabsf(a.arc_s - sqrtf(32)) < 1e-6f);
	static const char *bad[] = {
	    "r34", "r50:width", "r50:width=x", "r50:width=1.5",
	    "r50:colour=3", "r50:width=0", "r50:width=2000",
	    "r50:heads=7", "r50:classes=-1", "r50:classes=99999999",
	    "r50:arcface_s=0", "r50:mid_dim=1e9", "r50:decoder_layers=65",
	    "r50:arcface_s=1e39", "r50:arcface_m=-1e300",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		int rc = tk_arch_parse(&a, bad[i], err, sizeof err);
		CHECK(rc < 0 && err[0]);
		if (rc == 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
	}
	/* Metadata round trip. */
	struct tk_arch b;
	struct st_doc d;
	st_init(&d);
	CHECK(tk_arch_parse(&a, SMALL ",arcface_m=0.3", err, sizeof err) == 0);
	tk_arch_to_meta(&a, &d);
	CHECK(strcmp(st_meta_get(&d, "format"), "tk-model") == 0);
	CHECK(strcmp(st_meta_get(&d, "backbone"), "resnet50") == 0);
	CHECK(tk_arch_from_meta(&b, &d, err, sizeof err) == 0);
	CHECK(memcmp(&a, &b, sizeof a) == 0);
	st_meta_set(&d, "heads", "5");
	CHECK(tk_arch_from_meta(&b, &d, err, sizeof err) < 0);
	CHECK(strstr(err, "heads") != NULL);
	st_meta_set(&d, "heads", "four");
	CHECK(tk_arch_from_meta(&b, &d, err, sizeof err) < 0);
	CHECK(strstr(err, "heads='four'") != NULL);
	st_meta_set(&d, "format", "tk-backbone"); /* depth and width only */
	CHECK(tk_arch_from_meta(&b, &d, err, sizeof err) == 0);
	CHECK(b.backbone_only && b.depth == 50 && b.width == 8);
	st_free(&d);
	st_init(&d);
	CHECK(tk_arch_from_meta(&b, &d, err, sizeof err) < 0);
	CHECK(strstr(err, "tk-import") != NULL);
	st_free(&d);
}

static void test_table(void)
{
	struct tk_arch a;
	char err[256], desc[256];
	CHECK(tk_arch_parse(&a, "r101:classes=10", err, sizeof err) == 0);
	struct tk_model m;
	tk_model_init(&m, &a);
	/* The reference Token R101's state_dict: 707 tensors, and torch's
	 * parameter count for it with 81313 classes (tests/ref/token_ref.py). */
	CHECK(m.n == 707);
	CHECK(tk_model_count(&m, TK_PARAM) + (81313 - 10) * 1024 == 163564608);
	a.classes = 81313;
	CHECK(((uintptr_t)m.data & 63) == 0);
	for (int i = 0; i < m.n; i++)
		CHECK(m.p[i].offset % 16 == 0);
	CHECK(tk_model_param(&m, "tr.decoder.1.mlp.fc2.weight")->shape[1] == 2048);
	CHECK(tk_model_param(&m, "backbone.block4.22.conv3.weight") != NULL);
	CHECK(tk_model_param(&m, "tr.proj.1.num_batches_tracked")->kind == TK_COUNTER);
	CHECK(tk_model_param(&m, "classifier.weight")->decay);
	CHECK(!tk_model_param(&m, "tr.proj.0.bias")->decay);
	tk_arch_describe(&a, desc, sizeof desc);
	CHECK(strstr(desc, "resnet101") && strstr(desc, "163.6M parameters"));
	tk_model_free(&m);
	a.backbone_only = 1;
	tk_model_init(&m, &a);
	for (int i = 0; i < m.n; i++)
		CHECK(strncmp(m.p[i].name, "backbone.", 9) == 0);
	/* torchvision's resnet101 without fc: 42,500,160 parameters. */
	CHECK(tk_model_count(&m, TK_PARAM) == 42500160);
	tk_arch_describe(&a, desc, sizeof desc);
	CHECK(strstr(desc, "backbone, 42.5M parameters") != NULL);
	tk_model_free(&m);
}

/* A small model with recognisable values. */
static void small_model(struct tk_model *m)
{
	struct tk_arch a;
	char err[256];
	CHECK(tk_arch_parse(&a, SMALL, err, sizeof err) == 0);
	tk_model_init(m, &a);
	for (size_t i = 0; i < m->numel; i++)
		m->data[i] = (float)((i * 2654435761u) % 128) / 8.0f - 8.0f;
	for (int i = 0; i < m->n; i++)
		if (m->p[i].kind == TK_COUNTER)
			m->data[m->p[i].offset] = 1234;
}

static int same_data(const struct tk_model *a, const struct tk_model *b)
{
	if (a->n != b->n)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (memcmp(a->data + a->p[i].offset, b->data + b->p[i].offset,
			   a->p[i].numel * sizeof(float)) != 0)
			return 0;
	return 1;
}

/* Load doc d (a modified copy of m's), expecting failure naming 'want'. */
static void expect_fail(const struct st_doc *d, const char *want)
{
	struct tk_model r;
	char err[512] = "";
	int rc = tk_model_from_doc(&r, d, err, sizeof err);
	CHECK(rc < 0);
	if (rc == 0)
		tk_model_free(&r);
	CHECK(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "message '%s' lacks '%s'\n", err, want);
}

/* The document of m with one tensor removed (or renamed, or reshaped). */
static void doc_without(const struct tk_model *m, struct st_doc *d,
			const char *name, const char *rename,
			const int64_t *shape)
{
	struct st_doc full;
	st_init(&full);
	tk_model_to_doc(m, &full);
	st_init(d);
	st_meta_copy(d, &full);
	for (int i = 0; i < full.n; i++) {
		struct st_tensor *t = &full.t[i];
		if (strcmp(t->name, name) != 0)
			st_add(d, t->name, t->dtype, t->rank, t->shape, t->data);
		else if (rename)
			st_add(d, rename, t->dtype, t->rank, t->shape, t->data);
		else if (shape)
			st_add(d, t->name, t->dtype, t->rank, shape, t->data);
	}
	st_free(&full);
}

static void test_load(void)
{
	struct tk_model m, r;
	char err[512];
	small_model(&m);
	struct st_doc d;
	st_init(&d);
	tk_model_to_doc(&m, &d);
	CHECK(tk_model_from_doc(&r, &d, err, sizeof err) == 0);
	CHECK(same_data(&m, &r));
	CHECK(r.data[tk_model_param(&r, "tr.conv.1.num_batches_tracked")->offset] == 1234);
	tk_model_free(&r);

	/* Checkpoint state is left alone; anything else extra is refused. */
	float x[3] = {1, 2, 3};
	st_add(&d, "optim.tr.query.exp_avg", ST_F32, 1, (int64_t[]){3}, x);
	st_add(&d, "state.step", ST_F32, 1, (int64_t[]){1}, x);
	CHECK(tk_model_from_doc(&r, &d, err, sizeof err) == 0);
	tk_model_free(&r);
	st_add(&d, "tr.extra", ST_F32, 1, (int64_t[]){3}, x);
	expect_fail(&d, "unexpected tensor 'tr.extra'");
	st_free(&d);

	doc_without(&m, &d, "tr.decoder.1.bn2.bias", NULL, NULL);
	expect_fail(&d, "missing tensor 'tr.decoder.1.bn2.bias'");
	st_free(&d);
	doc_without(&m, &d, "classifier.weight", NULL, NULL);
	expect_fail(&d, "missing tensor 'classifier.weight'");
	st_free(&d);
	doc_without(&m, &d, "tr.query", NULL, (int64_t[]){1, 5, 32});
	expect_fail(&d, "tensor 'tr.query' has shape [1,5,32], the architecture needs [1,4,32]");
	st_free(&d);
	/* Metadata that disagrees with the shapes: refused, not allocated. */
	doc_without(&m, &d, "-", NULL, NULL);
	st_meta_set(&d, "classes", "16000000");
	expect_fail(&d, "tensor 'classifier.weight' has shape [10,32], the architecture needs [16000000,32]");
	st_free(&d);
	doc_without(&m, &d, "tr.token_norm.1.bias", "tr.token_norm.1.weight", NULL);
	expect_fail(&d, "tensor 'tr.token_norm.1.weight' appears twice");
	st_free(&d);

	/* F16, BF16, F64 convert; integers only for counters. */
	struct st_doc full;
	st_init(&full);
	tk_model_to_doc(&m, &full);
	for (int pass = 0; pass < 4; pass++) {
		enum st_dtype dt = pass == 0 ? ST_F16 : pass == 1 ? ST_BF16 : pass == 2 ? ST_F64 : ST_I32;
		st_init(&d);
		st_meta_copy(&d, &full);
		void **bufs = calloc(full.n, sizeof *bufs);
		for (int i = 0; i < full.n; i++) {
			struct st_tensor *t = &full.t[i];
			size_t n = st_numel(t);
			if (t->dtype != ST_F32 || (dt == ST_I32 && strcmp(t->name, "tr.query"))) {
				st_add(&d, t->name, t->dtype, t->rank, t->shape, t->data);
				continue;
			}
			bufs[i] = malloc(n * 8 + 1);
			for (size_t k = 0; k < n; k++) {
				float v = ((float *)t->data)[k];
				if (dt == ST_F16)
					((uint16_t *)bufs[i])[k] = st_f32_to_f16(v);
				else if (dt == ST_BF16)
					((uint16_t *)bufs[i])[k] = st_f32_to_bf16(v);
				else if (dt == ST_F64)
					((double *)bufs[i])[k] = v;
				else
					((int32_t *)bufs[i])[k] = (int32_t)v;
			}
			st_add(&d, t->name, dt, t->rank, t->shape, bufs[i]);
		}
		if (dt == ST_I32) {
			expect_fail(&d, "tensor 'tr.query': dtype I32 is not a float");
		} else {
			CHECK(tk_model_from_doc(&r, &d, err, sizeof err) == 0);
			/* Values are multiples of 1/8 in [-8, 8): exact in all. */
			CHECK(same_data(&m, &r));
			tk_model_free(&r);
		}
		for (int i = 0; i < full.n; i++)
			free(bufs[i]);
		free(bufs);
		st_free(&d);
	}
	st_free(&full);
	tk_model_free(&m);
}

static void test_files(void)
{
	struct tk_model m, r;
	char err[512], path[64], bpath[64];
	snprintf(path, sizeof path, "/tmp/test_model.%d.st", (int)getpid());
	snprintf(bpath, sizeof bpath, "/tmp/test_model.%d.bb.st", (int)getpid());
	small_model(&m);
	tk_model_save(&m, path);
	CHECK(tk_model_load(&r, path, err, sizeof err) == 0);
	CHECK(same_data(&m, &r));
	tk_model_free(&r);

	/* A backbone alone: written, refused by tk_model_load, copied in. */
	struct tk_arch a = m.arch;
	a.backbone_only = 1;
	struct tk_model b;
	tk_model_init(&b, &a);
	for (int i = 0; i < b.n; i++)
		memcpy(b.data + b.p[i].offset, tk_model_tensor(&m, b.p[i].name),
		       b.p[i].numel * sizeof(float));
	tk_model_save(&b, bpath);
	CHECK(tk_model_load(&r, bpath, err, sizeof err) < 0);
	CHECK(strstr(err, "backbone only") != NULL);
	struct tk_model z;
	tk_model_init(&z, &m.arch);
	CHECK(tk_model_copy_backbone(&z, bpath, err, sizeof err) == 0);
	CHECK(tk_model_copy_backbone(&z, path, err, sizeof err) == 0);
	for (int i = 0; i < z.n; i++) {
		int bb = strncmp(z.p[i].name, "backbone.", 9) == 0;
		float *v = z.data + z.p[i].offset;
		CHECK(bb ? memcmp(v, tk_model_tensor(&m, z.p[i].name),
				  z.p[i].numel * 4) == 0
			 : v[0] == 0);
	}
	tk_model_free(&z);
	struct tk_arch a101;
	CHECK(tk_arch_parse(&a101, "r101:width=8,mid_dim=32,out_dim=32,heads=4", err, sizeof err) == 0);
	tk_model_init(&z, &a101);
	CHECK(tk_model_copy_backbone(&z, bpath, err, sizeof err) < 0);
	CHECK(strstr(err, "resnet50 width 8, the model needs resnet101 width 8") != NULL);
	tk_model_free(&z);
	tk_model_free(&b);
	CHECK(tk_model_load(&r, "/nonexistent/x.st", err, sizeof err) < 0);
	CHECK(strstr(err, "/nonexistent/x.st") != NULL);
	unlink(path);
	unlink(bpath);
	tk_model_free(&m);
}

static void test_init_rules(void)
{
	struct tk_arch a;
	char err[256];
	CHECK(tk_arch_parse(&a, "r50:classes=100", err, sizeof err) == 0);
	struct tk_model m;
	tk_model_init(&m, &a);
	struct {
		const char *name;
		enum tk_init_kind kind;
		double scale;
	} want[] = {
	    {"backbone.block1.0.weight", TK_INIT_NORMAL, sqrt(2.0 / (64 * 49))},
	    {"backbone.block3.0.conv2.weight", TK_INIT_NORMAL, sqrt(2.0 / (128 * 9))},
	    {"backbone.block3.0.downsample.0.weight", TK_INIT_NORMAL, sqrt(2.0 / 512)},
	    {"backbone.block3.0.downsample.1.weight", TK_INIT_ONE, 0},
	    {"backbone.block3.0.bn1.bias", TK_INIT_ZERO, 0},
	    {"backbone.block3.0.bn1.running_var", TK_INIT_ONE, 0},
	    {"backbone.block3.0.bn1.running_mean", TK_INIT_ZERO, 0},
	    {"tr.conv.0.weight", TK_INIT_UNIFORM, 1 / sqrt(2048)},
	    {"tr.conv.0.bias", TK_INIT_UNIFORM, 1 / sqrt(2048)},
	    {"tr.conv.1.weight", TK_INIT_ONE, 0},
	    {"tr.encoder.0.attn.q.weight", TK_INIT_TRUNC_NORMAL, 0.02},
	    {"tr.encoder.0.attn.v.bias", TK_INIT_ZERO, 0},
	    {"tr.encoder.0.attn.proj.weight", TK_INIT_ZERO, 0},
	    {"tr.encoder.0.attn.proj.bias", TK_INIT_ZERO, 0},
	    {"tr.encoder.0.mlp.weight", TK_INIT_UNIFORM, 1 / 32.0},
	    {"tr.encoder.0.bn.bias", TK_INIT_ZERO, 0},
	    {"tr.query", TK_INIT_NORMAL, 1},
	    {"tr.token_norm.0.bias", TK_INIT_UNIFORM, 1 / 32.0},
	    {"tr.token_norm.1.weight", TK_INIT_ONE, 0},
	    {"tr.decoder.1.cross_attn.k.weight", TK_INIT_TRUNC_NORMAL, 0.02},
	    {"tr.decoder.1.self_attn.proj.weight", TK_INIT_ZERO, 0},
	    {"tr.decoder.1.mlp.fc2.weight", TK_INIT_UNIFORM, 1 / sqrt(2048)},
	    {"tr.decoder.1.mlp.fc1.bias", TK_INIT_UNIFORM, 1 / 32.0},
	    {"tr.decoder.0.bn2.weight", TK_INIT_ONE, 0},
	    {"tr.proj.0.weight", TK_INIT_UNIFORM, 1 / 64.0},
	    {"tr.proj.1.num_batches_tracked", TK_INIT_ZERO, 0},
	    {"classifier.weight", TK_INIT_UNIFORM, sqrt(6.0 / 1124)},
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		const struct tk_param *p = tk_model_param(&m, want[i].name);
		CHECK(p != NULL);
		if (!p)
			continue;
		struct tk_init_rule r = tk_init_rule(&m, p);
		CHECK(r.kind == want[i].kind && fabs(r.scale - want[i].scale) < 1e-12);
		if (r.kind != want[i].kind || fabs(r.scale - want[i].scale) >= 1e-12)
			fprintf(stderr, "%s: kind %d scale %g\n", want[i].name,
				r.kind, r.scale);
	}
	tk_model_free(&m);
	/* Streams per tensor: the same seed, the same values; uniforms in
	 * their bounds. */
	CHECK(tk_arch_parse(&a, SMALL ",classes=3000", err, sizeof err) == 0);
	tk_model_init(&m, &a);
	tk_model_init_weights(&m, 7, 0);
	const struct tk_param *c = tk_model_param(&m, "classifier.weight");
	float first = m.data[c->offset];
	double bound = sqrt(6.0 / 3032);
	for (size_t k = 0; k < c->numel; k++)
		CHECK(fabs(m.data[c->offset + k]) <= bound);
	tk_model_init_weights(&m, 7, 0);
	CHECK(m.data[c->offset] == first);
	tk_model_init_weights(&m, 8, 0);
	CHECK(m.data[c->offset] != first);
	tk_model_free(&m);
}

int main(void)
{
	test_arch();
	test_table();
	test_load();
	test_files();
	test_init_rules();
	return CHECK_DONE();
}
