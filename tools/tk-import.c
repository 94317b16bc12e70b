/* tk-import - a tk weight file from a PyTorch checkpoint (Token, or a
 * torchvision ResNet for tk-init --backbone) or from a tk checkpoint,
 * read without PyTorch and without running any of its code. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/import.h"
#include "common/model.h"
#include "common/stream.h"
#include "common/tk.h"
#include "common/torchload.h"

static const char usage[] =
    "usage: tk-import IN OUT [--arch ARCH] [--classes C] [--no-crc-check]\n"
    "A tk weight file OUT from the PyTorch checkpoint or tk file IN.\n"
    "See tk-import(1).\n"
    "  -a, --arch ARCH     the architecture to expect (r50, r101, r50:width=8,...);\n"
    "                      default: inferred from the shapes, 8 heads\n"
    "  -c, --classes C     0: leave the ArcFace classifier out; C: check that\n"
    "                      it has C classes\n"
    "      --no-crc-check  do not check the zip members' CRC-32s (for files\n"
    "                      torch.save wrote without them)\n"
    "  -q, --quiet         no summary line\n"
    "      --progress      accepted by every tool; nothing to show here\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

struct options {
	const char *in, *out;
	struct tk_arch arch;
	int have_arch;
	int classes;
	unsigned load_flags; /* TL_* */
};

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"arch", required_argument, 0, 'a'},
	    {"classes", required_argument, 0, 'c'},
	    {"no-crc-check", no_argument, 0, 'C'},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	int c;
	memset(o, 0, sizeof *o);
	o->classes = -1;
	while ((c = tk_getopt(argc, argv, "a:c:qh", longopts)) != -1) {
		char err[256];
		switch (c) {
		case 'a':
			if (tk_arch_parse(&o->arch, optarg, err, sizeof err) < 0)
				die_usage("--arch: %s", err);
			o->have_arch = 1;
			break;
		case 'c':
			o->classes = (int)tk_parse_long("--classes", optarg, 0, 1 << 24);
			break;
		case 'C': o->load_flags |= TL_NO_CRC; break;
		default: tk_common_option(c, usage);
		}
	}
	if (argc - optind != 2)
		die_usage("expected IN and OUT (see tk-import --help)");
	o->in = argv[optind];
	o->out = argv[optind + 1];
}

/* Whether the file starts like a torch checkpoint. */
static int looks_torch(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		die_io("cannot open %s:", path);
	unsigned char head[32];
	size_t n = fread(head, 1, sizeof head, fp);
	fclose(fp);
	return tl_is_torch(head, n);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	char err[1024], what[1024];
	struct st_doc d;
	st_init(&d);
	struct tl_checkpoint ck;
	struct tk_mapped map = {0};
	int torch = looks_torch(o.in);
	if (torch) {
		int rc = tl_read_file(&ck, o.in, o.load_flags, err, sizeof err);
		if (rc == -2)
			die_io("%s", err);
		if (rc < 0)
			die_data("%s", err);
		tk_import_torch_doc(&d, &ck);
	} else if (tk_map_file(o.in, &map, &d, what, sizeof what) < 0) {
		if (access(o.in, R_OK) != 0)
			die_io("cannot read %s:", o.in);
		die_data("%s is neither a PyTorch checkpoint nor a tk weight "
			 "file (%s)", o.in, what);
	}
	struct tk_import_options io = {o.have_arch ? &o.arch : NULL, o.classes};
	struct tk_import_info info;
	struct tk_model m;
	if (tk_import_doc(&m, &d, &io, &info, what, sizeof what) < 0)
		die_data("%s: %s", o.in, what);
	if (m.arch.backbone_only && o.classes > 0)
		die_usage("--classes %d: %s is a %s, a backbone without a "
			  "classifier (tk-init --classes adds one)",
			  o.classes, o.in, info.kind);

	/* The model, and where it came from. */
	struct st_doc out;
	st_init(&out);
	tk_model_to_doc(&m, &out);
	const char *base = strrchr(o.in, '/');
	st_meta_set(&out, "source", base ? base + 1 : o.in);
	/* A safetensors file without tk's metadata holds some other
	 * program's state_dict (torchvision names, say). */
	const char *format = torch ? NULL : tk_meta_format(&d);
	if (torch)
		st_meta_setf(&out, "source_format", "torch %s", ck.format);
	else
		st_meta_set(&out, "source_format", format ? "tk" : "safetensors");
	if (torch && ck.epoch >= 0)
		st_meta_setf(&out, "epoch", "%ld", ck.epoch);
	else if (!torch && st_meta_get(&d, "epoch"))
		st_meta_set(&out, "epoch", st_meta_get(&d, "epoch"));
	struct tk_outfile of;
	FILE *fp = tk_outfile_open(&of, o.out);
	if (st_write(fp, &out) < 0)
		die_io("writing %s:", o.out);
	tk_outfile_commit(&of);

	char desc[256], from[512];
	tk_arch_describe(&m.arch, desc, sizeof desc);
	snprintf(from, sizeof from, "a %s %s", info.kind,
		 torch || !format ? "state_dict" : format);
	if (!torch && !format)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 " (safetensors)");
	if (torch)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 " (torch %s format%s%s%s)", ck.format,
			 ck.wrapper ? ", under '" : "",
			 ck.wrapper ? ck.wrapper : "", ck.wrapper ? "'" : "");
	if (torch && ck.epoch >= 0)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 ", epoch %ld", ck.epoch);
	if (info.prefixes)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 ", 'module.' removed from %d names", info.prefixes);
	if (info.compiled)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 ", '_orig_mod.' removed from %d names", info.compiled);
	if (info.dropped)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 ", %d tensor%s left out", info.dropped,
			 info.dropped == 1 ? "" : "s");
	if (info.state)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 ", %d optimizer state tensors left out", info.state);
	if (info.counters_added)
		snprintf(from + strlen(from), sizeof from - strlen(from),
			 ", %d absent BatchNorm counters set to 0",
			 info.counters_added);
	tk_note("%s: %s; from %s", o.out, desc, from);
	st_free(&out);
	tk_model_free(&m);
	st_free(&d);
	if (torch)
		tl_free(&ck);
	else
		tk_unmap_file(&map);
	return 0;
}
