/* tk-train - train Token on image frames with labels: batches, forward,
 * backward, SGD; checkpoints that resume the same schedule; a JSON-lines
 * log and its plot; validation. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/checkpoint.h"
#include "common/devtrain.h"
#include "common/dist.h"
#include "common/model.h"
#include "common/optim.h"
#include "common/stream.h"
#include "common/threads.h"
#include "common/tk.h"
#include "common/trainlog.h"
#include "common/trainnet.h"
#include "kernels/dispatch.h"
#include "kernels/dropout.h"
#include "kernels/image.h"

static const char usage[] =
    "usage: tk-train (--model FILE | --resume CKPT) --out CKPT --epoch-size N\n"
    "                [options] < images.bin\n"
    "       tk-train --model FILE --validate STREAM\n"
    "Train on image frames with labels (from tk-augment); see tk-train(1).\n"
    "  -m, --model FILE       start from a model (tk-init) or checkpoint's weights\n"
    "  -r, --resume CKPT      continue a checkpoint: weights, momentum, schedule,\n"
    "                         position; the stream restarts at its epoch\n"
    "  -o, --out CKPT         checkpoint to write (atomically) at the end\n"
    "  -b, --batch N          images per batch (128)\n"
    "      --update-every N   batches per optimizer step (1)\n"
    "      --epoch-size N     images per epoch (required to train)\n"
    "      --epochs E         epochs of the schedule (30)\n"
    "      --warmup-epochs E  linear warm-up epochs (5)\n"
    "      --warmup-lr LR     warm-up start per 256 images (1e-4)\n"
    "      --lr LR            base learning rate per 256 images (0.01)\n"
    "      --final-lr LR      end of the cosine decay per 256 images (0)\n"
    "      --momentum M       Nesterov momentum (0.9)\n"
    "      --weight-decay W   on weights, not biases or 1-D tensors (1e-4)\n"
    "      --clip NORM        clip the gradient norm (off)\n"
    "      --dropout P        dropout and drop-path in the head (0.1)\n"
    "      --seed S           dropout seed (11)\n"
    "      --save-every N     also checkpoint every N steps\n"
    "      --no-skip          on --resume, the stream starts where the\n"
    "                         checkpoint stopped (default: at its epoch's start)\n"
    "      --deterministic    record the thread count (GPU: cuDNN's deterministic\n"
    "                         algorithms); resumed runs equal uninterrupted\n"
    "                         ones bit for bit\n"
    "      --no-deterministic on --resume, leave a deterministic checkpoint's\n"
    "                         mode (and its thread count)\n"
    "  -l, --log FILE         append JSON lines: a record per step (records of\n"
    "                         steps after this run's first go to FILE.removed)\n"
    "      --plot FILE.svg    draw the log's loss and error curves (with --log\n"
    "                         and --out; redrawn at each checkpoint)\n"
    "      --validate STREAM  loss and top-1/top-5 error over STREAM at the end\n"
    "                         (one JSON line on standard output)\n"
    "      --val-size N       the validation's images (all ranks'): another\n"
    "                         count, a stream cut short, is an error\n"
    "      --epoch E          the stream is epoch E (from 1): start from epoch\n"
    "                         E-1's end or inside E, stop at E's end, fail\n"
    "                         (keeping the checkpoint) if the stream stops short\n"
    "      --device DEV       cpu (default), cuda or cuda:N (cuda: the launch's\n"
    "                         local rank); several ranks (torchrun's, Slurm's or\n"
    "                         MPI's variables) train data-parallel, each on its\n"
    "                         shard\n"
    "      --precision P      on the GPU: fp32 (default), tf32 or bf16 GEMMs\n"
    "  -t, --threads N        threads (default: OMP_NUM_THREADS or all)\n"
    "  -q, --quiet            only errors on stderr\n"
    "      --progress         accepted by every tool; nothing to show here\n"
    "  -h, --help             this text\n"
    "      --version          version, and whether CUDA support is built in\n";

enum {
	OPT_UPDATE = TK_OPT_FIRST_TOOL, OPT_EPOCH_SIZE, OPT_EPOCHS, OPT_WARMUP,
	OPT_WARMUP_LR, OPT_LR, OPT_FINAL_LR, OPT_MOMENTUM, OPT_WD, OPT_CLIP,
	OPT_DROPOUT, OPT_SEED, OPT_SAVE_EVERY, OPT_NO_SKIP, OPT_DETERMINISTIC,
	OPT_PLOT, OPT_VALIDATE, OPT_EPOCH, OPT_DEVICE, OPT_PRECISION,
	OPT_NO_DETERMINISTIC, OPT_VAL_SIZE,
};

struct options {
	const char *model, *resume, *out, *log, *plot, *validate;
	struct tk_hparams h;
	char set[32]; /* hyper-parameters given on the command line */
	long save_every, epoch, val_size;
	int no_skip, deterministic, no_deterministic, threads;
	const char *device, *precision;
};

/* A hyper-parameter option: its field, for overriding a checkpoint's. */
#define HP(c) ((c) - OPT_UPDATE)

/* The schedule's warm-up fits in it: on --resume, checked once the
 * options are merged into the checkpoint's hyper-parameters. */
static void check_warmup(const struct tk_hparams *h)
{
	if (h->warmup_epochs > h->epochs)
		die_usage("--warmup-epochs %d is more than --epochs %d",
			  h->warmup_epochs, h->epochs);
}

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"model", required_argument, 0, 'm'},
	    {"resume", required_argument, 0, 'r'},
	    {"out", required_argument, 0, 'o'},
	    {"batch", required_argument, 0, 'b'},
	    {"update-every", required_argument, 0, OPT_UPDATE},
	    {"epoch-size", required_argument, 0, OPT_EPOCH_SIZE},
	    {"epochs", required_argument, 0, OPT_EPOCHS},
	    {"warmup-epochs", required_argument, 0, OPT_WARMUP},
	    {"warmup-lr", required_argument, 0, OPT_WARMUP_LR},
	    {"lr", required_argument, 0, OPT_LR},
	    {"final-lr", required_argument, 0, OPT_FINAL_LR},
	    {"momentum", required_argument, 0, OPT_MOMENTUM},
	    {"weight-decay", required_argument, 0, OPT_WD},
	    {"clip", required_argument, 0, OPT_CLIP},
	    {"dropout", required_argument, 0, OPT_DROPOUT},
	    {"seed", required_argument, 0, OPT_SEED},
	    {"save-every", required_argument, 0, OPT_SAVE_EVERY},
	    {"no-skip", no_argument, 0, OPT_NO_SKIP},
	    {"deterministic", no_argument, 0, OPT_DETERMINISTIC},
	    {"no-deterministic", no_argument, 0, OPT_NO_DETERMINISTIC},
	    {"log", required_argument, 0, 'l'},
	    {"plot", required_argument, 0, OPT_PLOT},
	    {"validate", required_argument, 0, OPT_VALIDATE},
	    {"val-size", required_argument, 0, OPT_VAL_SIZE},
	    {"epoch", required_argument, 0, OPT_EPOCH},
	    {"device", required_argument, 0, OPT_DEVICE},
	    {"precision", required_argument, 0, OPT_PRECISION},
	    {"threads", required_argument, 0, 't'},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	struct tk_hparams *h = &o->h;
	int c;
	memset(o, 0, sizeof *o);
	tk_hparams_default(h);
	while ((c = tk_getopt(argc, argv, "m:r:o:b:l:t:qh", longopts)) != -1) {
		if (c >= OPT_UPDATE && c <= OPT_SEED)
			o->set[HP(c)] = 1;
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'r': o->resume = optarg; break;
		case 'o': o->out = optarg; break;
		case 'b':
			h->batch = (int)tk_parse_long("--batch", optarg, 1, TK_HP_MAX_COUNT);
			o->set[31] = 1;
			break;
		case OPT_UPDATE: h->update_every = (int)tk_parse_long("--update-every", optarg, 1, TK_HP_MAX_COUNT); break;
		case OPT_EPOCH_SIZE: h->epoch_size = tk_parse_long("--epoch-size", optarg, 1, TK_HP_MAX_EPOCH_SIZE); break;
		case OPT_EPOCHS: h->epochs = (int)tk_parse_long("--epochs", optarg, 1, TK_HP_MAX_COUNT); break;
		case OPT_WARMUP: h->warmup_epochs = (int)tk_parse_long("--warmup-epochs", optarg, 0, TK_HP_MAX_COUNT); break;
		case OPT_WARMUP_LR: h->warmup_lr = tk_parse_double("--warmup-lr", optarg); break;
		case OPT_LR: h->base_lr = tk_parse_double("--lr", optarg); break;
		case OPT_FINAL_LR: h->final_lr = tk_parse_double("--final-lr", optarg); break;
		case OPT_MOMENTUM: h->momentum = tk_parse_double("--momentum", optarg); break;
		case OPT_WD: h->weight_decay = tk_parse_double("--weight-decay", optarg); break;
		case OPT_CLIP: h->clip = tk_parse_double("--clip", optarg); break;
		case OPT_DROPOUT: h->dropout = tk_parse_double("--dropout", optarg); break;
		case OPT_SEED: h->seed = (uint64_t)tk_parse_long("--seed", optarg, 0, 1L << 62); break;
		case OPT_SAVE_EVERY: o->save_every = tk_parse_long("--save-every", optarg, 1, 1L << 40); break;
		case OPT_NO_SKIP: o->no_skip = 1; break;
		case OPT_DETERMINISTIC: o->deterministic = 1; break;
		case OPT_NO_DETERMINISTIC: o->no_deterministic = 1; break;
		case 'l': o->log = optarg; break;
		case OPT_PLOT: o->plot = optarg; break;
		case OPT_VALIDATE: o->validate = optarg; break;
		case OPT_VAL_SIZE: o->val_size = tk_parse_long("--val-size", optarg, 1, 1L << 50); break;
		case OPT_EPOCH: o->epoch = tk_parse_long("--epoch", optarg, 1, 1L << 30); break;
		case OPT_DEVICE: o->device = optarg; break;
		case OPT_PRECISION: o->precision = optarg; break;
		case 't': o->threads = (int)tk_parse_long("--threads", optarg, 1, TK_TRAIN_MAX_THREADS); break;
		default: tk_common_option(c, usage);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s' (frames come on standard input)",
			  argv[optind]);
	if (!!o->model + !!o->resume != 1)
		die_usage("give one of --model FILE and --resume CKPT");
	if (!o->out && !o->validate)
		die_usage("--out CKPT is required to train");
	if (o->out && !o->resume && h->epoch_size < 1)
		die_usage("--epoch-size N is required to train (the schedule "
			  "counts steps per epoch)");
	if (o->plot && !o->log)
		die_usage("--plot goes with --log (it draws the log)");
	if (o->val_size && !o->validate)
		die_usage("--val-size goes with --validate");
	if (o->plot && !o->out)
		die_usage("--plot goes with --out (it is drawn with each checkpoint)");
	if (o->epoch && !o->out)
		die_usage("--epoch goes with --out");
	if (o->deterministic && o->no_deterministic)
		die_usage("give one of --deterministic and --no-deterministic");
	if (!(h->dropout >= 0 && h->dropout < 1))
		die_usage("--dropout must be in [0, 1)");
	if (!o->resume)
		check_warmup(h);
}

/* On --resume the checkpoint's hyper-parameters hold unless an option
 * sets one again, which is said even with --quiet (pipelines run quiet,
 * and the run is then not the one the checkpoint began).  Another batch,
 * update-every or epoch size changes the steps per epoch: the schedule
 * goes on from the checkpoint's place in its epochs (tk_schedule_pos),
 * not from its step count, so that it still ends with the last epoch. */
static void merge_hparams(struct tk_train_state *st, const struct options *o)
{
	struct tk_hparams *ck = &st->h, was = st->h;
	long pos = tk_schedule_pos(&was, st->epoch, st->seen);
	static const struct {
		int opt;
		const char *name;
		size_t off;
		int kind; /* 0 int, 1 long, 2 double, 3 u64 */
	} f[] = {
#define F(opt, name, field, kind) {opt, name, offsetof(struct tk_hparams, field), kind}
	    F(OPT_UPDATE, "--update-every", update_every, 0),
	    F(OPT_EPOCH_SIZE, "--epoch-size", epoch_size, 1),
	    F(OPT_EPOCHS, "--epochs", epochs, 0),
	    F(OPT_WARMUP, "--warmup-epochs", warmup_epochs, 0),
	    F(OPT_WARMUP_LR, "--warmup-lr", warmup_lr, 2),
	    F(OPT_LR, "--lr", base_lr, 2), F(OPT_FINAL_LR, "--final-lr", final_lr, 2),
	    F(OPT_MOMENTUM, "--momentum", momentum, 2),
	    F(OPT_WD, "--weight-decay", weight_decay, 2),
	    F(OPT_CLIP, "--clip", clip, 2), F(OPT_DROPOUT, "--dropout", dropout, 2),
	    F(OPT_SEED, "--seed", seed, 3),
#undef F
	};
	const size_t sizes[] = {sizeof(int), sizeof(long), sizeof(double),
				sizeof(uint64_t)};
	for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
		if (!o->set[HP(f[i].opt)])
			continue;
		char *dst = (char *)ck + f[i].off;
		const char *src = (const char *)&o->h + f[i].off;
		if (memcmp(dst, src, sizes[f[i].kind]) != 0)
			tk_warn_loud("%s differs from the checkpoint's: the schedule "
				     "changes", f[i].name);
		memcpy(dst, src, sizes[f[i].kind]);
	}
	if (o->set[31] && o->h.batch != ck->batch) {
		tk_warn_loud("--batch differs from the checkpoint's: the schedule "
			     "changes");
		ck->batch = o->h.batch;
	}
	if (st->seen && st->seen >= ck->epoch_size)
		die_usage("--epoch-size %ld: the checkpoint has trained %ld images "
			  "of epoch %ld already (resume it with its epoch size, %ld, "
			  "or change it at an epoch's end)", ck->epoch_size, st->seen,
			  st->epoch + 1, was.epoch_size);
	long per = tk_steps_per_epoch(&was), per2 = tk_steps_per_epoch(ck);
	long pos2 = tk_schedule_pos(ck, st->epoch, st->seen);
	if (per2 != per || pos2 != pos)
		tk_warn_loud("%ld steps per epoch, where the checkpoint's "
			     "schedule had %ld: it goes on from its place, %ld "
			     "images into epoch %ld, which is step %ld of %ld now "
			     "(step %ld of %ld before)", per2, per, st->seen,
			     st->epoch + 1, pos2, per2 * ck->epochs, pos,
			     per * was.epochs);
}

/* ---- the device path ----
 * --device cuda, TK_DEVPATH=1 (the same code on the CPU device, the
 * tests' way through it), or several ranks: the network on the device
 * with the device's copy of the parameters and buffers (P), the momentum
 * and the gradient there; the host's model (m->data) keeps the
 * num_batches_tracked counters and is brought up to date before a
 * checkpoint.  Data parallel: each rank trains on batch / world images of
 * its shard of the stream (the global frames i with i % world == rank:
 * tk-decode --shard RANK/WORLD), SyncBatchNorm, the gradient averaged
 * over the ranks; rank 0 logs, validates and writes the checkpoints. */
static struct {
	int on;
	struct tk_dev dv;
	struct tk_dist dist;
	float *P, *mom, *shadow; /* device: parameters, momentum, buffers */
	double *stat;            /* device: a step's sums over the ranks */
	struct dev_ddp *ddp;
	size_t bucket;           /* bytes of the gradient's all-reduce buckets */
} D;

/* The dropout draws' seed of batch micro: a function of the run's seed
 * and the batch, so that a resumed run draws what the uninterrupted one
 * did, and of the rank (rank 0's is the one process's), so that the
 * ranks' images get masks of their own, as the images of one process's
 * batch do, and not each rank the same ones. */
static uint64_t batch_seed(const struct tk_hparams *h, long micro)
{
	uint64_t seed = tk_mix64(h->seed ^ tk_mix64(0x7261696e00000000ull +
						    (uint64_t)micro));
	int r = D.on ? D.dist.rank : 0;
	return r ? tk_mix64(seed ^ tk_mix64(0x72616e6b00000000ull + (uint64_t)r))
		 : seed;
}

/* Frames of [0, x) of the global stream that are this rank's. */
static long mine_before(long x)
{
	int w = D.on ? D.dist.world : 1, r = D.on ? D.dist.rank : 0;
	return x > r ? (x - r + w - 1) / w : 0;
}

/* The next batch of the epoch, seen images into it: its images in all
 * (*want) and this rank's share of them (returned). */
static int next_batch(const struct tk_hparams *h, long seen, int *want)
{
	long left = h->epoch_size - seen;
	*want = left < h->batch ? (int)left : h->batch;
	return (int)(mine_before(seen + *want) - mine_before(seen));
}

/* ---- batches ---- */

struct batch {
	float *x;        /* [cap, 3, H, W] normalised (on the CPU path) */
	uint8_t *px;     /* [cap, H, W, 3] the pixels (on a device) */
	int32_t *label;
	int n, cap, H, W; /* H, W: 0 until the first frame */
	long first;      /* stream frame index of image 0 */
	const struct tk_dev *pin; /* a device: px in its pinned host memory
				     (the upload does not stall the host)
				     and normalised there; NULL: x */
};

static void batch_free(struct batch *b)
{
	if (b->pin)
		dev_host_free(b->pin, b->px);
	free(b->x);
	free(b->label);
	memset(b, 0, sizeof *b);
}

static int parse_label(const struct tk_stream *s, const struct st_doc *d,
		       int classes)
{
	const char *v = st_meta_get(d, "label");
	if (!v)
		tk_frame_die(s, d, "no 'label' in the metadata: training needs labels");
	if (!tk_whole_integer(v))
		tk_frame_die(s, d, "label '%s' is not an integer", v);
	errno = 0;
	long l = strtol(v, NULL, 10);
	if (errno == ERANGE || l < 0 || l >= classes)
		tk_frame_die(s, d, "label %s is outside the model's %d classes", v,
			     classes);
	return (int)l;
}

/* A data-parallel rank's frame from tk-decode --shard carries its place
 * in the whole stream (index): one of another rank's is a launch gone
 * wrong (the shard of LOCAL_RANK instead of RANK on a second machine,
 * another world size), which would train on some images several times
 * and never on others, or validate on them so.  Frames without an index
 * (a whole stream, or a shard made otherwise) are taken as they are. */
static void check_shard(const struct tk_stream *s, const struct st_doc *d)
{
	int w = D.dist.world, r = D.dist.rank;
	long i;
	int has = w > 1 ? tk_frame_index(d, &i) : 0;
	if (has < 0)
		tk_frame_die(s, d, "metadata 'index' '%s' is not an integer >= 0",
			     st_meta_get(d, "index"));
	if (has && i % w != r)
		tk_frame_die(s, d, "index %ld (its place in the whole stream) "
			     "is rank %ld's of %d, not rank %d's: give each rank "
			     "its own shard (here tk-decode --shard %d/%d)",
			     i, i % w, w, r, r, w);
}

/* Read up to want frames into b, each checked to be of the rank's
 * shard (check_shard); returns how many. */
static int read_batch(struct batch *b, struct tk_stream *s, struct st_doc *d,
		      int want, int classes)
{
	b->n = 0;
	b->first = s->frame;
	while (b->n < want && tk_read_frame(s, d)) {
		check_shard(s, d);
		struct st_tensor *t = tk_frame_tensor(s, d, "image", ST_U8, 3);
		int H = (int)t->shape[0], W = (int)t->shape[1];
		if (t->shape[2] != 3)
			tk_frame_die(s, d, "image has %lld channels, not 3",
				     (long long)t->shape[2]);
		if (!b->H) {
			b->H = H;
			b->W = W;
		} else if (H != b->H || W != b->W) {
			tk_frame_die(s, d, "image of %d x %d in a batch of %d x %d "
				     "images (tk-augment --size makes them equal)",
				     W, H, b->W, b->H);
		}
		int32_t label = parse_label(s, d, classes);
		size_t px = xmul((size_t)3 * H, (size_t)W);
		if (!b->label) { /* room for a whole batch, whatever this one asks */
			if (b->pin)
				b->px = dev_host_alloc(b->pin, xmul(b->cap, px));
			else
				b->x = xmalloc(xmul(b->cap, px * sizeof *b->x));
			b->label = xmalloc(b->cap * sizeof *b->label);
		}
		if (b->pin)
			memcpy(b->px + (size_t)b->n * px, t->data, px);
		else
			image_normalize_forward(b->x + (size_t)b->n * px, t->data,
						imagenet_mean, imagenet_std, H, W);
		b->label[b->n++] = label;
	}
	return b->n;
}

/* Images whose label's logit is beaten by fewer than k others. */
static void topk_hits(const float *logits, const int32_t *label, int B, int K,
		      long *hit1, long *hit5)
{
	for (int i = 0; i < B; i++) {
		const float *z = logits + (size_t)i * K;
		float zl = z[label[i]];
		int above = 0;
		for (int j = 0; j < K; j++)
			above += z[j] > zl;
		*hit1 += above < 1;
		*hit5 += above < 5;
	}
}

/* CPU seconds of the whole process, every thread. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double mib(size_t bytes)
{
	return bytes / (1024.0 * 1024.0);
}

/* ---- validation ---- */

/* This rank's validation stream, into v: the loss summed over its
 * images, their count, the top-1 and top-5 hits. */
static void validate_stream(struct tk_model *m, const struct options *o,
			    const struct tk_train_state *st, double v[4])
{
	struct tk_stream s;
	struct st_doc d;
	st_init(&d);
	tk_stream_open(&s, o->validate);
	int B = st->h.batch, K = m->arch.classes;
	/* Static: an error that ends the program leaves them reachable. */
	static struct batch b;
	static struct tk_net *net;
	b.cap = B;
	long hit1 = 0, hit5 = 0;
	while (read_batch(&b, &s, &d, B, K) > 0) {
		if (!net)
			net = D.on ? tk_net_new_on(&D.dv, D.P, m, B, b.H, b.W, 0.0f)
				   : tk_net_new(m, B, b.H, b.W, 0.0f);
		v[0] += tk_net_forward(net, m, b.x, b.label, b.n, 0, 0) * b.n;
		topk_hits(tk_net_logits(net), b.label, b.n, K, &hit1, &hit5);
		v[1] += b.n;
	}
	tk_stream_close(&s);
	v[2] = (double)hit1;
	v[3] = (double)hit5;
	tk_net_free(net);
	batch_free(&b);
	net = NULL;
	st_free(&d);
}

/* ---- training ---- */

/* What a checkpoint holds at the last optimizer step: the running
 * statistics move with every forward pass, so they are kept as they were
 * then, for a checkpoint written while batches wait for their step. */
struct boundary {
	struct tk_train_state st;
	float *buffers; /* every TK_BUFFER and TK_COUNTER tensor */
};

static void buffers_copy(struct tk_model *m, float *shadow, int to_shadow)
{
	size_t k = 0;
	for (int i = 0; i < m->n; i++) {
		const struct tk_param *p = &m->p[i];
		if (p->kind == TK_PARAM)
			continue;
		float *a = m->data + p->offset;
		if (to_shadow)
			memcpy(shadow + k, a, p->numel * sizeof *a);
		else
			memcpy(a, shadow + k, p->numel * sizeof *a);
		k += p->numel;
	}
}

static void mark_boundary(struct boundary *bd, struct tk_model *m,
			  const struct tk_train_state *st)
{
	bd->st = *st;
	buffers_copy(m, bd->buffers, 1); /* the counters, on the device path */
	if (D.on)
		tk_buffers_copy_on(&D.dv, m, D.P, D.shadow, 1);
}

static void restore_boundary(struct boundary *bd, struct tk_model *m,
			     struct tk_train_state *st)
{
	*st = bd->st;
	buffers_copy(m, bd->buffers, 0);
	if (D.on)
		tk_buffers_copy_on(&D.dv, m, D.P, D.shadow, 0);
}

static void zero_grad(float *grad, size_t n)
{
	if (D.on)
		dev_zero(&D.dv, grad, n * sizeof *grad);
	else
		memset(grad, 0, n * sizeof *grad);
}

/* The run's state, in static storage: an error that ends the program
 * leaves everything reachable (no leak reports under LeakSanitizer). */
struct run {
	struct tk_model m;
	float *momentum, *grad;
	struct tk_net *net;
	struct batch b, ahead; /* this step's batch; the next one, read early */
	struct boundary bd;
	struct tk_train_state st;
	struct tk_trainlog log;
	const struct options *o;
	long last_saved; /* step of the last checkpoint written, -1: none */
	int out_existed; /* --out was there before this run */
	long rounds;     /* batches trained on with the other ranks */
	long extra;      /* --epoch: the frame after the epoch's end, -1: none */
};

static void save(struct run *r)
{
	if (D.on) { /* the host's model and momentum from the device's */
		tk_model_download(&D.dv, &r->m, D.P);
		dev_download(&D.dv, r->momentum, D.mom, r->m.numel * sizeof(float));
	}
	/* A step that overflowed the weights leaves the last checkpoint be. */
	for (size_t i = 0; i < r->m.numel; i++)
		if (!isfinite(r->m.data[i]))
			die_data("non-finite weights after step %ld: %s", r->st.step,
				 r->last_saved >= 0 || r->out_existed
				     ? "the last checkpoint is kept"
				     : "no checkpoint was written");
	if (D.on && D.dist.rank != 0)
		return; /* rank 0 writes */
	tk_checkpoint_save(r->o->out, &r->m, r->momentum, &r->st);
	r->last_saved = r->st.step;
	if (r->o->plot) {
		char err[512];
		if (tk_train_plot(r->o->plot, r->o->log, err, sizeof err) < 0)
			tk_warn("plot: %s", err);
	}
}

static _Noreturn void non_finite(struct run *r, const char *what, double v,
				 const struct batch *b)
{
	char kept[600];
	if (r->last_saved >= 0)
		snprintf(kept, sizeof kept, "%s (step %ld) is kept", r->o->out,
			 r->last_saved);
	else if (r->out_existed)
		snprintf(kept, sizeof kept, "%s is kept as it was", r->o->out);
	else
		snprintf(kept, sizeof kept, "no checkpoint was written");
	die_data("non-finite %s (%g) at step %ld, epoch %ld, frames %ld-%ld: "
		 "stopping; %s", what, v, r->st.step + 1, r->st.epoch, b->first,
		 b->first + b->n - 1, kept);
}

/* A loss for the log: v to 6 decimals, or null where it is not finite
 * (JSON has no NaN and no infinity; a diverged model's loss is either). */
static const char *json_loss(char buf[32], double v)
{
	if (!isfinite(v))
		return "null";
	snprintf(buf, 32, "%.6f", v);
	return buf;
}

static void train(struct run *r)
{
	const struct options *o = r->o;
	struct tk_train_state *st = &r->st;
	const struct tk_hparams *h = &st->h;
	struct tk_model *m = &r->m;
	int K = m->arch.classes;
	struct tk_stream s;
	struct st_doc d;
	st_init(&d);
	tk_stream_open(&s, "-");
	long skip = o->resume && !o->no_skip ? mine_before(st->seen) : 0;
	for (long i = 0; i < skip; i++)
		if (!tk_read_frame(&s, &d))
			die_data("<stdin>: the stream ended after %ld frames; the "
				 "checkpoint had trained %ld of its epoch (--no-skip "
				 "for a stream that starts where it stopped)",
				 i, skip);
	size_t nbuf = 0;
	for (int i = 0; i < m->n; i++)
		nbuf += m->p[i].kind == TK_PARAM ? 0 : m->p[i].numel;
	r->bd.buffers = xmalloc((nbuf + 1) * sizeof(float));
	struct boundary *bdp = &r->bd;
	int world = D.on ? D.dist.world : 1;
	if (D.on) {
		r->grad = dev_alloc(&D.dv, m->numel * sizeof *r->grad);
		dev_zero(&D.dv, r->grad, m->numel * sizeof *r->grad);
		D.shadow = dev_alloc(&D.dv, (tk_model_count(m, TK_BUFFER) + 1) * sizeof(float));
		if (world > 1) {
			D.ddp = dev_ddp_create(&D.dv, r->grad, m->numel, D.bucket);
			D.stat = dev_alloc(&D.dv, 4 * sizeof *D.stat);
		}
	} else {
		r->grad = xcalloc(m->numel, sizeof *r->grad);
	}
	mark_boundary(bdp, m, st);
	r->b.cap = h->batch / world;
	r->b.pin = D.on ? &D.dv : NULL;
	r->ahead = (struct batch){.cap = r->b.cap, .pin = r->b.pin};
	struct batch *bp = &r->b;
	int pending = 0, profiling = 0;
	int ahead = -1; /* images of the next batch read early, -1: none */
	long nimg = 0, hit1 = 0, hit5 = 0;
	double loss_sum = 0, t0 = tk_now(), c0 = cpu_now();
	/* the step count at the schedule's end */
	long steps_total = st->step + tk_steps_per_epoch(h) * h->epochs -
			   tk_schedule_pos(h, st->epoch, st->seen);
	long stop = o->epoch ? o->epoch : h->epochs;
	int to_train = st->epoch < stop;
	while (st->epoch < stop) {
		int want, mine = next_batch(h, st->seen, &want);
		int got;
		if (ahead >= 0) {
			struct batch t = *bp;
			*bp = r->ahead;
			r->ahead = t;
			got = ahead;
			ahead = -1;
		} else {
			got = read_batch(bp, &s, &d, mine, K);
		}
		if (got < mine) {
			if (got)
				tk_note("the stream ended inside a batch: its %d images "
					"are trained on when the run resumes", got);
			break;
		}
		got = want;
		if (!r->net) {
			r->net = D.on ? tk_net_new_on(&D.dv, D.P, m, h->batch / world,
						      bp->H, bp->W, (float)h->dropout)
				      : tk_net_new(m, h->batch, bp->H, bp->W,
						   (float)h->dropout);
			struct tk_net_memory mem;
			tk_net_memory(r->net, &mem);
			size_t model = m->numel * sizeof(float);
			tk_note("memory: model %.1f MiB, gradient %.1f MiB, momentum "
				"%.1f MiB, activations %.1f MiB, scratch %.1f MiB, "
				"workspace %.1f MiB; %.1f MiB in all",
				mib(model), mib(model), mib(model), mib(mem.activations),
				mib(mem.scratch), mib(mem.workspace),
				mib(3 * model + mem.activations + mem.scratch + mem.workspace));
			tk_trainlog_write(&r->log,
					  "{\"memory\": {\"model\": %zu, \"gradient\": %zu, "
					  "\"momentum\": %zu, \"activations\": %zu, "
					  "\"scratch\": %zu, \"workspace\": %zu}, \"batch\": %d, "
					  "\"height\": %d, \"width\": %d, \"threads\": %d}",
					  model, model, model, mem.activations, mem.scratch,
					  mem.workspace, h->batch, bp->H, bp->W, tk_threads());
		}
		st->seen += got;
		if (got == 1) {
			/* BatchNorm1d cannot normalise one image (torch refuses). */
			tk_warn("epoch %ld ends with a batch of one image: skipped",
				st->epoch);
		} else if (got % world) {
			/* SyncBatchNorm wants the ranks' batches equal. */
			tk_warn("epoch %ld ends with a batch of %d images, which %d "
				"ranks cannot share equally: skipped", st->epoch, got,
				world);
		} else {
			/* a round of the ranks' collectives (the watch stops a
			 * rank whose peers have left) */
			tk_dist_watch_round(++r->rounds);
			uint64_t seed = batch_seed(h, st->micro);
			double loss = bp->pin ? tk_net_forward_u8(r->net, m, bp->px, bp->label,
								  bp->n, 1, seed)
					      : tk_net_forward(r->net, m, bp->x, bp->label, bp->n,
							       1, seed);
			st->micro++;
			long h1 = 0, h5 = 0;
			topk_hits(tk_net_logits(r->net), bp->label, bp->n, K, &h1, &h5);
			if (world > 1) {
				/* every rank the batch's loss and errors (and so
				 * the same verdict on a non-finite loss) */
				double sums[3] = {loss * bp->n, (double)h1, (double)h5};
				dev_upload(&D.dv, D.stat, sums, sizeof sums);
				dev_allreduce_f64(&D.dv, D.stat, 3);
				dev_download(&D.dv, sums, D.stat, sizeof sums);
				loss = sums[0] / got;
				h1 = (long)sums[1];
				h5 = (long)sums[2];
			}
			if (!isfinite(loss))
				non_finite(r, "loss", loss, bp);
			/* a step's gradient is the mean of its batches'; the
			 * last batch before a step sums it over the ranks */
			tk_net_backward_sync(r->net, m, r->grad, 1.0 / h->update_every,
					     pending + 1 == h->update_every ? D.ddp : NULL);
			/* On a device, the next batch's pixels are read while
			 * the device runs this one's backward, which the host
			 * has only queued: the stream's reading overlaps the
			 * training.  Not across the epoch's end or a
			 * checkpoint, which come first in the stream's order;
			 * a bad frame there stops the run as before, with no
			 * checkpoint written in between. */
			int saving = pending + 1 == h->update_every && o->save_every &&
				     (st->step + 1) % o->save_every == 0;
			if (D.on && st->seen < h->epoch_size && !saving) {
				int want2, mine2 = next_batch(h, st->seen, &want2);
				r->ahead.H = bp->H; /* the same size as this batch */
				r->ahead.W = bp->W;
				ahead = read_batch(&r->ahead, &s, &d, mine2, K);
			}
			loss_sum += loss * got;
			hit1 += h1;
			hit5 += h5;
			nimg += got;
			pending++;
		}
		if (pending == h->update_every) {
			/* the schedule's place: the epochs', whatever batch
			 * a checkpoint began the epoch with */
			double norm, lr = tk_lr(h, tk_schedule_pos(h, st->epoch,
								  st->seen) - 1);
			if (D.on) {
				norm = h->clip > 0 ? tk_clip_grad_on(&D.dv, m, r->grad, h->clip)
						   : tk_grad_norm_on(&D.dv, m, r->grad);
				if (!isfinite(norm))
					non_finite(r, "gradient norm", norm, bp);
				tk_sgd_step_on(&D.dv, m, D.P, D.mom, r->grad, h, lr);
			} else {
				dev_mark(&D.dv, "gradient norm");
				norm = h->clip > 0 ? tk_clip_grad(m, r->grad, h->clip)
						   : tk_grad_norm(m, r->grad);
				if (!isfinite(norm))
					non_finite(r, "gradient norm", norm, bp);
				dev_mark(&D.dv, "sgd update");
				tk_sgd_step(m, r->momentum, r->grad, h, lr);
				dev_mark(&D.dv, NULL);
			}
			/* the profile leaves out the first step (cuDNN's
			 * search, first touches) */
			if (!profiling++)
				dev_profile_restart(&D.dv);
			zero_grad(r->grad, m->numel);
			st->step++;
			pending = 0;
			double dt = tk_now() - t0;
			double loss = loss_sum / nimg, e1 = 100.0 * (nimg - hit1) / nimg;
			double e5 = 100.0 * (nimg - hit5) / nimg;
			char lossj[32];
			tk_trainlog_write(&r->log,
					  "{\"step\": %ld, \"epoch\": %ld, \"lr\": %.17g, "
					  "\"loss\": %s, \"top1\": %.4f, \"top5\": %.4f, "
					  "\"grad_norm\": %.6g, \"images\": %ld, "
					  "\"images_per_s\": %.3f, \"seconds\": %.4f, "
					  "\"cpu_seconds\": %.4f}",
					  st->step, st->epoch, lr, json_loss(lossj, loss), e1,
					  e5, norm, nimg, nimg / dt, dt, cpu_now() - c0);
			tk_note("step %ld/%ld epoch %ld lr %.3g loss %.4f top1 %.1f%% "
				"top5 %.1f%% %.2f img/s", st->step, steps_total,
				st->epoch, lr, loss, e1, e5, nimg / dt);
			loss_sum = 0;
			nimg = hit1 = hit5 = 0;
			t0 = tk_now();
			c0 = cpu_now();
			if (st->seen < h->epoch_size)
				mark_boundary(bdp, m, st);
			if (o->save_every && st->step % o->save_every == 0 &&
			    st->seen < h->epoch_size)
				save(r);
		}
		if (st->seen >= h->epoch_size) {
			if (pending)
				tk_note("epoch %ld ends with %d batches short of a step: "
					"their gradient is dropped, as the reference's",
					st->epoch, pending);
			zero_grad(r->grad, m->numel);
			pending = 0;
			loss_sum = 0;
			nimg = hit1 = hit5 = 0;
			st->epoch++;
			st->seen = 0;
			mark_boundary(bdp, m, st);
			/* At the run's stop the last save follows, at once
			 * without --validate; with it, this one keeps the
			 * epoch should the validation be stopped (and
			 * --epoch resumes it by validating). */
			if (o->save_every && st->step % o->save_every == 0 &&
			    (st->epoch < stop || o->validate))
				save(r);
		}
	}
	if (to_train && s.frame == skip)
		die_data("%s: no frames to train on%s (no checkpoint written)",
			 s.name, skip ? " after those the checkpoint had trained" : "");
	/* A stream longer than its epoch: most likely the wrong list or
	 * --epoch-size, which the rest of the run would train with.  Any
	 * byte more says so; it is not read as a frame, which a damaged one
	 * would stop before the epoch is saved. */
	r->extra = -1;
	if (o->epoch && st->epoch == stop) {
		int c = getc(s.fp);
		if (c != EOF) {
			ungetc(c, s.fp);
			r->extra = s.frame;
		}
	}
	tk_stream_close(&s);
	dev_profile_report(&D.dv);
	dev_ddp_report(&D.dv, D.ddp, D.bucket);
	if (pending) {
		/* The stream stopped between steps: keep the state of the last
		 * step, so that a resumed run trains those batches again. */
		restore_boundary(bdp, m, st);
		tk_note("the stream ended %d batches after step %ld: the checkpoint "
			"is at that step", pending, st->step);
	}
	if (!o->epoch && st->epoch < stop)
		tk_warn("the stream ended at step %ld, %ld images into epoch %ld of "
			"%d: %ld images of the schedule to go (--resume the "
			"checkpoint with the rest)", st->step, st->seen,
			st->epoch + 1, h->epochs,
			(h->epochs - st->epoch) * h->epoch_size - st->seen);
	tk_net_free(r->net);
	r->net = NULL;
	if (D.on) {
		dev_free(&D.dv, r->grad);
		dev_free(&D.dv, D.shadow);
		dev_free(&D.dv, D.stat);
		dev_ddp_free(&D.dv, D.ddp);
		r->grad = NULL;
		D.shadow = NULL;
		D.stat = NULL;
		D.ddp = NULL;
	}
	batch_free(bp);
	batch_free(&r->ahead);
	free(bdp->buffers);
	memset(bdp, 0, sizeof *bdp);
	st_free(&d);
}

/* Validation: each rank over its --validate stream (in a data-parallel
 * run, its shard of the validation set, or rank 0 over the whole), the
 * sums gathered by rank 0, which logs them and puts them into the
 * checkpoint when it has --validate itself.  Every rank of a
 * data-parallel run takes part, with a stream or without. */
static void validate(struct run *r, const struct options *o)
{
	struct tk_train_state *st = &r->st;
	double v[4] = {0, 0, 0, 0};
	int world = D.on ? D.dist.world : 1;
	if (o->validate)
		validate_stream(&r->m, o, st, v);
	if (world > 1)
		tk_dist_gather_f64(v, 4, D.dist.rank == 0 && o->validate);
	if (!o->validate || (world > 1 && D.dist.rank != 0))
		return; /* rank 0 speaks for the run */
	long n = (long)v[1];
	/* A stream cut short (a tool before tk-train stopped: its error
	 * says why) ends like a whole one: without the count, a validation
	 * of some images would pass for all's, and pick the best epoch.
	 * A training run keeps its epoch (a later run validates it). */
	char why[160] = "";
	if (n == 0)
		snprintf(why, sizeof why, "no frames to validate on");
	else if (o->val_size && n != o->val_size)
		snprintf(why, sizeof why, "%ld images validated, not the %ld of "
			 "--val-size: the stream %s", n, o->val_size,
			 n < o->val_size ? "stopped short" : "holds more");
	if (*why) {
		if (o->out)
			save(r);
		die_data("%s%s: %s%s", o->validate,
			 world > 1 ? " and the other ranks' streams" : "", why,
			 o->out ? " (the checkpoint is written without this "
				  "validation)" : "");
	}
	st->has_val = 1;
	st->val_loss = v[0] / n;
	st->val_top1 = 100.0 * (n - v[2]) / n;
	st->val_top5 = 100.0 * (n - v[3]) / n;
	st->val_images = n;
	/* one validation record a step: an earlier one of this step (the
	 * checkpoint validated again) makes way */
	long moved = o->resume || o->out ? tk_trainlog_drop_val(&r->log, st->step) : 0;
	if (moved)
		tk_note("%s: moved %ld validation records of step %ld to "
			"%s.removed", o->log, moved, st->step, o->log);
	char line[512], lossj[32];
	snprintf(line, sizeof line,
		 "{\"step\": %ld, \"epoch\": %ld, \"val_loss\": %s, "
		 "\"val_top1\": %.4f, \"val_top5\": %.4f, \"val_images\": %ld}",
		 st->step, st->epoch, json_loss(lossj, st->val_loss), st->val_top1,
		 st->val_top5, n);
	tk_trainlog_write(&r->log, "%s", line);
	printf("%s\n", line);
	tk_note("validation: %ld images, loss %.4f, top-1 error %.2f%%, top-5 "
		"error %.2f%%", n, st->val_loss, st->val_top1, st->val_top5);
}

/* What every rank of this run shares, into its token: the ranks of
 * another run that meet this one on its port (a sweep started together)
 * are refused, not trained with.  The model's tensors, not their padding,
 * are hashed: a pass over the weights, so only for several ranks. */
static void token_add_run(const struct run *r)
{
	const struct tk_train_state *st = &r->st;
	const struct tk_hparams *h = &st->h;
	long ints[] = {h->batch, h->update_every, h->epoch_size, h->epochs,
		       h->warmup_epochs, (long)h->seed, st->step, st->epoch,
		       st->seen, st->micro};
	double reals[] = {h->warmup_lr, h->base_lr, h->final_lr, h->momentum,
			  h->weight_decay, h->clip, h->dropout};
	tk_dist_token_add(&D.dist, ints, sizeof ints);
	tk_dist_token_add(&D.dist, reals, sizeof reals);
	for (int i = 0; i < r->m.n; i++)
		tk_dist_token_add(&D.dist, r->m.data + r->m.p[i].offset,
				  r->m.p[i].numel * sizeof(float));
}

/* The device path's start: the launch's ranks, the device (cuda: the
 * LOCAL_RANK-th GPU), the group, the model and momentum on the device. */
static void device_start(struct run *r, const struct options *o)
{
	char err[512];
	if (tk_dist_from_env(&D.dist, err, sizeof err) < 0)
		die_usage("%s", err);
	if (tk_dev_parse(&D.dv, o->device, o->precision, err, sizeof err) < 0)
		die_usage("%s", err);
	D.dv.deterministic = r->st.threads != 0; /* --deterministic, or resumed */
	const char *env = getenv("TK_DEVPATH");
	D.on = tk_dev_is_cuda(&D.dv) || (env && !strcmp(env, "1")) ||
	       D.dist.world > 1;
	if (!D.on)
		return;
	int world = D.dist.world;
	if (r->st.h.batch % world)
		die_usage("--batch %d: %d ranks need a multiple of %d (each trains "
			  "on batch / ranks images)", r->st.h.batch, world, world);
	if (r->st.h.batch / world < 2)
		die_usage("--batch %d: %d ranks would train on one image each "
			  "(batch norm needs two)", r->st.h.batch, world);
	if (tk_dev_is_cuda(&D.dv) && !strcmp(o->device, "cuda")) {
		int n = tk_dev_cuda_count();
		/* One GPU visible: the launcher gave this rank its own
		 * (Slurm's --gpus-per-task, CUDA_VISIBLE_DEVICES per rank). */
		D.dv.index = n == 1 ? 0 : D.dist.local_rank;
		if (n > 1 && D.dv.index >= n)
			die_usage("--device cuda: rank %d would train on GPU %d (its "
				  "local rank, %s), but this machine has %d; NCCL "
				  "takes one rank a GPU (tk-train(1), \"Data parallel\")",
				  D.dist.rank, D.dist.local_rank, D.dist.local_var, n);
	}
	/* PyTorch DDP's bucket_cap_mb, 25 MiB by default; 0: one bucket */
	const char *bk = getenv("TK_DDP_BUCKET");
	D.bucket = bk && *bk ? tk_parse_size("TK_DDP_BUCKET", bk) : (size_t)25 << 20;
	if (D.dist.rank > 0)
		tk_quiet = 1; /* rank 0 speaks for the run */
	if (!tk_dev_is_cuda(&D.dv) && world > 1 && !o->threads) {
		/* ranks on CPUs share the machine's cores (idle OpenMP threads
		 * spin while a rank waits for the others) */
		int t = tk_threads() / (world < 64 ? world : 64);
		tk_threads_set(t > 0 ? t : 1);
	}
	tk_dev_open(&D.dv);
	if (world > 1)
		token_add_run(r);
	dev_group_init(&D.dv, &D.dist);
	size_t bytes = r->m.numel * sizeof(float);
	D.P = dev_alloc(&D.dv, bytes);
	D.mom = dev_alloc(&D.dv, bytes);
	dev_upload(&D.dv, D.P, r->m.data, bytes);
	dev_upload(&D.dv, D.mom, r->momentum, bytes);
	if (world > 1 || tk_dev_is_cuda(&D.dv))
		tk_note("%s%s; rank %d of %d (%s)", tk_dev_describe(&D.dv),
			dev_train_nhwc(&D.dv) ? ", the backbone channels-last"
					      : "",
			D.dist.rank, world, D.dist.launcher);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	static struct run r;
	r.o = &o;
	r.last_saved = -1;
	r.extra = -1;
	char err[1024];
	if (o.resume) {
		if (tk_checkpoint_load(&r.m, &r.momentum, &r.st, o.resume, err,
				       sizeof err) < 0)
			die_data("--resume %s", err);
		merge_hparams(&r.st, &o);
		check_warmup(&r.st.h);
		/* A deterministic checkpoint's thread count holds unless
		 * an option says otherwise, which ends bit-exactness with
		 * the run's earlier part (said even under -q). */
		if (r.st.threads && o.no_deterministic) {
			tk_warn_loud("--no-deterministic: the checkpoint was made "
				     "with --deterministic (%d threads); from here "
				     "on the run is not bit for bit an uninterrupted "
				     "one", r.st.threads);
			r.st.threads = 0;
		} else if (r.st.threads && o.threads && o.threads != r.st.threads) {
			tk_warn_loud("--threads %d: the deterministic checkpoint was "
				     "made with %d threads; from here on the run is "
				     "not bit for bit an uninterrupted one (it stays "
				     "deterministic with %d)", o.threads, r.st.threads,
				     o.threads);
		} else if (r.st.threads) {
			tk_note("the deterministic checkpoint's %d threads, as it "
				"was made with (--threads N or --no-deterministic "
				"change that, ending bit-exactness with the run so "
				"far)", r.st.threads);
			o.threads = r.st.threads;
		}
	} else {
		if (tk_model_load(&r.m, o.model, err, sizeof err) < 0)
			die_data("--model %s", err);
		r.st.h = o.h;
		r.momentum = xcalloc(r.m.numel, sizeof *r.momentum);
	}
	tk_threads_set(o.threads);
	if (o.deterministic || r.st.threads)
		r.st.threads = tk_threads();
	if (r.m.arch.classes < 1)
		die_data("%s: the model has no classifier (tk-init --classes C)",
			 o.resume ? o.resume : o.model);
	device_start(&r, &o);
	/* What rank 0 writes, checked before the data is read: a bad --out
	 * (a missing or read-only folder, a folder) found after training
	 * would lose the run.  After the ranks have met, so that the others
	 * see rank 0 go at once instead of waiting for it to start. */
	if (D.dist.rank == 0) {
		if (o.out)
			tk_outfile_check(o.out);
		if (o.plot)
			tk_outfile_check(o.plot);
	}
	r.out_existed = o.out && access(o.out, F_OK) == 0;
	/* A training run continues the log from its first step: what a run
	 * interrupted after that step logged, this one trains again.  A run
	 * that only validates appends. */
	long later = tk_trainlog_open(&r.log, D.dist.rank == 0 ? o.log : NULL,
				      o.out ? r.st.step : -1);
	if (later)
		tk_note("%s: moved %ld records of steps after %ld, which this run "
			"trains again, to %s.removed", o.log, later, r.st.step, o.log);
	if (o.out) {
		char desc[256];
		tk_arch_describe(&r.m.arch, desc, sizeof desc);
		tk_note("%s; %ld steps per epoch, step %ld (the schedule's %ld of "
			"%ld), epoch %ld, %d threads", desc,
			tk_steps_per_epoch(&r.st.h), r.st.step,
			tk_schedule_pos(&r.st.h, r.st.epoch, r.st.seen),
			tk_steps_per_epoch(&r.st.h) * r.st.h.epochs, r.st.epoch,
			tk_threads());
		/* A checkpoint saved at the end of epoch E (--save-every)
		 * and interrupted before the run's end (its validation, its
		 * last save): the epoch is trained, what is left is done. */
		int trained = o.epoch && o.resume && r.st.epoch == o.epoch;
		if (o.epoch && r.st.epoch != o.epoch - 1 && !trained)
			die_data("--epoch %ld: the %s is at the end of epoch %ld, "
				 "not inside epoch %ld", o.epoch,
				 o.resume ? "checkpoint" : "model", r.st.epoch, o.epoch);
		if (trained)
			tk_note("%s is at the end of epoch %ld already: the stream "
				"is not read; %s%s", o.resume, o.epoch,
				o.validate ? "validating, then " : "", "writing the "
				"checkpoint");
		else
			train(&r);
		/* done with the ranks' collectives: peers that train on
		 * (a longer stream) stop, and the others let rank 0 save */
		tk_dist_watch_end(r.rounds);
		if (o.epoch && r.st.epoch != o.epoch) {
			save(&r);
			die_data("the stream stopped %ld images short of the end of "
				 "epoch %ld: %s holds the run so far (--resume it with "
				 "the epoch's stream)", r.st.h.epoch_size - r.st.seen,
				 o.epoch, o.out);
		}
	} else {
		/* a run that only validates: no rounds of collectives */
		tk_dist_watch_end(0);
	}
	validate(&r, &o);
	if (o.out) {
		save(&r);
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		tk_note("%s: step %ld, epoch %ld; peak memory %.1f MiB", o.out,
			r.st.step, r.st.epoch, ru.ru_maxrss / 1024.0);
	}
	tk_trainlog_close(&r.log);
	tk_close_stdout(); /* a closed pipe ends the run quietly */
	if (D.on) {
		dev_free(&D.dv, D.P);
		dev_free(&D.dv, D.mom);
		dev_group_free(&D.dv);
		tk_dev_close(&D.dv);
	} else {
		free(r.grad);
	}
	tk_model_free(&r.m);
	free(r.momentum);
	/* The epoch is whole, validated and saved like any (on every rank:
	 * the ranks' validation and rank 0's save are collective); the run
	 * still fails, since the frames after it were not trained. */
	if (r.extra >= 0)
		die_data("<stdin>: frame %ld: the stream goes on past the end of "
			 "epoch %ld (--epoch-size %ld): the wrong list or epoch "
			 "size? The epoch's checkpoint is written; the frames "
			 "after it were not trained", r.extra, o.epoch,
			 r.st.h.epoch_size);
	return 0;
}
