/*
 * CRseqTrace — the only C in RseqTrace's producer path.
 *
 * What lives here, and why it cannot be Swift:
 *   - the Linux rseq ABI (our own copy: the installed uapi header may be older than the kernel),
 *   - the restartable critical sections themselves (`asm goto`: a descriptor in `__rseq_cs`, an abort
 *     handler in `__rseq_failure` preceded by the signature, a single committing store),
 *   - the per-thread rseq area used when glibc does not register one (a `__thread` object),
 *   - thin wrappers for variadic or macro-only libc APIs (`syscall`, `CPU_SET`).
 *
 * Naming follows librseq: each critical-section helper is named after its pseudo-code and returns
 *   0  success: the final store committed,
 *   1  a compared value did not match (nothing was published),
 *  -1  aborted by the kernel (preemption, signal, migration) or run on the wrong CPU.
 * Pseudo-code vocabulary:
 *   cbne(a, b, ne)     branch to `ne` when a != b
 *   cbgtu(a, b, ne)    branch to `ne` when a > b (unsigned)
 *   stamp([p])         store the cycle counter (rdtsc / cntvct_el0) at p
 *   trystore(v, [p])   store that may be left behind by an abort; only ever targets memory past the
 *                      published head, which no reader looks at
 *   store(v, [p])      the committing store: the last instruction of the sequence
 *
 * Every helper first checks that the thread runs on the expected index (cpu_id or mm_cid); that
 * check is what makes the same helper usable for the consumer's "run this on CPU n" slow path.
 */
#ifndef CRSEQTRACE_H
#define CRSEQTRACE_H

#include <stdint.h>
#include <stddef.h>

#define RSEQTRACE_INLINE static inline __attribute__((__always_inline__))

#define RSEQTRACE_STR_(x) #x
#define RSEQTRACE_STR(x) RSEQTRACE_STR_(x)

/* MARK: - Kernel ABI (include/uapi/linux/rseq.h, checked against kernel 6.18 and the 7.0 header) */

/* The registered per-thread area. Offsets are part of the kernel ABI and checked in shim.c. */
struct rseqtrace_rseq_abi {
	uint32_t cpu_id_start; /* +0  kernel-owned */
	uint32_t cpu_id;       /* +4  kernel-owned; -1 uninitialised, -2 registration failed */
	uint64_t rseq_cs;      /* +8  user-owned: pointer to the active descriptor */
	uint32_t flags;        /* +16 kernel-owned since 6.x: never written by us */
	uint32_t node_id;      /* +20 kernel-owned (6.3+) */
	uint32_t mm_cid;       /* +24 kernel-owned (6.3+) */
	uint32_t slice_ctrl;   /* +28 7.0+ time-slice extension; unused here */
} __attribute__((aligned(32)));

#define RSEQTRACE_OFFSET_CPU_ID 4
#define RSEQTRACE_OFFSET_RSEQ_CS 8
#define RSEQTRACE_OFFSET_NODE_ID 20
#define RSEQTRACE_OFFSET_MM_CID 24

#define RSEQTRACE_CPU_ID_UNINITIALIZED ((uint32_t)-1)

#if defined(__x86_64__)
#define RSEQTRACE_SIG 0x53053053
#elif defined(__aarch64__)
#define RSEQTRACE_SIG 0xd428bc00
#else
#error "RseqTrace supports x86_64 and aarch64 only"
#endif

/* MARK: - Process-wide registration state (shim.c) */

/* Offset of the registered rseq area from the thread pointer. Set once, before the first record. */
extern long rseqtrace_rseq_offset;

/* Race-widening delay (iterations of a `pause` loop) run inside every critical section of
 * unoptimised (debug) builds; tests set it, release builds do not have it. */
extern volatile uint32_t rseqtrace_inject_loops;
/* Sets rseqtrace_inject_loops (for Swift, which cannot assign C globals in strict concurrency). */
void rseqtrace_set_inject_loops(uint32_t loops);

/* How this process can use rseq. */
enum rseqtrace_registration {
	RSEQTRACE_REGISTRATION_NONE = 0,   /* rseq unusable: fallback protocol */
	RSEQTRACE_REGISTRATION_GLIBC = 1,  /* glibc registered every thread (__rseq_offset) */
	RSEQTRACE_REGISTRATION_SELF = 2,   /* we register each thread lazily in our own TLS area */
};

/* Outcome of the process-wide probe. */
struct rseqtrace_probe_result {
	int32_t registration;     /* enum rseqtrace_registration */
	int32_t kernel_errno;     /* errno of the availability probe or registration, 0 if fine */
	uint32_t feature_size;    /* usable ABI size (20 = no node_id/mm_cid) */
	uint32_t glibc_rseq_size; /* __rseq_size as glibc exported it (0: glibc did not register) */
};

/* Decides, once, how rseq is used by this process, and sets rseqtrace_rseq_offset accordingly.
 * `forbid_rseq` != 0 forces RSEQTRACE_REGISTRATION_NONE. Thread-safe; later calls return the first
 * result. Never writes a kernel-owned field. */
struct rseqtrace_probe_result rseqtrace_probe(int forbid_rseq);

/* Self-registration mode: registers the calling thread's own area (full feature size from
 * AT_RSEQ_FEATURE_SIZE) and arranges for it to be unregistered at thread exit.
 * Returns 0 on success or an errno value. A no-op returning 0 in glibc mode. */
int rseqtrace_register_current_thread(void);

/* Number of rseq aborts observed by this thread is not tracked by the kernel; tests use the
 * `rseq:rseq_ip_fixup` tracepoint instead. */

/* MARK: - Thin syscall / libc wrappers (variadic or macro-only in C, so not importable into Swift) */

long rseqtrace_gettid(void);
/* mbind(2) with MPOL_PREFERRED on `node`; returns 0 or an errno value. */
int rseqtrace_mbind_preferred(void *address, unsigned long length, int node);
/* Pins the calling thread to `cpu`; saves the previous mask into `saved` (opaque, >= 128 bytes).
 * Returns 0 or an errno value (EINVAL: the CPU is offline or outside the allowed set). */
int rseqtrace_pin_to_cpu(int cpu, void *saved, size_t saved_size);
/* Restores a mask saved by rseqtrace_pin_to_cpu. Returns 0 or an errno value. */
int rseqtrace_restore_affinity(const void *saved, size_t saved_size);
/* Number of CPUs the calling thread may run on, and whether `cpu` is one of them. */
int rseqtrace_cpu_allowed(int cpu);
/* Raises the caller to SCHED_FIFO priority 1 when permitted; returns 1 if raised, 0 if not.
 * `saved_policy` / `saved_priority` receive what to restore. */
int rseqtrace_enter_fifo(int *saved_policy, int *saved_priority);
void rseqtrace_leave_fifo(int saved_policy, int saved_priority);
/* madvise(address, length, MADV_POPULATE_WRITE) (Linux 5.14): allocates and maps every page of
 * the range for writing, reporting a page that cannot be allocated as an error (where a store
 * would raise SIGBUS). Returns 0 or an errno value (EINVAL: the kernel lacks it). */
int rseqtrace_populate_write(void *address, size_t length);
/* fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length): reserves the file's blocks in that range
 * without changing its size, so later writes there skip the file system's block reservation.
 * Returns 0 or an errno value (EOPNOTSUPP: the file system cannot). */
int rseqtrace_preallocate_beyond_end(int fd, uint64_t offset, uint64_t length);
/* sched_getcpu(), or -1. */
int rseqtrace_getcpu(void);
/* The address of TraceRuntime's immortal producer table (0 until the first attach). A C global so
 * that a tracepoint in any module reads it with one inlined load, not a call to a Swift global's
 * addressor. Written once, with release, before any tracepoint is armed. */
extern uintptr_t rseqtrace_producer_table;
static inline __attribute__((always_inline)) uintptr_t rseqtrace_load_producer_table(void)
{
	return __atomic_load_n(&rseqtrace_producer_table, __ATOMIC_RELAXED);
}
void rseqtrace_publish_producer_table(uintptr_t address);

/* A hint that `address` will be read soon (no fault, no effect on memory). A consumer walking a
 * ring prefetches a few cache lines ahead: the hardware's stream prefetcher stops at each 4 KiB
 * page of the shared mapping. Swift has no prefetch of its own. */
RSEQTRACE_INLINE void rseqtrace_prefetch_read(const void *address)
{
	__builtin_prefetch(address, 0, 3);
}

/* 1 when `address` lies in a loaded executable or shared object (its static data: where global and
 * static variables live), 0 otherwise (stack, heap). Uses dladdr. */
int rseqtrace_is_static_storage(const void *address);

/* MARK: - Thread identity (thread records; docs/BufferProtocol.md §2.1)
 *
 * Each thread caches what its thread records carry and the mark that producers compare with a
 * ring's `lastWriter` word to know whether the records before the head are already attributed to
 * it. Initial-exec TLS: reading it is one %fs-relative load (no call), so the fast path can. */
struct rseqtrace_thread_identity {
	/* pid << 32 | tid as the thread's thread records carry them; 0 until assigned. */
	uint64_t process_and_thread;
	/* Nonzero once assigned: the tid (below 2^22, the kernel's PID_MAX_LIMIT) in bits 0-21, and
	 * 10 bits taken from the cycle counter at assignment in bits 22-31. Two live threads never
	 * share a mark (their tids differ), in one process or in several; the high bits make a
	 * reused tid (a dead thread's, possibly of another process) carry a different mark in
	 * 1023 cases of 1024. */
	uint32_t mark;
	uint32_t unused;
};
extern __thread struct rseqtrace_thread_identity rseqtrace_current_thread
	__attribute__((tls_model("initial-exec")));

/* The calling thread's mark, or 0 when it has none yet (then rseqtrace_assign_thread_identity). */
RSEQTRACE_INLINE uint32_t rseqtrace_thread_mark(void)
{
	return rseqtrace_current_thread.mark;
}

/* pid << 32 | tid of the calling thread, or 0 when not assigned yet. */
RSEQTRACE_INLINE uint64_t rseqtrace_thread_process_and_id(void)
{
	return rseqtrace_current_thread.process_and_thread;
}

/* Assigns the calling thread's identity and mark if it has none (first use in a thread, and
 * first use after fork in the child: a pthread_atfork child handler, installed by the first
 * assignment, clears the forking thread's copy) and returns the mark (nonzero). */
uint32_t rseqtrace_assign_thread_identity(void);

/* MARK: - Lock-free protocol (fallback rings and the slow lane; docs/BufferProtocol.md §5) */

/* Compare-and-swap of a ring's 16-byte reservation pair {head, stamp} (16-aligned): when
 * pair == {*head, *stamp}, stores {new_head, new_stamp} and returns 1; otherwise loads the current
 * pair into *head and *stamp and returns 0. Sequentially consistent (a locked cmpxchg16b on x86_64;
 * an ldaxp/stlxp loop on aarch64, which also works without LSE). */
RSEQTRACE_INLINE int rseqtrace_cas_head_stamp(uint64_t *pair, uint64_t *head, uint64_t *stamp,
                                              uint64_t new_head, uint64_t new_stamp)
{
#if defined(__x86_64__)
	unsigned char ok;
	__asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
	                     : "=q"(ok), "+m"(*(volatile unsigned __int128 *)pair), "+a"(*head), "+d"(*stamp)
	                     : "b"(new_head), "c"(new_stamp)
	                     : "memory", "cc");
	return ok;
#else
	uint64_t lo, hi;
	uint32_t failed;
	for (;;) {
		__asm__ __volatile__("ldaxp %0, %1, [%2]" : "=&r"(lo), "=&r"(hi) : "r"(pair) : "memory");
		if (lo != *head || hi != *stamp) {
			/* Store back what was read: ends the exclusive access with a single-copy atomic
			 * 16-byte read of the pair (ldaxp alone does not guarantee one). */
			__asm__ __volatile__("stlxp %w0, %1, %2, [%3]" : "=&r"(failed) : "r"(lo), "r"(hi), "r"(pair) : "memory");
			if (failed) continue;
			*head = lo;
			*stamp = hi;
			return 0;
		}
		__asm__ __volatile__("stlxp %w0, %1, %2, [%3]"
		                     : "=&r"(failed) : "r"(new_head), "r"(new_stamp), "r"(pair) : "memory");
		if (!failed) {
			__asm__ __volatile__("dmb ish" : : : "memory");
			return 1;
		}
	}
#endif
}

/* Test hook: while nonzero, a lock-free reservation of an event whose id equals it parks between
 * its reservation and its timestamp and record word stores (sleeping 1 ms at a time), as a producer
 * stopped by a debugger at the worst moment would. Tests set and clear it. */
extern volatile uint32_t rseqtrace_stall_event_id;
void rseqtrace_set_stall_event_id(uint32_t id);
RSEQTRACE_INLINE uint32_t rseqtrace_stall_requested(void)
{
	return rseqtrace_stall_event_id;
}

/* Initialises a process-shared, robust mutex in shared memory. Returns 0 or an errno value. */
int rseqtrace_mutex_init_shared(void *mutex);
/* Locks such a mutex, waiting at most `timeout_ns` (CLOCK_MONOTONIC). Returns 0 when locked
 * (recovering it if the previous owner died), or an errno value (ETIMEDOUT). */
int rseqtrace_mutex_lock(void *mutex, uint64_t timeout_ns);
void rseqtrace_mutex_unlock(void *mutex);
/* sizeof(pthread_mutex_t). */
size_t rseqtrace_mutex_size(void);

/* MARK: - Anonymous memory files and control sockets (live tracing)
 *
 * What TraceRuntime's control thread and the consumer's control client need and Swift cannot
 * express: memfd_create and file seals (_GNU_SOURCE), and SOCK_SEQPACKET sockets on abstract
 * addresses with descriptor passing (SCM_RIGHTS) and peer credentials (SO_PEERCRED), whose
 * control-message macros are not importable. Every function returns a value >= 0 or -errno. */

/* memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING). */
int rseqtrace_memfd_create(const char *name);
/* The seals rseqtrace_add_seals takes (the values of F_SEAL_*, checked in control.c). */
enum {
	RSEQTRACE_SEAL_SEAL = 0x0001,
	RSEQTRACE_SEAL_SHRINK = 0x0002,
	RSEQTRACE_SEAL_GROW = 0x0004,
};
/* fcntl(fd, F_ADD_SEALS, seals): 0 or -errno. */
int rseqtrace_add_seals(int fd, int seals);
/* fcntl(fd, F_GET_SEALS): the seals or -errno. */
int rseqtrace_get_seals(int fd);

/* The longest abstract socket name (sun_path minus its leading NUL). */
enum { RSEQTRACE_CONTROL_NAME_MAX = 107 };
/* A close-on-exec, non-blocking SOCK_SEQPACKET socket bound to the abstract address `name`
 * (`length` bytes, no NUL) and listening. -EADDRINUSE when the name is taken. */
int rseqtrace_control_listen(const char *name, size_t length);
/* accept4 on a listening control socket: a close-on-exec, blocking connection whose sends give
 * up after 1 s. */
int rseqtrace_control_accept(int listener);
/* A close-on-exec SOCK_SEQPACKET connection to the abstract address `name`; sending, receiving
 * and connecting each wait at most `timeout_ms`. */
int rseqtrace_control_connect(const char *name, size_t length, int timeout_ms);
/* Sends one message of `count` bytes, with descriptor `passed_fd` attached when >= 0 (MSG_NOSIGNAL:
 * a closed peer is -EPIPE, never SIGPIPE). Returns the bytes sent. */
long rseqtrace_control_send(int fd, const void *bytes, size_t count, int passed_fd);
/* Receives one message into `bytes` (at most `capacity`): returns its size (0: the peer closed).
 * A descriptor passed with it is stored in *passed_fd (close-on-exec), else -1; a message longer
 * than `capacity` is -EMSGSIZE and a second descriptor is closed and refused (-EBADMSG). */
long rseqtrace_control_receive(int fd, void *bytes, size_t capacity, int *passed_fd);
/* The kernel's record of the connected peer (SO_PEERCRED). */
int rseqtrace_control_peer(int fd, int32_t *pid, uint32_t *uid);
/* pthread_setname_np on the calling thread (at most 15 bytes): 0 or -errno. */
int rseqtrace_name_current_thread(const char *name);

/* MARK: - Plans for the longer critical sections */

/* Opening a sub-buffer publishes up to three records at once: the padding that closes the previous
 * sub-buffer, the sub-buffer's begin record, and the first event record. When there is nothing to
 * pad, pad_slot aliases begin_slot (the begin record's store then overwrites it). */
struct rseqtrace_open_plan {
	uint64_t *pad_slot;   /* +0  */
	uint64_t pad_word;    /* +8  */
	uint64_t *begin_slot; /* +16 begin record: [word][stamp][lost] */
	uint64_t begin_word;  /* +24 */
	uint64_t begin_lost;  /* +32 records overwritten before this sub-buffer */
	uint64_t *record_slot;/* +40 first record: [word][stamp]... */
	uint64_t record_word; /* +48 */
};

/* MARK: - Reading the registered area */

RSEQTRACE_INLINE struct rseqtrace_rseq_abi *rseqtrace_abi(void)
{
	return (struct rseqtrace_rseq_abi *)((char *)__builtin_thread_pointer() + rseqtrace_rseq_offset);
}

/* cpu_id of the calling thread: a CPU number, or >= 0xfffffffe when the thread is not registered. */
RSEQTRACE_INLINE uint32_t rseqtrace_current_cpu_id(void)
{
	return __atomic_load_n(&rseqtrace_abi()->cpu_id, __ATOMIC_RELAXED);
}

RSEQTRACE_INLINE uint32_t rseqtrace_current_mm_cid(void)
{
	return __atomic_load_n(&rseqtrace_abi()->mm_cid, __ATOMIC_RELAXED);
}

RSEQTRACE_INLINE uint32_t rseqtrace_current_node_id(void)
{
	return __atomic_load_n(&rseqtrace_abi()->node_id, __ATOMIC_RELAXED);
}

/* The cycle counter used for timestamps outside a critical section (the lock-free protocol of
 * fallback rings and the slow lane). A plain read, as inside the rseq sequences: it may execute a
 * few cycles before a load that precedes it, which the lock-free reservation tolerates (it installs
 * max(counter, previous stamp); docs/BufferProtocol.md §5.5). */
RSEQTRACE_INLINE uint64_t rseqtrace_read_cycles(void)
{
#if defined(__x86_64__)
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
#else
	uint64_t v;
	__asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#endif
}

/* Frequency of the cycle counter when the architecture states it (aarch64), else 0. */
RSEQTRACE_INLINE uint64_t rseqtrace_cycles_frequency_hint(void)
{
#if defined(__aarch64__)
	uint64_t v;
	__asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(v));
	return v;
#else
	return 0;
#endif
}

/* MARK: - Race-widening injection points (librseq style) */

/* The critical sections are compiled wherever this header is imported (the Swift modules), where
 * the C target's own defines do not apply; so unoptimised builds (what `swift test` runs) get the
 * injection points and optimised builds never do. */
#if defined(RSEQTRACE_INJECTION) || !defined(__OPTIMIZE__)
#if defined(__x86_64__)
/* Spins rseqtrace_inject_loops times inside the critical section; clobbers eax, which every
 * critical section already clobbers. */
#define RSEQTRACE_INJECT_ASM \
	"movl %[inject_loops], %%eax\n\t" \
	"testl %%eax, %%eax\n\t" \
	"jz 333f\n\t" \
	"332:\n\t" \
	"pause\n\t" \
	"decl %%eax\n\t" \
	"jnz 332b\n\t" \
	"333:\n\t"
#else
#define RSEQTRACE_INJECT_ASM \
	"ldr w17, %[inject_loops]\n\t" \
	"cbz w17, 333f\n\t" \
	"332:\n\t" \
	"yield\n\t" \
	"subs w17, w17, #1\n\t" \
	"b.ne 332b\n\t" \
	"333:\n\t"
#endif
#define RSEQTRACE_INJECT_INPUT , [inject_loops] "m" (rseqtrace_inject_loops)
#else
#define RSEQTRACE_INJECT_ASM ""
#define RSEQTRACE_INJECT_INPUT
#endif

/* MARK: - Span identifiers
 *
 * A span id is unique within a process: the high 32 bits are a block handed to the thread by one
 * process-wide atomic increment (once per 2^32 - 1 spans of a thread), the low 32 bits count the
 * thread's spans within its block (never 0). No span id is 0. */
extern __thread uint64_t rseqtrace_span_next_id;
/* Hands the calling thread a new block; returns its first id. */
uint64_t rseqtrace_span_block_slow(void);
static inline __attribute__((always_inline)) uint64_t rseqtrace_span_id_next(void)
{
	uint64_t id = rseqtrace_span_next_id;
	if ((uint32_t)id == 0)
		id = rseqtrace_span_block_slow();
	rseqtrace_span_next_id = id + 1;
	return id;
}

/* MARK: - Critical sections, one set per index field (cpu_id, mm_cid) */

#if defined(__x86_64__)
#define RSEQTRACE_T_INDEX RSEQTRACE_OFFSET_CPU_ID
#define RSEQTRACE_T(name) name##__cpu_id
#include "rseqtrace-ops-x86_64.h"
#undef RSEQTRACE_T_INDEX
#undef RSEQTRACE_T
#define RSEQTRACE_T_INDEX RSEQTRACE_OFFSET_MM_CID
#define RSEQTRACE_T(name) name##__mm_cid
#include "rseqtrace-ops-x86_64.h"
#undef RSEQTRACE_T_INDEX
#undef RSEQTRACE_T
#elif defined(__aarch64__)
#define RSEQTRACE_T_INDEX RSEQTRACE_OFFSET_CPU_ID
#define RSEQTRACE_T(name) name##__cpu_id
#include "rseqtrace-ops-aarch64.h"
#undef RSEQTRACE_T_INDEX
#undef RSEQTRACE_T
#define RSEQTRACE_T_INDEX RSEQTRACE_OFFSET_MM_CID
#define RSEQTRACE_T(name) name##__mm_cid
#include "rseqtrace-ops-aarch64.h"
#undef RSEQTRACE_T_INDEX
#undef RSEQTRACE_T
#endif

#endif /* CRSEQTRACE_H */
