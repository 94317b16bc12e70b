/* torchload.h - PyTorch checkpoints (torch.save) read without PyTorch and
 * without running anything: the zip format of torch >= 1.6
 * (<name>/data.pkl and <name>/data/<key>, read with libarchive, which
 * checks each member's size and CRC-32) and the
 * legacy format (magic, protocol and sys-info pickles, the object pickle,
 * the list of storage keys, then each storage as an 8-byte element count
 * and its bytes).
 *
 * The object pickle goes through the restricted unpickler with an
 * allow-list of exactly what a state_dict needs: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 (and _rebuild_tensor of old files),
 * torch._utils._rebuild_parameter, and the torch.*Storage types of the
 * dtypes below.  Any other global (os.system, a model class, ...) is
 * refused with its name.
 *
 * The state_dict is the top-level dict when its values are tensors, or the
 * dict under "state_dict" (the reference's {'epoch', 'state_dict',
 * 'optim'}), "model_state_dict" or "model".  Only the storages its tensors
 * use are read.  Tensors come out contiguous in C order, whatever their
 * storage offset and strides; several may share a storage. */
#ifndef TK_TORCHLOAD_H
#define TK_TORCHLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "stream.h"

struct tl_tensor {
	char *name; /* the state_dict key, as saved */
	enum st_dtype dtype; /* F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL */
	int rank;
	int64_t shape[ST_MAX_RANK];
	size_t nbytes;
	const void *data; /* contiguous; owned by the checkpoint; not aligned
			     beyond a byte (read with memcpy or st_get) */
};

struct tl_checkpoint {
	struct tl_tensor *t;
	int n;
	const char *format;  /* "zip" or "legacy" */
	const char *wrapper; /* the key the state_dict was under; NULL: bare */
	long epoch;          /* the wrapper's "epoch"; -1 when absent */
	/* What the tensors point into; freed by tl_free. */
	void **bufs;
	int nbufs;
	struct tk_mapped map; /* the file */
};

/* tl_read_* flags. */
enum {
	/* Do not check the zip members' CRC-32s (which torch.load never
	 * checks, and torch.save can leave 0: set_crc32_options(False)). */
	TL_NO_CRC = 1,
};

/* Read a checkpoint from memory.  Returns 0, or -1 with a one-line message
 * in err (a malformed, truncated, damaged or refused file).  buf must stay
 * valid until tl_free: tensors point into it where they can (a zip's
 * stored members, contiguous tensors). */
int tl_read_buffer(struct tl_checkpoint *c, const void *buf, size_t len,
		   unsigned flags, char *err, size_t errlen);
/* Read a checkpoint file (mapped).  Returns 0, -1 for bad data, -2 when
 * the file cannot be opened or mapped; the message names the file. */
int tl_read_file(struct tl_checkpoint *c, const char *path, unsigned flags,
		 char *err, size_t errlen);
void tl_free(struct tl_checkpoint *c);

/* Whether the first bytes of a file look like a torch checkpoint (zip or
 * legacy pickle). */
int tl_is_torch(const void *buf, size_t len);

#endif
