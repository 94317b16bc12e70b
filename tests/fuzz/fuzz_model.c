/* fuzz_model - libFuzzer target for what a model file or checkpoint means
 * beyond its safetensors syntax: any bytes as a document, then the
 * architecture from its metadata, its tensors against that architecture's
 * table (tk_model_from_doc, as tk-extract and tk-train load a model), and
 * the training state and momentum tensors of a checkpoint
 * (tk_checkpoint_from_doc, as tk-train --resume loads one).  An error
 * must say what.  The seeds, a model and a checkpoint of the smallest
 * architecture (tests/fuzz/corpus/model), were made by
 *   a=r50:width=1,mid_dim=1,out_dim=1,heads=1,tokens=1,encoder_layers=0
 *   tk-init -q -a $a,decoder_layers=1 -c 2 -o model.st
 *   printf '%s\t%s\t%s\n' tests/fuzz/corpus/jpeg/baseline.jpg a 0 \
 *       tests/fuzz/corpus/jpeg/444.jpg b 1 | tk-decode -q |
 *       tk-augment -q --size 32 | tk-train -q -m model.st -o ckpt.st \
 *       --batch 2 --epoch-size 2 --epochs 1 --warmup-epochs 0
 *   make fuzz && build/fuzz/fuzz_model -max_total_time=600 \
 *       -dict=tests/fuzz/json.dict NEW tests/fuzz/corpus/model */
#include "common/checkpoint.h"
#include "common/model.h"
#include "fuzz_file.h"

/* An error says what: a message, never empty (a name from the file may
 * hold a line break: tk_die's output escapes it). */
static void said(const char *err)
{
	if (!err[0])
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_doc d;
	int parsed;
	uint8_t *buf = fuzz_doc(data, size, &d, &parsed);
	if (parsed) {
		char err[1024];
		struct tk_model m;
		err[0] = 0;
		if (tk_model_from_doc(&m, &d, err, sizeof err) == 0)
			tk_model_free(&m);
		else
			said(err);
		float *momentum;
		struct tk_train_state st;
		err[0] = 0;
		if (tk_checkpoint_from_doc(&m, &momentum, &st, &d, err, sizeof err) == 0) {
			free(momentum);
			tk_model_free(&m);
		} else {
			said(err);
		}
	}
	st_free(&d);
	free(buf);
	return 0;
}
