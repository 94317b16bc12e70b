// runtime.cc (tk's CUDA emulator) - device memory, streams, events and
// kernel launches on the CPU (include/cuda_runtime.h says what is
// emulated and what is not).
//
// Launches: every thread of a block is a fiber on a stack of its own.  A
// fiber runs until it finishes or reaches __syncthreads or a warp
// shuffle; when every live thread of the block (or of the warp) waits
// there, they go on.  Fibers switch with _setjmp/_longjmp and are entered
// once by setcontext, so a switch costs no system call.  A kernel that
// never synchronised on its first launch is run later as a plain loop
// over its threads (most are element-wise and launched with millions of
// threads); one that then synchronises stops the program with a message.
//
// Checks that a GPU would make, or that catch the bugs this exists for:
// launch configurations (cudaErrorInvalidConfiguration), copies and
// memsets that leave a device allocation or point at host memory where
// the kind says device (cudaErrorInvalidValue), frees of what cudaMalloc
// did not return, a memory limit (TK_EMU_MEMORY, default 16G, so that the
// callers' out-of-memory paths can be tried), devices (TK_EMU_DEVICES,
// default 1), and deadlocks (some threads at __syncthreads, the rest
// finished or at a shuffle).  TK_EMU_ORDER (below) changes the order in
// which blocks and threads run, to bring out races; TK_EMU_STREAMS when
// the work queued on streams runs, to bring out forgotten waits.
#include <cerrno>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>
#include <ucontext.h>
#include <unistd.h>

#include "cuda_runtime.h"

// Under AddressSanitizer (make SANITIZE=1 EMU=1) every switch between
// fibers is told to ASan as one, so that it follows the stacks; then a
// kernel that reads or writes past its arrays is stopped at its line, as
// compute-sanitizer would.  The slack cudaMalloc rounds up to is poisoned
// too.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define switch_start __sanitizer_start_switch_fiber
#define switch_finish __sanitizer_finish_switch_fiber
#else
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define switch_start(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define switch_finish(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

namespace {

[[noreturn]] void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("tk CUDA emulator: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(3);
}

// As CUDA keeps it: one per host thread.
thread_local cudaError_t last_error = cudaSuccess;
// Host threads may call in at once (a reader thread uploading while the
// main one computes): one lock over the allocation maps and the launches,
// taken again by the same thread from inside a kernel (CUB's checks).
std::recursive_mutex big;
#define LOCK std::lock_guard<std::recursive_mutex> lock_(big)

// TK_EMU_STATS=1: at exit, how often the program did what costs on a GPU
// beyond its arithmetic: launches, waits for the device, copies each way,
// allocations (a steady state should have none), cuDNN's algorithm
// searches and heuristic answers, on stderr.
struct stats_t {
	long launches, syncs, mallocs, frees, memsets;
	long copies[4]; // by cudaMemcpyKind, the direction the copy took
	double bytes[4];
	long searches, heuristic; // tk_emu::count_search
} stats;

void print_stats()
{
	static const char *kind[] = {"host-host", "host-device", "device-host",
				     "device-device"};
	fprintf(stderr,
		"tk CUDA emulator: %ld launches, %ld waits for the device, "
		"%ld cudaMalloc, %ld cudaFree, %ld memsets",
		stats.launches, stats.syncs, stats.mallocs, stats.frees,
		stats.memsets);
	for (int k = 0; k < 4; k++)
		if (stats.copies[k])
			fprintf(stderr, ", %ld copies %s (%.1f MB)", stats.copies[k],
				kind[k], stats.bytes[k] / 1e6);
	if (stats.searches || stats.heuristic)
		fprintf(stderr, ", %ld cuDNN algorithm searches, %ld heuristic answers",
			stats.searches, stats.heuristic);
	fputc('\n', stderr);
}

struct stats_at_exit {
	stats_at_exit()
	{
		const char *e = getenv("TK_EMU_STATS");
		if (e && *e && strcmp(e, "0"))
			atexit(print_stats);
	}
} stats_init;

int current_device;

// TK_EMU_DEVICES=n: as many devices (each this process's CPU; a process
// uses one), so that tests of one rank per device can run.
int device_count()
{
	const char *e = getenv("TK_EMU_DEVICES");
	int n = e && *e ? atoi(e) : 1;
	return n < 1 ? 1 : n > 64 ? 64 : n;
}

cudaError_t fail(cudaError_t e)
{
	last_error = e;
	return e;
}

// ---- memory ----

std::map<uintptr_t, size_t> device_blocks, host_blocks; // start -> bytes
size_t device_used;

size_t memory_limit()
{
	static size_t limit;
	if (!limit) {
		limit = (size_t)16 << 30;
		const char *e = getenv("TK_EMU_MEMORY");
		if (e && *e) {
			char *end;
			double v = strtod(e, &end);
			int sh = *end == 'K' || *end == 'k'   ? 10
				 : *end == 'M' || *end == 'm' ? 20
				 : *end == 'G' || *end == 'g' ? 30
							      : 0;
			limit = (size_t)(v * (double)((size_t)1 << sh));
		}
	}
	return limit;
}

// The block of 'blocks' that holds [p, p + n), or nullptr.
const std::pair<const uintptr_t, size_t> *
find_block(const std::map<uintptr_t, size_t> &blocks, const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p;
	auto it = blocks.upper_bound(a);
	if (it == blocks.begin())
		return nullptr;
	--it;
	if (a - it->first > it->second || n > it->second - (a - it->first))
		return nullptr;
	return &*it;
}

bool on_device(const void *p, size_t n)
{
	return find_block(device_blocks, p, n) != nullptr;
}

// Where a copy of kind k may read and write.
cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind k)
{
	if (n == 0)
		return cudaSuccess;
	bool dd = on_device(dst, n), sd = on_device(src, n);
	bool ok = k == cudaMemcpyHostToDevice	? dd && !sd
		  : k == cudaMemcpyDeviceToHost	? !dd && sd
		  : k == cudaMemcpyDeviceToDevice ? dd && sd
		  : k == cudaMemcpyHostToHost	? !dd && !sd
						: true;
	// cudaMemcpyDefault: device addresses must lie wholly inside their
	// allocation (a pointer into one with n past its end is an overrun).
	if (k == cudaMemcpyDefault) {
		if (!dd && find_block(device_blocks, dst, 1))
			ok = false;
		if (!sd && find_block(device_blocks, src, 1))
			ok = false;
	}
	if (ok) {
		int real = dd && sd ? cudaMemcpyDeviceToDevice
			   : dd	    ? cudaMemcpyHostToDevice
			   : sd	    ? cudaMemcpyDeviceToHost
				    : cudaMemcpyHostToHost;
		stats.copies[real]++;
		stats.bytes[real] += (double)n;
	}
	if (!ok) {
		fprintf(stderr,
			"tk CUDA emulator: copy of %zu bytes, kind %d, %p <- %p "
			"(destination %s, source %s)\n",
			n, (int)k, dst, src, dd ? "device" : "not device",
			sd ? "device" : "not device");
		return fail(cudaErrorInvalidValue);
	}
	return cudaSuccess;
}

// ---- fibers ----

enum state { RUNNABLE, AT_SYNC, AT_WARP, DONE };

struct fiber {
	jmp_buf jb;
	ucontext_t uc;
	char *stack;
	bool started;
	state st;
	uint3 tid;
	int lane, warp;
	void *fake; // for ASan: the fiber's fake stack while it waits
};

const size_t STACK = (size_t)256 << 10;

struct block_run {
	jmp_buf jb; // the scheduler, while a fiber runs
	// for ASan: the scheduler's stack and its fake stack while a fiber runs
	const void *sched_bottom;
	size_t sched_size;
	void *fake;
	fiber *cur;
	void (*body)(void *);
	void *ctx;
	bool fibers;  // running as fibers (else a plain loop)
	bool synced;  // a barrier was reached in this launch
	const void *kernel;
	uint64_t slots[32 * 32]; // shuffle values, a warp's 32 at a time
};
thread_local block_run R;
thread_local fiber *pool;
thread_local int pool_n;

// From the running fiber f back to the scheduler; returns when f is
// resumed, perhaps moved by grow_pool (R.cur is where it is now).
void to_scheduler(fiber *f)
{
	if (!_setjmp(f->jb)) {
		switch_start(&f->fake, R.sched_bottom, R.sched_size);
		_longjmp(R.jb, 1);
	}
	switch_finish(R.cur->fake, &R.sched_bottom, &R.sched_size);
}

void fiber_main()
{
	switch_finish(nullptr, &R.sched_bottom, &R.sched_size);
	for (;;) {
		fiber *f = R.cur;
		R.body(R.ctx);
		f->st = DONE;
		to_scheduler(f);
	}
}

// Run f until it waits or finishes.
__attribute__((noinline)) void resume(fiber *f)
{
	R.cur = f;
	threadIdx = f->tid;
	if (_setjmp(R.jb)) {
		switch_finish(R.fake, nullptr, nullptr);
		return;
	}
	switch_start(&R.fake, f->stack, STACK);
	if (!f->started) {
		f->started = true;
		setcontext(&f->uc);
		die("setcontext: %s", strerror(errno));
	}
	_longjmp(f->jb, 1);
}

void wait_at(state s)
{
	if (!R.fibers)
		die("kernel %p synchronised (__syncthreads or a shuffle) on a "
		    "launch after one that did not; the emulator runs such "
		    "kernels as plain loops",
		    R.kernel);
	fiber *f = R.cur;
	R.synced = true;
	f->st = s;
	to_scheduler(f);
	threadIdx = f->tid;
}

void grow_pool(int n)
{
	if (n <= pool_n)
		return;
	fiber *p = (fiber *)realloc((void *)pool, n * sizeof *p);
	if (!p)
		die("out of memory for %d fibers", n);
	pool = p;
	for (int i = pool_n; i < n; i++) {
		fiber *f = &pool[i];
		memset((void *)f, 0, sizeof *f);
		f->stack = (char *)malloc(STACK);
		if (!f->stack || getcontext(&f->uc))
			die("cannot make fiber %d", i);
		f->uc.uc_stack.ss_sp = f->stack;
		f->uc.uc_stack.ss_size = STACK;
		f->uc.uc_link = nullptr;
		makecontext(&f->uc, fiber_main, 0);
	}
	pool_n = n;
}

// The index of $var's value among 'names' (the first when it is unset or
// empty); another value stops the program, naming the choices.
int env_choice(const char *var, std::initializer_list<const char *> names)
{
	const char *e = getenv(var);
	if (!e || !*e)
		return 0;
	int i = 0;
	for (const char *n : names) {
		if (!strcmp(e, n))
			return i;
		i++;
	}
	std::string all;
	for (const char *n : names)
		all += std::string(all.empty() ? "" : ", ") + n;
	die("%s=%s: %s", var, e, all.c_str());
}

// TK_EMU_ORDER=reverse or random (TK_EMU_SEED=n): the order in which
// blocks, and the threads of a block between barriers, run; a kernel
// whose result depends on it has a race (a missing __syncthreads, a
// block reading what another writes) that a GPU shows only sometimes.
enum order_kind { FORWARD, REVERSE, RANDOM };
order_kind order()
{
	static int o = env_choice("TK_EMU_ORDER", {"forward", "reverse", "random"});
	return (order_kind)o;
}

uint64_t rng_state;
uint64_t next_random()
{
	if (!rng_state) {
		const char *e = getenv("TK_EMU_SEED");
		rng_state = 0x9e3779b97f4a7c15ull ^ (e ? strtoull(e, nullptr, 10) : 1);
	}
	// xorshift64*
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

// The order to run n blocks or threads in: a permutation of 0..n-1, or
// none (empty) for the forward order, which costs nothing.
std::vector<unsigned> run_order(size_t n)
{
	std::vector<unsigned> p;
	if (order() == FORWARD)
		return p;
	p.resize(n);
	for (size_t i = 0; i < n; i++)
		p[i] = order() == REVERSE ? (unsigned)(n - 1 - i) : (unsigned)i;
	if (order() == RANDOM)
		for (size_t i = n; i > 1; i--)
			std::swap(p[i - 1], p[next_random() % i]);
	return p;
}

// threadIdx of the block's t-th thread (x varies fastest).
uint3 thread_coords(int t)
{
	return uint3{t % blockDim.x, t / blockDim.x % blockDim.y,
		     t / (blockDim.x * blockDim.y)};
}

void run_block_fibers(int nt)
{
	grow_pool(nt);
	int nw = (nt + 31) / 32;
	for (int t = 0; t < nt; t++) {
		fiber *f = &pool[t];
		f->tid = thread_coords(t);
		f->lane = t % 32;
		f->warp = t / 32;
		f->st = RUNNABLE;
	}
	for (;;) {
		std::vector<unsigned> ord = run_order(nt);
		for (int i = 0; i < nt; i++) {
			fiber *f = &pool[ord.empty() ? i : ord[i]];
			if (f->st == RUNNABLE)
				resume(f);
		}
		// Everyone waits or is done: release a barrier.
		bool released = false;
		for (int w = 0; w < nw; w++) {
			int at = 0, alive = 0;
			for (int t = w * 32; t < nt && t < w * 32 + 32; t++) {
				alive += pool[t].st != DONE;
				at += pool[t].st == AT_WARP;
			}
			if (alive && at == alive) {
				for (int t = w * 32; t < nt && t < w * 32 + 32; t++)
					pool[t].st = RUNNABLE;
				released = true;
			}
		}
		if (released)
			continue;
		int at = 0, alive = 0;
		for (int t = 0; t < nt; t++) {
			alive += pool[t].st != DONE;
			at += pool[t].st == AT_SYNC;
		}
		if (!alive)
			return;
		if (at == alive) {
			for (int t = 0; t < nt; t++)
				if (pool[t].st == AT_SYNC)
					pool[t].st = RUNNABLE;
			continue;
		}
		die("kernel %p, block (%u,%u,%u): deadlock: %d of %d live "
		    "threads at __syncthreads, the others at a warp shuffle "
		    "whose warp is not all there",
		    R.kernel, blockIdx.x, blockIdx.y, blockIdx.z, at, alive);
	}
}

void run_block_plain(int nt)
{
	std::vector<unsigned> ord = run_order(nt);
	for (int i = 0; i < nt; i++) {
		int t = ord.empty() ? i : (int)ord[i];
		threadIdx = thread_coords(t);
		R.body(R.ctx);
	}
}

std::set<const void *> syncing, plain; // kernels seen

double now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// ---- streams ----
//
// TK_EMU_STREAMS says when the work queued on a stream (kernels, async
// copies and memsets, library calls, event records, waits for events)
// runs:
//   lazy (the default): only when the host waits for it
//     (cudaStreamSynchronize, cudaEventSynchronize, cudaDeviceSynchronize,
//     a synchronous copy, cudaFree, a copy into pageable memory), and
//     then the streams it waits for through events first, its own work
//     last.  A GPU runs the work some time between the call and the
//     wait; here what the program forgot to wait for shows: the host
//     reading pinned memory before the copy into it ran, or writing it
//     while a queued copy still has to read it; a stream reading what
//     another makes without waiting for its event runs before it; a
//     stream that waits for another's event but not for the work that
//     event follows runs after it.
//   random: as late, and then the streams' work interleaved at random
//     (TK_EMU_SEED), each stream in its order and after the events it
//     waits for: other interleavings.
//   eager: at once, in the order called (no stream ever waits).
// cudaDeviceSynchronize runs the streams in TK_EMU_ORDER.  The limit of
// lazy and random: queued work makes no progress of its own, so ranks
// that wait for each other outside NCCL (a socket) while a collective is
// still queued would deadlock here though not on GPUs; tk's ranks meet
// only in collectives while training (gpu-train's two ranks pass).
struct queue;
struct op {
	std::function<void()> work; // or a wait: for 'after' to reach 'upto'
	queue *after;
	uint64_t upto;
};
struct queue {
	std::deque<op> ops;
	uint64_t issued, done; // operations queued and run, ever
	bool blocking;	       // synchronises with the legacy default stream
};
queue legacy{{}, 0, 0, false};
// Every stream made, in the order made.  Destroyed streams are emptied
// but kept, since a wait queued elsewhere may still name them; the list
// is never destroyed either, so that LeakSanitizer reaches them at exit.
std::vector<queue *> &queues = *new std::vector<queue *>;

enum stream_mode { LAZY, RANDOM_STREAMS, EAGER };

stream_mode streams()
{
	static int v = env_choice("TK_EMU_STREAMS", {"lazy", "random", "eager"});
	return (stream_mode)v;
}

queue *Q(cudaStream_t s)
{
	return s ? (queue *)(void *)s : &legacy;
}

void push(queue *q, op o)
{
	q->ops.push_back(std::move(o));
	q->issued++;
}

void push_wait(queue *q, queue *after, uint64_t upto)
{
	if (after != q && after->done < upto)
		push(q, op{nullptr, after, upto});
}

std::vector<queue *> all_queues()
{
	std::vector<queue *> all{&legacy};
	all.insert(all.end(), queues.begin(), queues.end());
	return all;
}

void drain(queue *q, uint64_t upto);

// Runs q's next operation; a wait first runs what it waits for.
void step(queue *q)
{
	op o = std::move(q->ops.front());
	q->ops.pop_front();
	if (o.after)
		drain(o.after, o.upto);
	else
		o.work();
	q->done++;
}

// TK_EMU_STREAMS=random: runs the next operation of a stream picked at
// random among those whose next one can run (a wait whose event is
// reached, or work).  The waits between streams were recorded in the
// order called, so they form no cycle and some stream can always run.
void step_random()
{
	std::vector<queue *> ready;
	for (queue *q : all_queues())
		if (!q->ops.empty() &&
		    (!q->ops.front().after ||
		     q->ops.front().after->done >= q->ops.front().upto))
			ready.push_back(q);
	if (ready.empty())
		die("streams wait for each other in a cycle");
	step(ready[next_random() % ready.size()]);
}

// The first wait among q's operations before 'upto' whose event is not
// reached, or nullptr.
const op *first_wait(const queue *q, uint64_t upto)
{
	for (uint64_t i = 0; q->done + i < upto; i++) {
		const op &o = q->ops[i];
		if (o.after && o.after->done < o.upto)
			return &o;
	}
	return nullptr;
}

// Runs q's work until 'upto' operations have run: first what q waits for
// (each such stream the same way), then q's own, so that work on another
// stream that q reads without waiting for it has not run yet, and work
// that q waits for has run as early as it may.
void drain(queue *q, uint64_t upto)
{
	if (streams() == RANDOM_STREAMS) {
		while (q->done < upto)
			step_random();
		return;
	}
	while (const op *w = first_wait(q, upto))
		drain(w->after, w->upto);
	while (q->done < upto)
		step(q);
}

void drain(queue *q)
{
	drain(q, q->issued);
}

void drain_all()
{
	std::vector<queue *> all = all_queues();
	std::vector<unsigned> order = run_order(all.size());
	for (size_t i = 0; i < all.size(); i++)
		drain(all[order.empty() ? i : order[i]]);
}

struct event {
	double ms;
	queue *q; // where it was last recorded, nullptr if never
	uint64_t seq;
	bool timed; // the record has run
};

// Where a copy's host side lies: pinned (cudaMallocHost) or pageable.
bool pinned(const void *p, size_t n)
{
	return find_block(host_blocks, p, n) != nullptr;
}

// Queues copy(dst, src) on s, as CUDA runs a copy whose spans are dn and
// sn bytes: from pageable memory to the device, the data are taken at the
// call (staged) and written later; into pageable memory, the call returns
// when the copy is done; between the device and pinned memory, or on the
// device, it is queued.
void queue_copy(cudaStream_t s, void *dst, size_t dn, const void *src,
		size_t sn, std::function<void(void *, const void *)> copy)
{
	if (!on_device(dst, dn) && !pinned(dst, dn)) {
		tk_emu::enqueue(s, [=]() { copy(dst, src); });
		drain(Q(s));
	} else if (!on_device(src, sn) && !pinned(src, sn)) {
		auto staged = std::make_shared<std::vector<char>>(
		    (const char *)src, (const char *)src + sn);
		tk_emu::enqueue(s, [=]() { copy(dst, staged->data()); });
	} else {
		tk_emu::enqueue(s, [=]() { copy(dst, src); });
	}
}

} // namespace

namespace tk_emu {

void enqueue(cudaStream_t s, std::function<void()> work)
{
	LOCK;
	if (streams() == EAGER) {
		work();
		return;
	}
	queue *q = Q(s);
	// The legacy default stream waits for the blocking streams, and
	// they wait for it.
	if (q == &legacy) {
		for (queue *b : queues)
			if (b->blocking)
				push_wait(q, b, b->issued);
	} else if (q->blocking) {
		push_wait(q, &legacy, legacy.issued);
	}
	push(q, op{std::move(work), nullptr, 0});
}

void count_search(bool timed)
{
	LOCK;
	(timed ? stats.searches : stats.heuristic)++;
}

void visit_in_order(size_t n, const std::function<void(size_t)> &f)
{
	std::vector<unsigned> ord;
	{
		LOCK;
		ord = run_order(n);
	}
	for (size_t i = 0; i < n; i++)
		f(ord.empty() ? i : ord[i]);
}

} // namespace tk_emu

bool tk_emu_on_device(const void *p, size_t n)
{
	LOCK;
	return on_device(p, n);
}

void __syncthreads(void)
{
	wait_at(AT_SYNC);
}

void __syncwarp(unsigned)
{
	wait_at(AT_WARP);
}

void tk_emu_shfl(void *v, size_t size, int src_lane)
{
	if (size > sizeof(uint64_t))
		die("shuffle of a %zu-byte value", size);
	if (!R.fibers)
		wait_at(AT_WARP); // dies with the message
	fiber *f = R.cur;
	int base = f->warp * 32;
	int nt = blockDim.x * blockDim.y * blockDim.z;
	if (src_lane < 0 || src_lane > 31 || base + src_lane >= nt)
		die("kernel %p: thread %d shuffles from lane %d, which the "
		    "block (%d threads) does not have",
		    R.kernel, base + f->lane, src_lane, nt);
	memcpy(&R.slots[base + f->lane], v, size);
	wait_at(AT_WARP);
	if (pool[base + src_lane].st == DONE)
		die("kernel %p: thread %d shuffles from lane %d, which has "
		    "returned",
		    R.kernel, base + f->lane, src_lane);
	uint64_t got = R.slots[base + src_lane];
	wait_at(AT_WARP); // nobody writes the slots before all have read
	memcpy(v, &got, size);
}

namespace tk_emu {

bool check_launch(const void *kernel, const config &c)
{
	size_t nt = (size_t)c.block.x * c.block.y * c.block.z;
	if (!nt || nt > 1024 || c.block.z > 64 || !c.grid.x || !c.grid.y ||
	    !c.grid.z || c.grid.y > 65535 || c.grid.z > 65535 ||
	    c.grid.x > 0x7fffffffu || c.shared > 48 * 1024) {
		fprintf(stderr,
			"tk CUDA emulator: kernel %p: bad launch grid "
			"(%u,%u,%u) block (%u,%u,%u) shared %zu\n",
			kernel, c.grid.x, c.grid.y, c.grid.z, c.block.x,
			c.block.y, c.block.z, c.shared);
		fail(cudaErrorInvalidConfiguration);
		return false;
	}
	LOCK;
	stats.launches++;
	return true;
}

void run(const void *kernel, const config &c, void (*body)(void *),
	 void *ctx)
{
	LOCK;
	size_t nt = (size_t)c.block.x * c.block.y * c.block.z;
	R.body = body;
	R.ctx = ctx;
	R.kernel = kernel;
	R.synced = false;
	R.fibers = !plain.count(kernel);
	gridDim = c.grid;
	blockDim = c.block;
	size_t nb = (size_t)c.grid.x * c.grid.y * c.grid.z;
	std::vector<unsigned> blocks = run_order(nb);
	for (size_t i = 0; i < nb; i++) {
		size_t b = blocks.empty() ? i : blocks[i];
		blockIdx.x = (unsigned)(b % c.grid.x);
		blockIdx.y = (unsigned)(b / c.grid.x % c.grid.y);
		blockIdx.z = (unsigned)(b / ((size_t)c.grid.x * c.grid.y));
		if (R.fibers)
			run_block_fibers((int)nt);
		else
			run_block_plain((int)nt);
	}
	if (R.fibers && !R.synced && !syncing.count(kernel))
		plain.insert(kernel);
	if (R.synced)
		syncing.insert(kernel);
}

} // namespace tk_emu

extern "C" {

cudaError_t cudaGetDeviceCount(int *n)
{
	*n = device_count();
	return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
	if (device < 0 || device >= device_count())
		return fail(cudaErrorInvalidDevice);
	current_device = device;
	return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
	*device = current_device;
	return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device)
{
	if (device < 0 || device >= device_count())
		return fail(cudaErrorInvalidDevice);
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "tk CUDA emulator (CPU)");
	p->totalGlobalMem = memory_limit();
	p->sharedMemPerBlock = 48 * 1024;
	p->warpSize = 32;
	p->maxThreadsPerBlock = 1024;
	p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
	p->maxThreadsDim[2] = 64;
	p->maxGridSize[0] = 0x7fffffff;
	p->maxGridSize[1] = p->maxGridSize[2] = 65535;
	p->major = 9;
	p->minor = 0;
	p->multiProcessorCount = 1;
	return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
	*v = 0;
	return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v)
{
	*v = 0;
	return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
	cudaError_t e = last_error;
	last_error = cudaSuccess;
	return e;
}

cudaError_t cudaPeekAtLastError(void)
{
	return last_error;
}

const char *cudaGetErrorString(cudaError_t e)
{
	switch (e) {
	case cudaSuccess:
		return "no error";
	case cudaErrorInvalidValue:
		return "invalid argument";
	case cudaErrorMemoryAllocation:
		return "out of memory";
	case cudaErrorInvalidConfiguration:
		return "invalid configuration argument";
	case cudaErrorInvalidDevice:
		return "invalid device ordinal";
	case cudaErrorNoDevice:
		return "no CUDA-capable device is detected";
	case cudaErrorNotSupported:
		return "operation not supported";
	case cudaErrorInvalidResourceHandle:
		return "invalid resource handle";
	case cudaErrorNotReady:
		return "device not ready";
	}
	return "unknown error";
}

cudaError_t cudaDeviceSynchronize(void)
{
	LOCK;
	stats.syncs++;
	drain_all();
	return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
	LOCK;
	size_t n = (bytes + 255) & ~(size_t)255;
	if (!n)
		n = 256;
	if (n > memory_limit() - device_used)
		return fail(cudaErrorMemoryAllocation);
	*p = aligned_alloc(256, n);
	if (!*p)
		return fail(cudaErrorMemoryAllocation);
	stats.mallocs++;
	// Fresh device memory is not zero.  Here it is all one bits, NaN in
	// float and bf16, so that reading what nothing wrote shows in the
	// results.
	memset(*p, 0xff, n);
	ASAN_POISON_MEMORY_REGION((char *)*p + bytes, n - bytes);
	device_blocks[(uintptr_t)*p] = bytes;
	device_used += n;
	return cudaSuccess;
}

// cudaFree waits for the device, as CUDA's does.
cudaError_t cudaFree(void *p)
{
	LOCK;
	if (!p)
		return cudaSuccess;
	auto it = device_blocks.find((uintptr_t)p);
	if (it == device_blocks.end()) {
		fprintf(stderr, "tk CUDA emulator: cudaFree(%p): not from "
				"cudaMalloc\n",
			p);
		return fail(cudaErrorInvalidValue);
	}
	drain_all();
	size_t n = (it->second + 255) & ~(size_t)255;
	ASAN_UNPOISON_MEMORY_REGION(p, n ? n : 256);
	device_used -= n ? n : 256;
	device_blocks.erase(it);
	free(p);
	stats.frees++;
	return cudaSuccess;
}

// Pinned memory is not zero either.
cudaError_t cudaMallocHost(void **p, size_t bytes)
{
	LOCK;
	*p = malloc(bytes ? bytes : 1);
	if (!*p)
		return fail(cudaErrorMemoryAllocation);
	memset(*p, 0xff, bytes);
	host_blocks[(uintptr_t)*p] = bytes;
	return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
	LOCK;
	if (!p)
		return cudaSuccess;
	if (!host_blocks.count((uintptr_t)p))
		return fail(cudaErrorInvalidValue);
	drain_all();
	host_blocks.erase((uintptr_t)p);
	free(p);
	return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
	LOCK;
	*total_bytes = memory_limit();
	*free_bytes = memory_limit() - device_used;
	return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n,
			    cudaMemcpyKind k, cudaStream_t s)
{
	LOCK;
	cudaError_t e = check_copy(dst, src, n, k);
	if (e == cudaSuccess && n)
		queue_copy(s, dst, n, src, n,
			   [n](void *d, const void *f) { memmove(d, f, n); });
	return e;
}

// On the legacy default stream, and the host waits for it.
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k)
{
	LOCK;
	cudaError_t e = cudaMemcpyAsync(dst, src, n, k, nullptr);
	if (e == cudaSuccess) {
		stats.syncs++;
		drain(&legacy);
	}
	return e;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src,
			      size_t spitch, size_t width, size_t rows,
			      cudaMemcpyKind k, cudaStream_t s)
{
	LOCK;
	if (width > dpitch || width > spitch)
		return fail(cudaErrorInvalidValue);
	if (!rows || !width)
		return cudaSuccess;
	size_t dn = dpitch * (rows - 1) + width, sn = spitch * (rows - 1) + width;
	// the whole spans, checked as one copy each way
	cudaError_t e = check_copy(dst, src, dn < sn ? dn : sn, k);
	if (e == cudaSuccess && (on_device(dst, 1) && !on_device(dst, dn)))
		e = fail(cudaErrorInvalidValue);
	if (e == cudaSuccess && (on_device(src, 1) && !on_device(src, sn)))
		e = fail(cudaErrorInvalidValue);
	if (e != cudaSuccess)
		return e;
	queue_copy(s, dst, dn, src, sn, [=](void *d, const void *f) {
		for (size_t r = 0; r < rows; r++)
			memmove((char *)d + r * dpitch,
				(const char *)f + r * spitch, width);
	});
	return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
	LOCK;
	if (n && !on_device(p, n)) {
		fprintf(stderr, "tk CUDA emulator: memset of %zu bytes at %p: "
				"not device memory\n",
			n, p);
		return fail(cudaErrorInvalidValue);
	}
	stats.memsets++;
	tk_emu::enqueue(s, [=]() { memset(p, v, n); });
	return cudaSuccess;
}

// Queued on the legacy default stream: the host does not wait for it.
cudaError_t cudaMemset(void *p, int v, size_t n)
{
	return cudaMemsetAsync(p, v, n, nullptr);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	LOCK;
	queue *q = new queue{{}, 0, 0, !(flags & cudaStreamNonBlocking)};
	queues.push_back(q);
	*s = (cudaStream_t)(void *)q;
	return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
	return cudaStreamCreateWithFlags(s, cudaStreamDefault);
}

// The stream's work still runs, as on a GPU.
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	LOCK;
	if (!s)
		return fail(cudaErrorInvalidResourceHandle);
	drain(Q(s));
	return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
	LOCK;
	stats.syncs++;
	drain(Q(s));
	return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned)
{
	LOCK;
	event *ev = (event *)(void *)e;
	if (streams() != EAGER && ev->q)
		push_wait(Q(s), ev->q, ev->seq);
	return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e)
{
	event *c = new event{0, nullptr, 0, false};
	*e = (cudaEvent_t)(void *)c;
	return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned)
{
	return cudaEventCreate(e);
}

// A record still queued runs first: it writes into the event.
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
	LOCK;
	event *ev = (event *)(void *)e;
	if (ev->q)
		drain(ev->q, ev->seq);
	delete ev;
	return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	LOCK;
	event *ev = (event *)(void *)e;
	ev->timed = false;
	tk_emu::enqueue(s, [ev]() {
		ev->ms = now_ms();
		ev->timed = true;
	});
	ev->q = Q(s);
	ev->seq = Q(s)->issued;
	return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
	LOCK;
	event *ev = (event *)(void *)e;
	stats.syncs++;
	if (ev->q)
		drain(ev->q, ev->seq);
	return cudaSuccess;
}

// Both events recorded and their records run, or cudaErrorNotReady.
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
	LOCK;
	event *x = (event *)(void *)a, *y = (event *)(void *)b;
	if (!x->q || !y->q)
		return fail(cudaErrorInvalidResourceHandle);
	if (!x->timed || !y->timed)
		return fail(cudaErrorNotReady);
	*ms = (float)(y->ms - x->ms);
	return cudaSuccess;
}

} // extern "C"
