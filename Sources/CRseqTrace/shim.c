/*
 * Non-inline half of CRseqTrace: rseq registration, and thin wrappers around libc APIs that are
 * variadic or macro-only (and so cannot be called from Swift).
 */
#ifndef _GNU_SOURCE
#error "CRseqTrace must be compiled with _GNU_SOURCE"
#endif

#include "CRseqTrace.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* MARK: - Layout checks: the asm addresses these fields by constant offsets. */

_Static_assert(offsetof(struct rseqtrace_rseq_abi, cpu_id_start) == 0, "rseq ABI: cpu_id_start");
_Static_assert(offsetof(struct rseqtrace_rseq_abi, cpu_id) == RSEQTRACE_OFFSET_CPU_ID, "rseq ABI: cpu_id");
_Static_assert(offsetof(struct rseqtrace_rseq_abi, rseq_cs) == RSEQTRACE_OFFSET_RSEQ_CS, "rseq ABI: rseq_cs");
_Static_assert(offsetof(struct rseqtrace_rseq_abi, flags) == 16, "rseq ABI: flags");
_Static_assert(offsetof(struct rseqtrace_rseq_abi, node_id) == RSEQTRACE_OFFSET_NODE_ID, "rseq ABI: node_id");
_Static_assert(offsetof(struct rseqtrace_rseq_abi, mm_cid) == RSEQTRACE_OFFSET_MM_CID, "rseq ABI: mm_cid");
_Static_assert(sizeof(struct rseqtrace_rseq_abi) == 32, "rseq ABI: original size is 32 bytes");
_Static_assert(offsetof(struct rseqtrace_open_plan, pad_slot) == 0, "open plan layout");
_Static_assert(offsetof(struct rseqtrace_open_plan, pad_word) == 8, "open plan layout");
_Static_assert(offsetof(struct rseqtrace_open_plan, begin_slot) == 16, "open plan layout");
_Static_assert(offsetof(struct rseqtrace_open_plan, begin_word) == 24, "open plan layout");
_Static_assert(offsetof(struct rseqtrace_open_plan, begin_lost) == 32, "open plan layout");
_Static_assert(offsetof(struct rseqtrace_open_plan, record_slot) == 40, "open plan layout");
_Static_assert(offsetof(struct rseqtrace_open_plan, record_word) == 48, "open plan layout");
_Static_assert(sizeof(pthread_mutex_t) <= 64, "the registry reserves 64 bytes for its mutex");

#ifndef __NR_rseq
#if defined(__x86_64__)
#define __NR_rseq 334
#elif defined(__aarch64__)
#define __NR_rseq 293
#endif
#endif

#define RSEQTRACE_FLAG_UNREGISTER 1
#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif
#ifndef AT_RSEQ_ALIGN
#define AT_RSEQ_ALIGN 28
#endif

/* glibc >= 2.35 exports these; weak so that an older libc simply leaves them NULL. */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

/* MARK: - Process-wide state */

long rseqtrace_rseq_offset;
volatile uint32_t rseqtrace_inject_loops;

void rseqtrace_set_inject_loops(uint32_t loops)
{
	rseqtrace_inject_loops = loops;
}

/* Our own area for self-registration: 256 bytes, 256-aligned, comfortably above what kernels ask
 * for today (feature size 28, alignment 32 on 6.18; 33 / 64 on 7.0). cpu_id starts as "not
 * registered" in every new thread, so an unregistered thread never passes the index check. */
#define RSEQTRACE_OWN_AREA_SIZE 256
static __thread union {
	struct rseqtrace_rseq_abi abi;
	char bytes[RSEQTRACE_OWN_AREA_SIZE];
} rseqtrace_own_area __attribute__((tls_model("initial-exec"), aligned(RSEQTRACE_OWN_AREA_SIZE))) = {
	.abi = { .cpu_id_start = 0, .cpu_id = RSEQTRACE_CPU_ID_UNINITIALIZED },
};

static pthread_once_t rseqtrace_probe_once = PTHREAD_ONCE_INIT;
static int rseqtrace_probe_forbid;
static struct rseqtrace_probe_result rseqtrace_probe_state;
static uint32_t rseqtrace_self_length;
static pthread_key_t rseqtrace_exit_key;

static long rseqtrace_sys_rseq(void *area, uint32_t length, int flags, uint32_t sig)
{
	return syscall(__NR_rseq, area, length, flags, sig);
}

static void rseqtrace_unregister_at_exit(void *unused)
{
	(void)unused;
	/* Clear the descriptor pointer first (nothing of ours may be referenced after exit), then
	 * unregister; the kernel would also drop the registration at exit. */
	__atomic_store_n(&rseqtrace_own_area.abi.rseq_cs, 0, __ATOMIC_RELAXED);
	(void)rseqtrace_sys_rseq(&rseqtrace_own_area, rseqtrace_self_length, RSEQTRACE_FLAG_UNREGISTER,
				 RSEQTRACE_SIG);
}

static int rseqtrace_register_self(void)
{
	if (rseqtrace_own_area.abi.cpu_id < RSEQTRACE_CPU_ID_UNINITIALIZED - 1)
		return 0; /* already registered */
	if (rseqtrace_sys_rseq(&rseqtrace_own_area, rseqtrace_self_length, 0, RSEQTRACE_SIG) != 0)
		return errno;
	/* Any non-NULL value makes pthread run the destructor at thread exit. */
	(void)pthread_setspecific(rseqtrace_exit_key, &rseqtrace_own_area);
	return 0;
}

static void rseqtrace_probe_run(void)
{
	struct rseqtrace_probe_result *r = &rseqtrace_probe_state;
	memset(r, 0, sizeof(*r));
	r->glibc_rseq_size = &__rseq_size ? __rseq_size : 0;
	if (rseqtrace_probe_forbid) {
		r->registration = RSEQTRACE_REGISTRATION_NONE;
		return;
	}
	/* Availability: rseq(NULL, 0, 0, 0) fails with EINVAL when the syscall exists. */
	if (rseqtrace_sys_rseq(NULL, 0, 0, 0) != 0 && errno != EINVAL) {
		r->kernel_errno = errno; /* ENOSYS (old kernel, valgrind), EPERM (seccomp) */
		r->registration = RSEQTRACE_REGISTRATION_NONE;
		return;
	}
	unsigned long feature = getauxval(AT_RSEQ_FEATURE_SIZE);
	unsigned long align = getauxval(AT_RSEQ_ALIGN);
	if (&__rseq_size && &__rseq_offset && __rseq_size > 0) {
		/* glibc owns registration. Its __rseq_size of 20 or 32 does not describe what the
		 * kernel fills (librseq's rule): the usable size is min(32, feature size). */
		uint32_t usable = __rseq_size;
		if (usable == 20 || usable == 32)
			usable = feature ? (feature < 32 ? (uint32_t)feature : 32) : 20;
		r->feature_size = usable;
		rseqtrace_rseq_offset = (long)__rseq_offset;
		r->registration = RSEQTRACE_REGISTRATION_GLIBC;
		return;
	}
	/* Register ourselves: the full feature size, at least 32 bytes, in an area aligned enough. */
	uint32_t length = feature > 32 ? (uint32_t)feature : 32;
	if (length > RSEQTRACE_OWN_AREA_SIZE || align > RSEQTRACE_OWN_AREA_SIZE) {
		r->kernel_errno = EOVERFLOW;
		r->registration = RSEQTRACE_REGISTRATION_NONE;
		return;
	}
	rseqtrace_self_length = length;
	if (pthread_key_create(&rseqtrace_exit_key, rseqtrace_unregister_at_exit) != 0) {
		r->kernel_errno = EAGAIN;
		r->registration = RSEQTRACE_REGISTRATION_NONE;
		return;
	}
	rseqtrace_rseq_offset = (long)((char *)&rseqtrace_own_area - (char *)__builtin_thread_pointer());
	int err = rseqtrace_register_self();
	if (err != 0) {
		/* EINVAL: another area is already registered for this thread (someone else owns rseq
		 * without publishing glibc's symbols); EPERM: a different signature. */
		r->kernel_errno = err;
		r->registration = RSEQTRACE_REGISTRATION_NONE;
		return;
	}
	r->feature_size = feature ? (uint32_t)feature : 20;
	r->registration = RSEQTRACE_REGISTRATION_SELF;
}

struct rseqtrace_probe_result rseqtrace_probe(int forbid_rseq)
{
	/* Only the first caller's wish counts: the mode is chosen once per process. */
	static atomic_int first = 1;
	int expected = 1;
	if (atomic_compare_exchange_strong(&first, &expected, 0))
		rseqtrace_probe_forbid = forbid_rseq;
	pthread_once(&rseqtrace_probe_once, rseqtrace_probe_run);
	return rseqtrace_probe_state;
}

int rseqtrace_register_current_thread(void)
{
	if (rseqtrace_probe_state.registration != RSEQTRACE_REGISTRATION_SELF)
		return 0;
	return rseqtrace_register_self();
}

/* MARK: - Thread identity */

__thread struct rseqtrace_thread_identity rseqtrace_current_thread
	__attribute__((tls_model("initial-exec"))) = { 0, 0, 0 };

static pthread_once_t rseqtrace_atfork_once = PTHREAD_ONCE_INIT;

/* The child of fork is another process whose only thread has a copy of the forking thread's
 * identity: clear it, so that its first record assigns the child's own. */
static void rseqtrace_forget_thread_identity(void)
{
	rseqtrace_current_thread.process_and_thread = 0;
	rseqtrace_current_thread.mark = 0;
}

static void rseqtrace_install_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, rseqtrace_forget_thread_identity);
}

uint32_t rseqtrace_assign_thread_identity(void)
{
	if (rseqtrace_current_thread.mark != 0)
		return rseqtrace_current_thread.mark;
	pthread_once(&rseqtrace_atfork_once, rseqtrace_install_atfork);
	uint32_t tid = (uint32_t)syscall(SYS_gettid);
	uint32_t pid = (uint32_t)getpid();
	uint32_t mark = tid;
	if (tid < (1u << 22)) {
		/* Top 10 bits of a multiplicative hash of the cycle counter. */
		uint64_t mixed = rseqtrace_read_cycles() * 0x9E3779B97F4A7C15ull;
		mark |= (uint32_t)(mixed >> 54) << 22;
	}
	if (mark == 0)
		mark = 1; /* tids are positive; kept nonzero whatever the kernel says */
	rseqtrace_current_thread.process_and_thread = (uint64_t)pid << 32 | tid;
	/* A signal handler recording on this thread sees the identity whenever it sees the mark. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	rseqtrace_current_thread.mark = mark;
	return mark;
}

/* MARK: - Thin wrappers */

long rseqtrace_gettid(void)
{
	return syscall(SYS_gettid);
}

int rseqtrace_mbind_preferred(void *address, unsigned long length, int node)
{
	if (node < 0 || node >= 64)
		return EINVAL;
	unsigned long mask = 1UL << node;
	/* MPOL_PREFERRED = 1 */
	if (syscall(SYS_mbind, address, length, 1, &mask, 64UL, 0U) != 0)
		return errno;
	return 0;
}

int rseqtrace_pin_to_cpu(int cpu, void *saved, size_t saved_size)
{
	if (saved_size < sizeof(cpu_set_t) || cpu < 0 || cpu >= CPU_SETSIZE)
		return EINVAL;
	if (sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)saved) != 0)
		return errno;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) != 0)
		return errno;
	return 0;
}

int rseqtrace_restore_affinity(const void *saved, size_t saved_size)
{
	if (saved_size < sizeof(cpu_set_t))
		return EINVAL;
	if (sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)saved) != 0)
		return errno;
	return 0;
}

int rseqtrace_cpu_allowed(int cpu)
{
	cpu_set_t set;
	if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(set), &set) != 0)
		return 0;
	return CPU_ISSET(cpu, &set) ? 1 : 0;
}

int rseqtrace_enter_fifo(int *saved_policy, int *saved_priority)
{
	struct sched_param param;
	*saved_policy = sched_getscheduler(0);
	if (sched_getparam(0, &param) != 0)
		param.sched_priority = 0;
	*saved_priority = param.sched_priority;
	if (*saved_policy == SCHED_FIFO || *saved_policy == SCHED_RR)
		return 0; /* already real-time: leave it alone */
	struct sched_param fifo = { .sched_priority = 1 };
	return sched_setscheduler(0, SCHED_FIFO, &fifo) == 0 ? 1 : 0;
}

void rseqtrace_leave_fifo(int saved_policy, int saved_priority)
{
	struct sched_param param = { .sched_priority = saved_priority };
	(void)sched_setscheduler(0, saved_policy < 0 ? SCHED_OTHER : saved_policy, &param);
}

int rseqtrace_getcpu(void)
{
	return sched_getcpu();
}

uintptr_t rseqtrace_producer_table;

void rseqtrace_publish_producer_table(uintptr_t address)
{
	__atomic_store_n(&rseqtrace_producer_table, address, __ATOMIC_RELEASE);
}

int rseqtrace_is_static_storage(const void *address)
{
	Dl_info info;
	return dladdr(address, &info) != 0 && info.dli_fname != NULL;
}

int rseqtrace_mutex_init_shared(void *mutex)
{
	pthread_mutexattr_t attr;
	int err = pthread_mutexattr_init(&attr);
	if (err)
		return err;
	err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	if (!err)
		err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	if (!err)
		err = pthread_mutex_init((pthread_mutex_t *)mutex, &attr);
	pthread_mutexattr_destroy(&attr);
	return err;
}

int rseqtrace_mutex_lock(void *mutex, uint64_t timeout_ns)
{
	pthread_mutex_t *m = (pthread_mutex_t *)mutex;
	int err = pthread_mutex_trylock(m);
	if (err == EBUSY) {
		struct timespec deadline;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		uint64_t ns = (uint64_t)deadline.tv_nsec + timeout_ns;
		deadline.tv_sec += (time_t)(ns / 1000000000u);
		deadline.tv_nsec = (long)(ns % 1000000000u);
		do {
			err = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &deadline);
		} while (err == EINTR);
	}
	if (err == EOWNERDEAD) {
		/* The owner died inside the locked section. The protected state is always consistent
		 * at every instruction (the head is published by the last store), so recover it. */
		err = pthread_mutex_consistent(m);
	}
	return err;
}

void rseqtrace_mutex_unlock(void *mutex)
{
	(void)pthread_mutex_unlock((pthread_mutex_t *)mutex);
}

size_t rseqtrace_mutex_size(void)
{
	return sizeof(pthread_mutex_t);
}

/* MARK: - Test hooks of the lock-free protocol */

volatile uint32_t rseqtrace_stall_event_id = 0;

void rseqtrace_set_stall_event_id(uint32_t id)
{
	rseqtrace_stall_event_id = id;
}

/* MARK: - Populating shared memory */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
_Static_assert(MADV_POPULATE_WRITE == 23, "MADV_POPULATE_WRITE is 23 in the kernel's ABI");
_Static_assert(sizeof(off_t) == 8, "fallocate takes 64-bit offsets");

int rseqtrace_populate_write(void *address, size_t length)
{
	int rc;
	do {
		rc = madvise(address, length, MADV_POPULATE_WRITE);
	} while (rc != 0 && errno == EINTR);
	return rc == 0 ? 0 : errno;
}

int rseqtrace_preallocate_beyond_end(int fd, uint64_t offset, uint64_t length)
{
	int rc;
	do {
		rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
	} while (rc != 0 && errno == EINTR);
	return rc == 0 ? 0 : errno;
}
