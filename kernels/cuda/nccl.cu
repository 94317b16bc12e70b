// nccl.cu - NCCL for data-parallel training: the communicator, the
// all-reduces, and the gradient buckets reduced while the backward runs.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <nccl.h>

#include "kernels/cuda/common.cuh"

// common/tk.h's tk_die_now (tk.h itself is C11).
extern "C" [[noreturn]] void tk_die_now(int status, const char *fmt, ...);

namespace {

int nrank; // this process's rank, for messages

void nccl_check(ncclResult_t e, const char *call, const char *file, int line)
{
	if (e == ncclSuccess)
		return;
	char why[512];
	// An error NCCL kept aside (NCCL 2.19 on) is what its next call
	// returns: said as the watch says it, ending the same way (_exit: a
	// kernel of NCCL's may still be waiting on the device).
	if (tk_nccl_async_error(why, sizeof why))
		tk_die_now(3, "data-parallel run: rank %d: %s", nrank, why);
	snprintf(why, sizeof why, "%s (%s)", ncclGetErrorString(e),
		 ncclGetLastError(nullptr));
	tk_cuda_fail("NCCL", call, why, file, line);
}

// The length of s's first line without its full stop, for quoting it
// inside a sentence of our own.
int sentence_len(const char *s)
{
	size_t n = strcspn(s, "\n");
	return (int)(n && s[n - 1] == '.' ? n - 1 : n);
}

} // namespace

#define NCCL_CHECK(call) nccl_check((call), #call, __FILE__, __LINE__)

static_assert(sizeof(ncclUniqueId) == TK_NCCL_ID_BYTES, "NCCL id size");

namespace {
ncclComm_t comm = nullptr;
int nworld = 1;
// Held while the watch's thread asks the communicator for its errors
// (tk_nccl_async_error), and while comm is cleared before its teardown.
std::mutex asking;
} // namespace

extern "C" {

void tk_nccl_unique_id(void *id)
{
	ncclUniqueId u;
	NCCL_CHECK(ncclGetUniqueId(&u));
	memcpy(id, &u, sizeof u);
}

void tk_nccl_init(const void *id, int world, int rank)
{
	if (tk_cuda_current() < 0)
		tk_cuda_init(0);
	ncclUniqueId u;
	memcpy(&u, id, sizeof u);
	ncclResult_t e = ncclCommInitRank(&comm, world, u, rank);
	const char *why = e == ncclSuccess ? "" : ncclGetLastError(nullptr);
	// Ranks sharing a GPU: NCCL before 2.30 says "Duplicate GPU
	// detected", 2.30 and later "Multiple Ranks are using the same GPU".
	if (e == ncclInvalidUsage &&
	    (strstr(why, "Duplicate GPU") || strstr(why, "same GPU")))
		tk_die(3, "NCCL: rank %d: %.*s: NCCL takes one rank a GPU; "
			  "give each rank its own (LOCAL_RANK, or --device "
			  "cuda:N), or, to test several ranks on one GPU, a "
			  "different NCCL_HOSTID each",
		       rank, sentence_len(why), why);
	nccl_check(e, "ncclCommInitRank", __FILE__, __LINE__);
	nworld = world;
	nrank = rank;
}

void tk_nccl_destroy(void)
{
	ncclComm_t c;
	{
		std::lock_guard<std::mutex> hold(asking);
		c = comm;
		comm = nullptr;
	}
	if (c)
		NCCL_CHECK(ncclCommDestroy(c));
	nworld = 1;
}

// NCCL puts a failure of its own work (a network link lost between
// machines, a peer gone) aside as the communicator's asynchronous error,
// and its kernels wait on: the stream never finishes.  The watch's
// thread (common/dist.c) asks here once a second and stops the rank.
int tk_nccl_async_error(char *why, size_t n)
{
	std::lock_guard<std::mutex> hold(asking);
	if (!comm)
		return 0;
	ncclResult_t e, a = ncclSuccess;
	e = ncclCommGetAsyncError(comm, &a);
	if (e == ncclSuccess && (a == ncclSuccess || a == ncclInProgress))
		return 0;
	if (e != ncclSuccess)
		a = e;
	// (NCCL's last message: one buffer for the process, which may be
	// of another matter, so only quoted as such)
	const char *last = ncclGetLastError(comm);
	snprintf(why, n, "NCCL: %s%s%.*s%s; the rank's collectives cannot "
			 "finish, so it stops", ncclGetErrorString(a),
		 *last ? " (NCCL's last message: " : "", sentence_len(last), last,
		 *last ? ")" : "");
	return 1;
}

int tk_nccl_world(void)
{
	return nworld;
}

void tk_nccl_allreduce(float *buf, size_t n, tk_stream s)
{
	if (comm && n)
		NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, comm, s));
}

void tk_nccl_allreduce_f64(double *buf, size_t n, tk_stream s)
{
	if (comm && n)
		NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat64, ncclSum, comm, s));
}

} // extern "C"

struct tk_ddp {
	float *grads;
	size_t n, bucket; // floats
	std::vector<size_t> ready; // final floats per bucket
	std::vector<char> sent;
	cudaStream_t comm_stream;
	cudaEvent_t ev;
	long early, late; // buckets sent while the backward ran, at its end
};

namespace {

void launch(tk_ddp *d, size_t b, cudaStream_t compute, bool at_end)
{
	size_t off = b * d->bucket;
	size_t len = off + d->bucket < d->n ? d->bucket : d->n - off;
	// The comm stream starts once the compute stream has produced this
	// bucket's gradients.
	CUDA_CHECK(cudaEventRecord(d->ev, compute));
	CUDA_CHECK(cudaStreamWaitEvent(d->comm_stream, d->ev, 0));
	tk_nccl_allreduce(d->grads + off, len, d->comm_stream);
	d->sent[b] = 1;
	(at_end ? d->late : d->early)++;
}

} // namespace

extern "C" {

struct tk_ddp *tk_ddp_create(float *grads, size_t n, size_t bucket_bytes)
{
	tk_ddp *d = new tk_ddp;
	d->grads = grads;
	d->n = n;
	d->bucket = bucket_bytes / sizeof(float);
	if (d->bucket == 0)
		d->bucket = n ? n : 1;
	size_t nb = n ? (n + d->bucket - 1) / d->bucket : 0;
	d->ready.assign(nb, 0);
	d->sent.assign(nb, 0);
	d->early = d->late = 0;
	CUDA_CHECK(cudaStreamCreateWithFlags(&d->comm_stream, cudaStreamNonBlocking));
	CUDA_CHECK(cudaEventCreateWithFlags(&d->ev, cudaEventDisableTiming));
	return d;
}

void tk_ddp_ready(struct tk_ddp *d, size_t off, size_t n, tk_stream compute)
{
	if (!comm)
		return;
	while (n) {
		size_t b = off / d->bucket;
		size_t end = (b + 1) * d->bucket < d->n ? (b + 1) * d->bucket : d->n;
		size_t take = end - off < n ? end - off : n;
		d->ready[b] += take;
		// A float marked twice would send a bucket before its last
		// floats are final.
		if (d->ready[b] > end - b * d->bucket)
			tk_die(3, "tk_ddp_ready: floats of bucket %zu marked "
				  "final twice", b);
		if (d->ready[b] == end - b * d->bucket && !d->sent[b])
			launch(d, b, compute, false);
		off += take, n -= take;
	}
}

void tk_ddp_finish(struct tk_ddp *d, tk_stream compute)
{
	if (comm) {
		for (size_t b = 0; b < d->sent.size(); b++)
			if (!d->sent[b])
				launch(d, b, compute, true);
		CUDA_CHECK(cudaEventRecord(d->ev, d->comm_stream));
		CUDA_CHECK(cudaStreamWaitEvent(compute, d->ev, 0));
	}
	std::fill(d->ready.begin(), d->ready.end(), 0);
	std::fill(d->sent.begin(), d->sent.end(), 0);
}

void tk_ddp_counts(const struct tk_ddp *d, long *early, long *late)
{
	*early = d->early;
	*late = d->late;
}

void tk_ddp_free(struct tk_ddp *d)
{
	if (!d)
		return;
	CUDA_CHECK(cudaEventDestroy(d->ev));
	CUDA_CHECK(cudaStreamDestroy(d->comm_stream));
	delete d;
}

} // extern "C"
