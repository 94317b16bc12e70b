/* tk-init - a fresh model, initialised as the reference initialises
 * Token; the backbone from an ImageNet ResNet when one is given. */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/init.h"
#include "common/model.h"
#include "common/tk.h"

static const char usage[] =
    "usage: tk-init --arch ARCH [--classes C] [--backbone FILE] [--seed S] -o FILE\n"
    "A new model file, initialised as the reference Token model.  See tk-init(1).\n"
    "  -a, --arch ARCH      r50, r101, or with overrides like\n"
    "                       r50:width=8,mid_dim=32,out_dim=32,heads=4\n"
    "  -c, --classes C      ArcFace classes (default: the architecture's, 0:\n"
    "                       no classifier)\n"
    "  -b, --backbone FILE  the backbone's weights from FILE (tk-import of a\n"
    "                       torchvision ResNet, or any tk model of that depth)\n"
    "  -s, --seed S         random seed (default 0)\n"
    "  -o, --output FILE    the model file to write\n"
    "  -q, --quiet          only errors on stderr\n"
    "      --progress       accepted by every tool; nothing to show here\n"
    "  -h, --help           this text\n"
    "      --version        version, and whether CUDA support is built in\n";

struct options {
	struct tk_arch arch;
	const char *backbone, *output;
	uint64_t seed;
};

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"arch", required_argument, 0, 'a'},
	    {"classes", required_argument, 0, 'c'},
	    {"backbone", required_argument, 0, 'b'},
	    {"seed", required_argument, 0, 's'},
	    {"output", required_argument, 0, 'o'},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	const char *arch = NULL;
	long classes = -1;
	int c;
	memset(o, 0, sizeof *o);
	while ((c = tk_getopt(argc, argv, "a:c:b:s:o:qh", longopts)) != -1) {
		switch (c) {
		case 'a': arch = optarg; break;
		case 'c': classes = tk_parse_long("--classes", optarg, 0, 1 << 24); break;
		case 'b': o->backbone = optarg; break;
		case 's':
			o->seed = (uint64_t)tk_parse_long("--seed", optarg, 0, LONG_MAX);
			break;
		case 'o': o->output = optarg; break;
		default: tk_common_option(c, usage);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!arch)
		die_usage("--arch is required (r50, r101, ...)");
	if (!o->output)
		die_usage("-o FILE is required");
	char err[256];
	if (tk_arch_parse(&o->arch, arch, err, sizeof err) < 0)
		die_usage("--arch: %s", err);
	if (classes >= 0)
		o->arch.classes = (int)classes;
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	struct tk_model m;
	tk_model_init(&m, &o.arch);
	if (o.backbone) {
		char err[1024];
		if (access(o.backbone, R_OK) != 0)
			die_io("cannot read %s:", o.backbone);
		if (tk_model_copy_backbone(&m, o.backbone, err, sizeof err) < 0)
			die_data("--backbone %s", err);
	}
	tk_model_init_weights(&m, o.seed, o.backbone != NULL);
	tk_model_save(&m, o.output);
	char desc[256];
	tk_arch_describe(&m.arch, desc, sizeof desc);
	tk_note("%s: %s", o.output, desc);
	tk_model_free(&m);
	return 0;
}
