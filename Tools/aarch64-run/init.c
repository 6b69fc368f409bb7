/*
 * The /init of the emulated aarch64 test (Tools/run-aarch64): a static aarch64 program run by an
 * arm64 Linux kernel under qemu-system-aarch64, with no root filesystem.
 *
 * It drives every critical section of rseqtrace-ops-aarch64.h, on cpu_id and on mm_cid, through
 * CRseqTrace's shim (rseqtrace_probe, rseqtrace_register_current_thread, rseqtrace_pin_to_cpu):
 *   - THREADS workers per section and index variant on the emulated CPUs, preempted by the
 *     scheduler tick, sched_yield, migrations (rseqtrace_pin_to_cpu to a random CPU), a
 *     process-wide interval timer (SIGALRM, 5 ms) and a signaller thread (SIGUSR1 to each worker
 *     that committed since its last one, every 300 us); the
 *     signal handler runs a critical section of its own, and checks the interrupted program counter:
 *     it must never lie inside a critical section (the kernel moves it to the abort handler; each
 *     time it does so is counted as a kernel restart);
 *   - the race-widening delay of RSEQTRACE_INJECTION inside every section (rseqtrace_inject_loops);
 *   - exactness: every record of every thread found exactly once, intact, with non-decreasing
 *     stamps per ring; heads and counters equal to what the threads committed;
 *   - rseqtrace_cas_head_stamp (ldaxp/stlxp) with concurrent threads: no lost or torn update.
 * /init runs itself, and /init-O0 (the same program unoptimised) when present, each in two
 * registrations (fork + execve): glibc's (static glibc registers rseq) and the shim's own
 * (GLIBC_TUNABLES=glibc.pthread.rseq=0); then it powers the machine off.
 * Results are lines starting with "RSEQTRACE-AARCH64 " on the console, checked by
 * Tools/python/check_aarch64_run.py. Arguments (or the kernel command line's RSEQTRACE_ITERATIONS
 * and RSEQTRACE_INJECT_LOOPS): iterations per thread and section (default 400), delay loops
 * (default 256).
 */
#include "CRseqTrace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define TAG "RSEQTRACE-AARCH64 "
#define THREADS 4
#define MAX_INDEX 16
#define MAX_PAYLOAD 5
#define WRONG (1ULL << 62)
#define WRONG_INDEX 0x7777u

/* Record words: type (4 bits) | payload words (4) | thread (8) | sequence (48). */
enum { T_STAMPED = 1, T_PAD, T_BEGIN, T_EVENT, T_COPIED, T_PLAIN };
enum { KIND_RECORDS, KIND_COUNT, KIND_HEAD };

struct ring {
	uint64_t head;
	uint64_t gen;      /* second compared value; top bit set (unsigned compares) */
	uint64_t count;    /* rseqtrace_load_add_store */
	uint64_t sigcount; /* the signal handler's rseqtrace_load_add_store */
	uint64_t *slots;
	uint64_t capacity;
} __attribute__((aligned(64)));

struct worker {
	int number;
	pid_t tid;
	uint64_t commits, ne, aborts, refused, added;
	uint64_t sig_added, sig_aborts, sig_gave_up, sig_unregistered, signals, restarts, inside;
	uint64_t migrations;
	uint64_t progress; /* commits, atomically: the signaller waits for it to move */
	char pin_saved[128];
};

struct op {
	const char *name;
	void (*run)(uint64_t seq);
	int kind;
};

static struct ring rings[MAX_INDEX];
static uint64_t iterations = 400;
static uint32_t inject_loops = 256;
static const struct op *current_op;
static void (*current_signal_add)(void);
static struct worker workers[THREADS];
static __thread struct worker *me;
static volatile int failed;
static volatile int stop_signaller;
static int ncpus;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if (n > (int)sizeof(line) - 2) n = sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&print_lock);
	(void)!write(1, line, (size_t)n);
	pthread_mutex_unlock(&print_lock);
}

/* Not for signal handlers. Reports the first few failures and marks the run failed. */
static void fail_at(const char *fmt, ...)
{
	static int reported;
	char text[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	failed = 1;
	if (__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED) < 20)
		say(TAG "error %s", text);
}

static uint64_t record_word(uint64_t type, uint64_t nfull, uint64_t seq)
{
	return type << 60 | nfull << 56 | (uint64_t)me->number << 48 | seq;
}

static uint64_t payload_word(uint64_t word, uint64_t k)
{
	return (word ^ 0x5bd1e9955bd1e995ULL) * (k + 3);
}

static int room(struct ring *r, uint64_t h, uint64_t words)
{
	if (h + words <= r->capacity) return 1;
	fail_at("%s: ring full (head %llu, capacity %llu)", current_op->name, (unsigned long long)h,
		(unsigned long long)r->capacity);
	return 0;
}

#define V(name) name##__cpu_id
#define V_NAME "cpu_id"
#define V_INDEX() rseqtrace_current_cpu_id()
#include "variant.h"
#undef V
#undef V_NAME
#undef V_INDEX
#define V(name) name##__mm_cid
#define V_NAME "mm_cid"
#define V_INDEX() rseqtrace_current_mm_cid()
#include "variant.h"
#undef V
#undef V_NAME
#undef V_INDEX

/* MARK: - Signals: preemption, and the kernel's restarts seen from the handler */

struct rseq_descriptor {
	uint32_t version, flags;
	uint64_t start_ip, post_commit_offset, abort_ip;
};
/* Every critical section's descriptor address (the ops header's __rseq_cs_ptr_array entries). */
extern const struct rseq_descriptor *const __start___rseq_cs_ptr_array[] __attribute__((weak));
extern const struct rseq_descriptor *const __stop___rseq_cs_ptr_array[] __attribute__((weak));

static void on_signal(int sig, siginfo_t *info, void *context)
{
	(void)sig;
	(void)info;
	struct worker *w = me;
	if (!w) return; /* the main or signaller thread */
	w->signals++;
	uint64_t pc = ((ucontext_t *)context)->uc_mcontext.pc;
	for (const struct rseq_descriptor *const *d = __start___rseq_cs_ptr_array; d < __stop___rseq_cs_ptr_array; d++) {
		if (pc - (*d)->start_ip < (*d)->post_commit_offset) w->inside++;
		if (pc == (*d)->abort_ip) w->restarts++;
	}
	void (*add)(void) = __atomic_load_n(&current_signal_add, __ATOMIC_ACQUIRE);
	if (add) add();
}

/* Sends SIGUSR1 to each worker every 300 us of guest time, but only once the worker has committed
 * since the previous one: however slowly the emulation runs, a section is not aborted forever. */
static void *signaller(void *unused)
{
	(void)unused;
	pid_t pid = getpid();
	uint64_t seen_progress[THREADS] = { 0 };
	while (!__atomic_load_n(&stop_signaller, __ATOMIC_RELAXED)) {
		for (int i = 0; i < THREADS; i++) {
			pid_t tid = __atomic_load_n(&workers[i].tid, __ATOMIC_ACQUIRE);
			uint64_t progress = __atomic_load_n(&workers[i].progress, __ATOMIC_RELAXED);
			if (tid > 0 && progress != seen_progress[i]) {
				seen_progress[i] = progress;
				(void)syscall(SYS_tgkill, pid, tid, SIGUSR1);
			}
		}
		struct timespec ts = { 0, 300 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* MARK: - Workers */

static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void *worker_main(void *arg)
{
	me = arg;
	int err = rseqtrace_register_current_thread();
	if (err != 0) {
		fail_at("worker %d: rseqtrace_register_current_thread failed: %s", me->number, strerror(err));
		return NULL;
	}
	__atomic_store_n(&me->tid, (pid_t)rseqtrace_gettid(), __ATOMIC_RELEASE);
	uint64_t rng = 0x1234 + (uint64_t)me->number * 77;
	for (uint64_t seq = 0; seq < iterations && !failed; seq++) {
		uint64_t r = next_random(&rng);
		if ((r & 31) == 0) sched_yield();
		if (((r >> 8) & 63) == 0 && ncpus > 1) {
			int cpu = (int)((r >> 16) % (uint64_t)ncpus);
			if (rseqtrace_pin_to_cpu(cpu, me->pin_saved, sizeof(me->pin_saved)) == 0) {
				me->migrations++;
				(void)rseqtrace_restore_affinity(me->pin_saved, sizeof(me->pin_saved));
			}
		}
		current_op->run(seq);
		__atomic_store_n(&me->progress, seq + 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&me->tid, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* MARK: - Verification */

static unsigned char *seen; /* [THREADS][iterations] */

static void mark(const char *where, uint64_t word)
{
	uint64_t thread = (word >> 48) & 0xff, seq = word & ((1ULL << 48) - 1);
	if (thread >= THREADS || seq >= iterations) {
		fail_at("%s: corrupt record word 0x%016llx", where, (unsigned long long)word);
		return;
	}
	unsigned char *s = &seen[thread * iterations + seq];
	if (*s) fail_at("%s: record 0x%016llx found twice", where, (unsigned long long)word);
	*s = 1;
}

/* Walks ring `i` record by record; returns the records found. */
static uint64_t verify_ring(const char *vname, int i)
{
	struct ring *r = &rings[i];
	uint64_t found = 0, last_stamp = 0;
	char where[160];
	snprintf(where, sizeof(where), "%s %s ring %d", vname, current_op->name, i);
	for (uint64_t p = 0; p < r->head && !failed;) {
		uint64_t *s = &r->slots[p], word = s[0], type = word >> 60, nfull = (word >> 56) & 15, len;
		uint64_t stamp = 0;
		switch (type) {
		case T_STAMPED: case T_EVENT: len = 2; stamp = s[1]; break;
		case T_PAD: case T_PLAIN: len = 1; break;
		case T_BEGIN:
			len = 3;
			stamp = s[1];
			if (s[2] != ~word) fail_at("%s: begin record at %llu has lost=0x%llx", where, (unsigned long long)p,
						    (unsigned long long)s[2]);
			break;
		case T_COPIED:
			len = 3 + nfull;
			stamp = s[1];
			for (uint64_t k = 0; k <= nfull && p + 2 + k < r->head; k++)
				if (s[2 + k] != payload_word(word, k))
					fail_at("%s: payload word %llu of record 0x%llx is 0x%llx", where, (unsigned long long)k,
						(unsigned long long)word, (unsigned long long)s[2 + k]);
			break;
		default:
			fail_at("%s: unknown record word 0x%016llx at %llu", where, (unsigned long long)word,
				(unsigned long long)p);
			return found;
		}
		if (p + len > r->head) {
			fail_at("%s: record at %llu runs past the head %llu", where, (unsigned long long)p,
				(unsigned long long)r->head);
			return found;
		}
		if (type == T_STAMPED || type == T_BEGIN || type == T_EVENT || type == T_COPIED) {
			if (stamp == 0 || stamp < last_stamp)
				fail_at("%s: stamp 0x%llx at %llu is zero or below the previous 0x%llx", where,
					(unsigned long long)stamp, (unsigned long long)p, (unsigned long long)last_stamp);
			last_stamp = stamp;
		}
		/* One opening is pad + begin + event (or begin + event): the event word carries the
		 * identity; pad and begin must belong to the same opening. */
		if (type == T_PAD || type == T_BEGIN) {
			uint64_t next = s[len];
			uint64_t expect_type = type == T_PAD ? T_BEGIN : T_EVENT;
			if (p + len >= r->head || next >> 60 != expect_type || (next & ~(15ULL << 60)) != (word & ~(15ULL << 60)))
				fail_at("%s: record 0x%llx at %llu is not followed by its opening's next record", where,
					(unsigned long long)word, (unsigned long long)p);
		} else {
			mark(where, word);
			found++;
		}
		p += len;
	}
	return found;
}

struct phase_result {
	uint64_t records, commits, aborts, ne, refused, restarts, signals, sig_added, migrations;
};

static void run_phase(const char *vname, const struct op *op, void (*signal_add)(void), struct phase_result *total)
{
	uint64_t capacity = THREADS * iterations * (3 + MAX_PAYLOAD) + 8;
	for (int i = 0; i < MAX_INDEX; i++) {
		rings[i].head = 0;
		rings[i].gen = 0x8000000000000001ULL + (uint64_t)i * 2;
		rings[i].count = 0;
		rings[i].sigcount = 0;
		rings[i].capacity = capacity;
		memset(rings[i].slots, 0, capacity * sizeof(uint64_t));
	}
	memset(workers, 0, sizeof(workers));
	memset(seen, 0, THREADS * iterations);
	current_op = op;
	__atomic_store_n(&current_signal_add, signal_add, __ATOMIC_RELEASE);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_t threads[THREADS];
	for (int i = 0; i < THREADS; i++) {
		workers[i].number = i;
		if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0) {
			fail_at("pthread_create failed");
			return;
		}
	}
	for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	struct phase_result p = { 0 };
	uint64_t added = 0, sig_added = 0, heads = 0, counts = 0, sigcounts = 0, inside = 0, gave_up = 0;
	for (int i = 0; i < THREADS; i++) {
		struct worker *w = &workers[i];
		p.commits += w->commits;
		p.aborts += w->aborts;
		p.ne += w->ne;
		p.refused += w->refused;
		p.restarts += w->restarts;
		p.signals += w->signals;
		p.migrations += w->migrations;
		added += w->added;
		sig_added += w->sig_added;
		inside += w->inside;
		gave_up += w->sig_gave_up;
	}
	p.sig_added = sig_added;
	int used = 0;
	for (int i = 0; i < MAX_INDEX; i++) {
		heads += rings[i].head;
		counts += rings[i].count;
		sigcounts += rings[i].sigcount;
		if (rings[i].head || rings[i].count) used++;
		if (op->kind == KIND_RECORDS) p.records += verify_ring(vname, i);
	}
	if (op->kind == KIND_RECORDS) {
		for (uint64_t k = 0; k < THREADS * iterations; k++)
			if (!seen[k]) {
				fail_at("%s %s: record of thread %llu seq %llu missing", vname, op->name,
					(unsigned long long)(k / iterations), (unsigned long long)(k % iterations));
				break;
			}
	} else {
		p.records = op->kind == KIND_COUNT ? counts : heads;
		if (p.records != added)
			fail_at("%s %s: counters hold %llu, threads committed %llu", vname, op->name,
				(unsigned long long)p.records, (unsigned long long)added);
	}
	if (p.commits != THREADS * iterations)
		fail_at("%s %s: %llu commits, expected %llu", vname, op->name, (unsigned long long)p.commits,
			(unsigned long long)(THREADS * iterations));
	if (sigcounts != sig_added)
		fail_at("%s %s: signal handler counters hold %llu, handlers committed %llu", vname, op->name,
			(unsigned long long)sigcounts, (unsigned long long)sig_added);
	if (inside)
		fail_at("%s %s: %llu signals were delivered with the program counter inside a critical section",
			vname, op->name, (unsigned long long)inside);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	say(TAG "op index=%s name=%s records=%llu commits=%llu aborts=%llu ne=%llu refused=%llu restarts=%llu "
	    "signals=%llu sig_commits=%llu sig_gave_up=%llu migrations=%llu indexes=%d ms=%ld",
	    vname, op->name, (unsigned long long)p.records, (unsigned long long)p.commits,
	    (unsigned long long)p.aborts, (unsigned long long)p.ne, (unsigned long long)p.refused,
	    (unsigned long long)p.restarts, (unsigned long long)p.signals, (unsigned long long)sig_added,
	    (unsigned long long)gave_up, (unsigned long long)p.migrations, used, ms);
	total->records += p.records;
	total->commits += p.commits;
	total->aborts += p.aborts;
	total->restarts += p.restarts;
	total->signals += p.signals;
}

/* MARK: - rseqtrace_cas_head_stamp */

static uint64_t pair[2] __attribute__((aligned(16)));
#define CAS_STAMP(h) ((h) * 0x9e3779b97f4a7c15ULL ^ 0xa5a5a5a5a5a5a5a5ULL)

struct cas_worker {
	uint64_t successes, failures, torn;
};

static void *cas_main(void *arg)
{
	struct cas_worker *w = arg;
	uint64_t head = ~0ULL, stamp = 0;
	(void)rseqtrace_cas_head_stamp(pair, &head, &stamp, 0, 0); /* fails: loads the pair */
	while (w->successes < iterations * 4) {
		if (CAS_STAMP(head) != stamp) w->torn++;
		if (rseqtrace_cas_head_stamp(pair, &head, &stamp, head + 1, CAS_STAMP(head + 1))) {
			w->successes++;
			head++;
			stamp = CAS_STAMP(head);
			if ((w->successes & 63) == 0) sched_yield();
		} else {
			w->failures++;
		}
	}
	return NULL;
}

static void run_cas(void)
{
	pair[0] = 0;
	pair[1] = CAS_STAMP(0);
	struct cas_worker cw[THREADS] = { 0 };
	pthread_t threads[THREADS];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, cas_main, &cw[i]);
	for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t successes = 0, failures = 0, torn = 0;
	for (int i = 0; i < THREADS; i++) {
		successes += cw[i].successes;
		failures += cw[i].failures;
		torn += cw[i].torn;
	}
	if (pair[0] != successes || pair[1] != CAS_STAMP(pair[0]))
		fail_at("rseqtrace_cas_head_stamp: pair {%llu, 0x%llx} after %llu successful swaps", (unsigned long long)pair[0],
			(unsigned long long)pair[1], (unsigned long long)successes);
	if (torn) fail_at("rseqtrace_cas_head_stamp: %llu torn pairs read", (unsigned long long)torn);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	say(TAG "cas swaps=%llu failed_swaps=%llu torn=%llu head=%llu ms=%ld", (unsigned long long)successes,
	    (unsigned long long)failures, (unsigned long long)torn, (unsigned long long)pair[0], ms);
}

/* MARK: - One run (one registration) */

#if defined(__OPTIMIZE__)
#define BUILD "optimized"
#else
#define BUILD "unoptimized"
#endif

static int run_tests(void)
{
	struct rseqtrace_probe_result probe = rseqtrace_probe(0);
	const char *mode = probe.registration == RSEQTRACE_REGISTRATION_GLIBC ? "glibc"
			   : probe.registration == RSEQTRACE_REGISTRATION_SELF ? "self" : "none";
	cpu_set_t set;
	ncpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	say(TAG "run build=" BUILD " registration=%s feature_size=%u glibc_rseq_size=%u errno=%d cpus=%d threads=%d iterations=%llu "
	    "inject_loops=%u cntfrq=%llu",
	    mode, probe.feature_size, probe.glibc_rseq_size, probe.kernel_errno, ncpus, THREADS,
	    (unsigned long long)iterations, inject_loops, (unsigned long long)rseqtrace_cycles_frequency_hint());
	if (probe.registration == RSEQTRACE_REGISTRATION_NONE) {
		fail_at("rseq is not usable (errno %d)", probe.kernel_errno);
		return 1;
	}
	if (probe.feature_size < 28) {
		fail_at("the kernel does not maintain mm_cid (feature size %u)", probe.feature_size);
		return 1;
	}
	rseqtrace_set_inject_loops(inject_loops);
	seen = calloc(THREADS, iterations);
	for (int i = 0; i < MAX_INDEX; i++)
		rings[i].slots = calloc(THREADS * iterations * (3 + MAX_PAYLOAD) + 8, sizeof(uint64_t));

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval timer = { { 0, 5000 }, { 0, 5000 } };
	setitimer(ITIMER_REAL, &timer, NULL);
	pthread_t sig_thread;
	pthread_create(&sig_thread, NULL, signaller, NULL);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct phase_result total = { 0 };
	size_t nops = sizeof(ops__cpu_id) / sizeof(ops__cpu_id[0]);
	for (size_t k = 0; k < nops && !failed; k++)
		run_phase("cpu_id", &ops__cpu_id[k], signal_add__cpu_id, &total);
	for (size_t k = 0; k < nops && !failed; k++)
		run_phase("mm_cid", &ops__mm_cid[k], signal_add__mm_cid, &total);
	__atomic_store_n(&stop_signaller, 1, __ATOMIC_RELAXED);
	pthread_join(sig_thread, NULL);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	__atomic_store_n(&current_signal_add, NULL, __ATOMIC_RELEASE);
	if (!failed) run_cas();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	size_t sections = (size_t)(__stop___rseq_cs_ptr_array - __start___rseq_cs_ptr_array);
	say(TAG "end build=" BUILD " registration=%s status=%s records=%llu commits=%llu aborts=%llu restarts=%llu signals=%llu "
	    "descriptors=%zu ms=%ld",
	    mode, failed ? "FAIL" : "ok", (unsigned long long)total.records, (unsigned long long)total.commits,
	    (unsigned long long)total.aborts, (unsigned long long)total.restarts, (unsigned long long)total.signals,
	    sections, ms);
	return failed ? 1 : 0;
}

/* MARK: - /init */

static void open_console(void)
{
	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0 && errno != EBUSY) return;
	int fd = open("/dev/console", O_RDWR);
	if (fd < 0) return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2) close(fd);
}

int main(int argc, char **argv)
{
	const char *iter = argc > 1 ? argv[1] : getenv("RSEQTRACE_ITERATIONS");
	const char *loops = argc > 2 ? argv[2] : getenv("RSEQTRACE_INJECT_LOOPS");
	if (iter && atoll(iter) > 0) iterations = (uint64_t)atoll(iter);
	if (loops && atoll(loops) >= 0) inject_loops = (uint32_t)atoll(loops);
	if (getenv("RSEQTRACE_CHILD")) return run_tests();

	/* As pid 1: open the console, run both registrations as children, power off. */
	if (getpid() == 1) open_console();
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	say(TAG "start iterations=%llu inject_loops=%u", (unsigned long long)iterations, inject_loops);
	static const char *const envs[2][4] = {
		{ "RSEQTRACE_CHILD=1", "REGISTRATION=glibc", NULL, NULL },
		{ "RSEQTRACE_CHILD=1", "REGISTRATION=self", "GLIBC_TUNABLES=glibc.pthread.rseq=0", NULL },
	};
	/* The optimised build (this program) and, when present, the unoptimised one. */
	const char *programs[2] = { argv[0], "/init-O0" };
	int nprograms = access(programs[1], X_OK) == 0 ? 2 : 1;
	int status_all = 0;
	char iter_arg[32], loops_arg[32];
	snprintf(iter_arg, sizeof(iter_arg), "%llu", (unsigned long long)iterations);
	snprintf(loops_arg, sizeof(loops_arg), "%u", inject_loops);
	for (int p = 0; p < nprograms; p++) {
		for (int k = 0; k < 2; k++) {
			pid_t pid = fork();
			if (pid == 0) {
				char *args[] = { (char *)programs[p], iter_arg, loops_arg, NULL };
				execve(programs[p], args, (char *const *)envs[k]);
				say(TAG "error execve %s failed: %s", programs[p], strerror(errno));
				_exit(127);
			}
			int status = 0;
			if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				say(TAG "error %s (%s) ended with status 0x%x", programs[p], envs[k][1], status);
				status_all = 1;
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	say(TAG "done status=%s ms=%ld", status_all ? "FAIL" : "ok", ms);
	if (getpid() == 1) {
		sync();
		reboot(RB_POWER_OFF);
	}
	return status_all;
}
