/*
 * CRseqTraceTestSupport — C helpers for the process-level stress tests (prefix `rtts_`).
 *
 * Only what Swift cannot express comfortably lives here: `sigevent` unions (per-thread POSIX
 * timers), CPU_SET macros, variadic ptrace(2), fork/exec in a multi-threaded parent, and the
 * payload format shared by the helper executable and the test target (one definition, so that a
 * writer and a verifier can never disagree about it).
 *
 * Functions return 0 or a positive errno value unless stated otherwise. No function takes a Swift
 * callback; pointers appear only where ptrace/exec need them.
 */
#ifndef CRSEQTRACE_TEST_SUPPORT_H
#define CRSEQTRACE_TEST_SUPPORT_H

#include <stdint.h>
#include <stddef.h>

/* MARK: - Payload format of the test workloads
 *
 * A record payload is `size` bytes (16...120), seen as little-endian 64-bit words:
 *   word 0        id = thread << 40 | sequence (sequence < 2^40)
 *   word 1        check word: mix(id, size)
 *   word k >= 2   filler derived from (id, k)
 * The last word may be partial: only its low `size % 8` bytes are written. Every byte of the
 * payload is a function of the id, so a torn or stale copy anywhere in it is detected.
 * Every third record (sequence % 3 == 2) has exactly 24 bytes, so it can be written as a fixed
 * size value (`write(eventID:value:)`); the others vary in size. The event id is also derived
 * from the id.
 */
uint64_t rtts_mix(uint64_t x);
uint64_t rtts_payload_id(uint32_t thread, uint64_t sequence);
uint32_t rtts_payload_thread(uint64_t id);
uint64_t rtts_payload_sequence(uint64_t id);
/* Payload size in bytes, 16...120. */
uint32_t rtts_payload_size(uint64_t id);
uint16_t rtts_payload_event(uint64_t id);
/* Word `index` of the payload of `id` (for the last, partial word: the low bytes are the payload). */
uint64_t rtts_payload_word(uint64_t id, uint32_t size, uint32_t index);

/* MARK: - Signal storms: per-thread POSIX timers (SIGEV_THREAD_ID) */

/* The real-time signal the timers send (SIGRTMIN + 4). */
int rtts_timer_signal(void);
/* Installs (once) an SA_RESTART handler for rtts_timer_signal() that only counts. */
int rtts_install_signal_counter(void);
/* Signals handled so far by this process. */
uint64_t rtts_signal_count(void);
/* Creates and arms a CLOCK_MONOTONIC timer sending rtts_timer_signal() to thread `tid` of this
 * process every `interval_ns`. Returns a handle >= 0, or -errno. */
int64_t rtts_thread_timer_create(long tid, uint64_t interval_ns);
/* The same timer sending `signo` instead (the caller installs its handler). */
int64_t rtts_thread_timer_create_signal(long tid, uint64_t interval_ns, int signo);
/* Disarms and deletes a timer made by rtts_thread_timer_create. */
int rtts_thread_timer_delete(int64_t handle);

/* MARK: - CPU affinity of other threads */

/* Remembers the calling thread's allowed CPUs as "all CPUs" (call once, early, from the main
 * thread). Returns how many CPUs are allowed (>= 1), or -errno. */
int rtts_affinity_snapshot(void);
/* Number of CPUs in the snapshot, and the n-th of them (0-based), or -1. */
int rtts_allowed_cpu_count(void);
int rtts_allowed_cpu(int n);
/* sched_setaffinity(tid): only `cpu` when cpu >= 0, else every CPU of the snapshot. */
int rtts_set_thread_affinity(long tid, int cpu);
long rtts_gettid(void);

/* MARK: - glibc's rseq registration, as seen by this process */

/* __rseq_size as glibc exports it: 0 when glibc did not register rseq (or predates 2.35). */
uint32_t rtts_glibc_rseq_size(void);

/* MARK: - Running a program under ptrace, single-stepping one stretch of it */

struct rtts_singlestep_result {
	uint64_t steps;          /* PTRACE_SINGLESTEP stops taken between the two SIGSTOPs */
	int exit_status;         /* raw wait status of the target */
	int reached_step_cap;    /* 1: stepping stopped at max_steps, the rest ran with PTRACE_CONT */
	int saw_second_stop;     /* 1: the target's second SIGSTOP was seen */
	int timed_out;           /* 1: the wall-time cap expired; the target was killed */
	uint64_t stepping_ns;    /* wall time spent single-stepping */
	uint64_t total_ns;       /* wall time from fork to exit */
	int forwarded_signals;   /* other signals passed on to the target */
};

/* fork()s, makes the child PTRACE_TRACEME and execve(path, argv, envp); lets it run (PTRACE_CONT)
 * until its first SIGSTOP, then PTRACE_SINGLESTEPs it (at most max_steps steps) until its second
 * SIGSTOP, then PTRACE_CONTs it to its exit. The two SIGSTOPs are not delivered to it; any other
 * signal is. Returns 0 when the target was waited for (see result), or an errno value.
 * stdout_fd / stderr_fd >= 0 become the child's stdout / stderr. timeout_ms > 0 bounds the whole
 * run (the target is SIGKILLed when it expires). pin_cpu >= 0 runs the tracer (the calling thread,
 * restored afterwards) and the target on that one CPU: each step is then a local context switch
 * instead of a cross-CPU wake-up, several times faster in a VM. */
int rtts_run_singlestepped_ex(const char *path, char *const argv[], char *const envp[],
			      uint64_t max_steps, int stdout_fd, int stderr_fd, uint64_t timeout_ms,
			      int pin_cpu, struct rtts_singlestep_result *result);

/* The simple form: returns 0 or an errno value; the child's output goes where ours goes. */
int rtts_run_singlestepped(const char *path, char *const argv[], char *const envp[],
			   uint64_t max_steps, uint64_t *steps_out, int *exit_status_out);

#endif /* CRSEQTRACE_TEST_SUPPORT_H */
