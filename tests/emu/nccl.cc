// nccl.cc (tk's CUDA emulator) - NCCL's all-reduce and broadcast between
// processes on one machine, through files: the unique id is a fresh
// folder's path; the n-th collective of rank r writes its buffer to
// "n.r" in it (whole, by rename), reads every rank's once all are there,
// and combines them in rank order, so every rank gets the same bits.
// Rank r removes its "n-1.r" once all of "n.*" are there (everyone has
// read n-1 by then).  A collective whose size or kind differs between
// ranks is an error, as a hang would be on NCCL.  Collectives are queued
// on their stream.  Slow, simple and enough for the tests' small models.
// At ncclCommInitRank the ranks introduce themselves (collective 1: each
// rank's host and device), and two ranks on one host's one device are
// refused as NCCL refuses them; the host is NCCL_HOSTID where set, as
// NCCL's host hash is, else the host name.  TK_EMU_NCCL_VERSION (as
// ncclGetVersion gives it, 23007 for 2.30.7; unset, 0, before 2.30) says
// which NCCL's refusal: before 2.30 "Duplicate GPU detected", always;
// from 2.30 on "Multiple Ranks are using the same GPU", unless
// NCCL_MULTI_RANK_GPU_ENABLE=1 lets them share it.
// A collective that fails when it runs (a file that cannot be written)
// does what NCCL's do (2.19 on): the communicator keeps the error for
// ncclCommGetAsyncError, its next call returns it, and the stream waits
// forever.  TK_EMU_NCCL_FAIL=N makes a rank's N-th collective
// (ncclCommInitRank's is the first) fail so, as when the network between
// machines fails.  Ranks that disagree, which NCCL does not check (they
// hang), stop the emulator with a message.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "nccl.h"

struct ncclComm {
	std::string dir;
	int nranks, rank;
	long gen;
	std::atomic<int> async; // the ncclResult_t put aside
};

namespace {

char last_error[512];

ncclResult_t fail(ncclResult_t r, const char *fmt, const char *what)
{
	snprintf(last_error, sizeof last_error, fmt, what);
	return r;
}

struct header {
	char magic[8];
	int kind; // 0 all-reduce, 1 broadcast (from 'root'), 3 peers, 4 done
	int type, op, root;
	size_t count;
};

// What collective 1 tells of a rank.
struct peer {
	char host[256];
	int device;
};

size_t type_size(ncclDataType_t t)
{
	switch (t) {
	case ncclInt8:
	case ncclUint8:
		return 1;
	case ncclFloat16:
	case ncclBfloat16:
		return 2;
	case ncclInt32:
	case ncclUint32:
	case ncclFloat32:
		return 4;
	default:
		return 8;
	}
}

int emulated_version()
{
	const char *v = getenv("TK_EMU_NCCL_VERSION");
	return v ? atoi(v) : 0;
}

// Whether NCCL lets ranks share a device, and if not, why not.
bool refuse_shared(int rank, int other, int device)
{
	if (emulated_version() < 23000) {
		snprintf(last_error, sizeof last_error,
			 "Duplicate GPU detected : rank %d and rank %d both "
			 "on CUDA device %d",
			 rank, other, device);
		return true;
	}
	const char *on = getenv("NCCL_MULTI_RANK_GPU_ENABLE");
	if (on && atoi(on))
		return false;
	snprintf(last_error, sizeof last_error, "%s",
		 "Multiple Ranks are using the same GPU/Partition. Set "
		 "NCCL_MULTI_RANK_GPU_ENABLE=1 to enable this configuration.");
	return true;
}

std::string name(const ncclComm *c, long gen, int rank)
{
	return c->dir + "/" + std::to_string(gen) + "." + std::to_string(rank);
}

bool write_all(const std::string &path, const header &h, const void *buf,
	       size_t bytes)
{
	std::string tmp = path + ".tmp";
	FILE *f = fopen(tmp.c_str(), "wb");
	if (!f)
		return false;
	bool ok = fwrite(&h, sizeof h, 1, f) == 1 &&
		  (!bytes || fwrite(buf, bytes, 1, f) == 1);
	ok = fclose(f) == 0 && ok;
	return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

// Rank r's file of this collective: its header, then bytes into buf.
bool read_one(const ncclComm *c, int r, header *h, void *buf, size_t bytes)
{
	FILE *f = fopen(name(c, c->gen, r).c_str(), "rb");
	bool ok = f && fread(h, sizeof *h, 1, f) == 1 &&
		  (!bytes || fread(buf, bytes, 1, f) == 1);
	if (f)
		fclose(f);
	return ok;
}

// Waits for every rank's file of this collective (polling).
ncclResult_t wait_all(const ncclComm *c)
{
	for (int r = 0; r < c->nranks; r++) {
		std::string p = name(c, c->gen, r);
		for (long waited = 0; access(p.c_str(), F_OK) != 0; waited++) {
			if (waited > 6000000) // 10 minutes of 100 us
				return fail(ncclSystemError, "no peer wrote %s",
					    p.c_str());
			usleep(100);
		}
	}
	return ncclSuccess;
}

template <typename T> void combine(T *acc, const T *x, size_t n, ncclRedOp_t op)
{
	for (size_t i = 0; i < n; i++)
		acc[i] = op == ncclSum	 ? acc[i] + x[i]
			 : op == ncclProd ? acc[i] * x[i]
			 : op == ncclMax  ? (x[i] > acc[i] ? x[i] : acc[i])
					  : (x[i] < acc[i] ? x[i] : acc[i]);
}

ncclResult_t collective(ncclComm *c, int kind, const void *send, void *recv,
			size_t count, ncclDataType_t type, ncclRedOp_t op,
			int root)
{
	size_t bytes = count * type_size(type);
	header h = {"tkemu", kind, (int)type, (int)op, root, count};
	if (c->nranks == 1) {
		if (recv != send)
			memmove(recv, send, bytes);
		return ncclSuccess;
	}
	c->gen++;
	const char *f = getenv("TK_EMU_NCCL_FAIL");
	if (f && atol(f) == c->gen)
		return fail(ncclRemoteError, "%s",
			    "NET/Socket : socket progress error (emulated: "
			    "TK_EMU_NCCL_FAIL)");
	if (!write_all(name(c, c->gen, c->rank), h, send, bytes))
		return fail(ncclSystemError, "cannot write %s",
			    name(c, c->gen, c->rank).c_str());
	ncclResult_t e = wait_all(c);
	if (e != ncclSuccess)
		return e;
	if (c->gen > 1)
		unlink(name(c, c->gen - 1, c->rank).c_str());
	std::vector<char> acc(bytes), x(bytes);
	for (int r = 0; r < c->nranks; r++) {
		if (kind == 1 && r != root)
			continue;
		std::string p = name(c, c->gen, r);
		header g;
		if (!read_one(c, r, &g, x.data(), bytes))
			return fail(ncclSystemError, "cannot read %s", p.c_str());
		if (memcmp(&g, &h, sizeof h))
			return fail(ncclInvalidUsage,
				    "ranks disagree on collective %s (kind, type, "
				    "count or root)",
				    p.c_str());
		if (kind == 1 || r == 0)
			acc = x;
		else if (type == ncclFloat32)
			combine((float *)acc.data(), (const float *)x.data(), count, op);
		else
			combine((double *)acc.data(), (const double *)x.data(), count, op);
	}
	memcpy(recv, acc.data(), bytes);
	return ncclSuccess;
}

// The collective queued on the stream, as NCCL's are; arguments it
// would refuse are refused at the call.  A failure when it runs (a file
// that cannot be written, TK_EMU_NCCL_FAIL) is kept for
// ncclCommGetAsyncError and returned by the next call, and the stream
// waits forever, as NCCL's kernels wait on.
ncclResult_t queue(ncclComm *c, int kind, const void *send, void *recv,
		   size_t count, ncclDataType_t type, ncclRedOp_t op, int root,
		   cudaStream_t stream)
{
	if (c->nranks > 1 && type != ncclFloat32 && type != ncclFloat64)
		return fail(ncclInvalidArgument, "%s", "emulated for float and double only");
	// an error kept aside is what NCCL's next call returns (2.19 on)
	ncclResult_t kept = (ncclResult_t)c->async.load();
	if (kept != ncclSuccess)
		return kept;
	tk_emu::enqueue(stream, [=]() {
		ncclResult_t e = (ncclResult_t)c->async.load();
		if (e == ncclSuccess)
			e = collective(c, kind, send, recv, count, type, op, root);
		if (e == ncclSuccess)
			return;
		// ranks that disagree: NCCL checks nothing of the kind (its
		// ranks hang or sum wrongly); the emulator says so and stops
		if (e == ncclInvalidUsage) {
			fprintf(stderr, "tk CUDA emulator: NCCL: %s\n", last_error);
			exit(3);
		}
		c->async.store(e);
		for (;;)
			pause();
	});
	return ncclSuccess;
}

// Collective 1: every rank's host and device, read by all; a rank whose
// host and device another rank has too is refused, as NCCL refuses it.
ncclResult_t introduce(ncclComm *c)
{
	peer me = {};
	const char *host = getenv("NCCL_HOSTID");
	if (host && *host)
		snprintf(me.host, sizeof me.host, "%s", host);
	else
		gethostname(me.host, sizeof me.host - 1);
	cudaGetDevice(&me.device);
	c->gen++;
	header h = {"tkemu", 3, 0, 0, 0, sizeof me};
	if (!write_all(name(c, c->gen, c->rank), h, &me, sizeof me))
		return fail(ncclSystemError, "cannot write %s",
			    name(c, c->gen, c->rank).c_str());
	ncclResult_t e = wait_all(c);
	for (int r = 0; e == ncclSuccess && r < c->nranks; r++) {
		header g;
		peer other;
		if (!read_one(c, r, &g, &other, sizeof other) || memcmp(&g, &h, sizeof h))
			return fail(ncclSystemError, "cannot read %s",
				    name(c, c->gen, r).c_str());
		if (r != c->rank && other.device == me.device &&
		    !strcmp(other.host, me.host) &&
		    refuse_shared(c->rank, r, me.device))
			return ncclInvalidUsage;
	}
	return e;
}

} // namespace

extern "C" {

ncclResult_t ncclGetVersion(int *version)
{
	*version = emulated_version();
	return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
	const char *t = getenv("TMPDIR");
	char dir[NCCL_UNIQUE_ID_BYTES];
	int n = snprintf(dir, sizeof dir, "%s/tk-emu-nccl.XXXXXX",
			 t && *t ? t : "/tmp");
	if (n < 0 || n >= (int)sizeof dir)
		return fail(ncclInvalidUsage, "%s", "TMPDIR too long for an id");
	if (!mkdtemp(dir))
		return fail(ncclSystemError, "mkdtemp: %s", strerror(errno));
	memset(id, 0, sizeof *id);
	memcpy(id->internal, dir, strlen(dir));
	return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id,
			      int rank)
{
	if (nranks < 1 || rank < 0 || rank >= nranks)
		return fail(ncclInvalidArgument, "%s", "bad rank or world size");
	std::string dir(id.internal, strnlen(id.internal, sizeof id.internal));
	if (nranks > 1 && access(dir.c_str(), W_OK) != 0)
		return fail(ncclInvalidArgument, "unique id names no folder: %s",
			    dir.c_str());
	ncclComm *c = new ncclComm{dir, nranks, rank, 0, {ncclSuccess}};
	ncclResult_t e = nranks > 1 ? introduce(c) : ncclSuccess;
	if (e != ncclSuccess) {
		delete c;
		return e;
	}
	*comm = c;
	return ncclSuccess;
}

// The collectives still queued run first, as NCCL finishes them; then
// the rank leaves "done.r" and returns without waiting for the others
// (tk skips the teardown when a rank is lost, since a recent NCCL may wait
// for it there; the emulator does not model that wait).  The rank that
// finds every "done" file there, all reading being over, removes the
// folder.
ncclResult_t ncclCommDestroy(ncclComm_t c)
{
	ncclResult_t e = ncclSuccess;
	cudaDeviceSynchronize();
	if (c->nranks > 1) {
		header h = {"tkemu", 4, 0, 0, 0, 0};
		std::string done = c->dir + "/done.";
		if (!write_all(done + std::to_string(c->rank), h, nullptr, 0)) {
			e = fail(ncclSystemError, "cannot write in %s", c->dir.c_str());
		} else {
			bool all = true;
			for (int r = 0; r < c->nranks; r++)
				all = all && access((done + std::to_string(r)).c_str(), F_OK) == 0;
			for (int r = 0; all && r < c->nranks; r++) {
				unlink(name(c, c->gen, r).c_str());
				unlink((done + std::to_string(r)).c_str());
			}
			if (all)
				rmdir(c->dir.c_str());
		}
	} else if (!c->dir.empty()) {
		rmdir(c->dir.c_str()); // the id's folder, which one rank never used
	}
	delete c;
	return e;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t c, ncclResult_t *async)
{
	*async = (ncclResult_t)c->async.load();
	return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count,
			   ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
			   cudaStream_t stream)
{
	return queue(comm, 0, send, recv, count, type, op, 0, stream);
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count,
			   ncclDataType_t type, int root, ncclComm_t comm,
			   cudaStream_t stream)
{
	if (root < 0 || root >= comm->nranks)
		return fail(ncclInvalidArgument, "%s", "bad root");
	return queue(comm, 1, send, recv, count, type, ncclSum, root, stream);
}

const char *ncclGetErrorString(ncclResult_t r)
{
	switch (r) {
	case ncclSuccess:
		return "no error";
	case ncclUnhandledCudaError:
		return "unhandled cuda error";
	case ncclSystemError:
		return "unhandled system error";
	case ncclInternalError:
		return "internal error";
	case ncclInvalidArgument:
		return "invalid argument";
	case ncclInvalidUsage:
		return "invalid usage";
	case ncclRemoteError:
		return "remote process exited or there was a network error";
	case ncclInProgress:
		return "NCCL operation in progress";
	}
	return "unknown result";
}

const char *ncclGetLastError(ncclComm_t)
{
	return last_error;
}

} // extern "C"
