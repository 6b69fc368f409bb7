/*
 * CRseqTraceTestSupport: see the header for what each function does and why it is C.
 */
#ifndef _GNU_SOURCE
#error "CRseqTraceTestSupport must be compiled with _GNU_SOURCE"
#endif

#include "CRseqTraceTestSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* MARK: - Payload format */

uint64_t rtts_mix(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

#define RTTS_SEQUENCE_BITS 40
#define RTTS_SEQUENCE_MASK ((1ull << RTTS_SEQUENCE_BITS) - 1)

uint64_t rtts_payload_id(uint32_t thread, uint64_t sequence)
{
	return ((uint64_t)thread << RTTS_SEQUENCE_BITS) | (sequence & RTTS_SEQUENCE_MASK);
}

uint32_t rtts_payload_thread(uint64_t id)
{
	return (uint32_t)(id >> RTTS_SEQUENCE_BITS);
}

uint64_t rtts_payload_sequence(uint64_t id)
{
	return id & RTTS_SEQUENCE_MASK;
}

uint32_t rtts_payload_size(uint64_t id)
{
	if (rtts_payload_sequence(id) % 3 == 2)
		return 24;
	return 16 + (uint32_t)(rtts_mix(id ^ 0x51A3ull) % 105); /* 16...120 */
}

uint16_t rtts_payload_event(uint64_t id)
{
	return (uint16_t)(0x100 + (rtts_mix(id ^ 0xE7E7ull) & 0x3FF));
}

uint64_t rtts_payload_word(uint64_t id, uint32_t size, uint32_t index)
{
	if (index == 0)
		return id;
	if (index == 1)
		return rtts_mix(id ^ ((uint64_t)size << 48) ^ 0xC0FFEEull);
	return rtts_mix(id * 0x2545F4914F6CDD1Dull + index);
}

/* MARK: - Signals and per-thread timers */

static atomic_uint_fast64_t rtts_signals;

static void rtts_count_signal(int signo)
{
	(void)signo;
	atomic_fetch_add_explicit(&rtts_signals, 1, memory_order_relaxed);
}

int rtts_timer_signal(void)
{
	return SIGRTMIN + 4;
}

int rtts_install_signal_counter(void)
{
	struct sigaction action;
	memset(&action, 0, sizeof(action));
	action.sa_handler = rtts_count_signal;
	action.sa_flags = SA_RESTART;
	sigemptyset(&action.sa_mask);
	if (sigaction(rtts_timer_signal(), &action, NULL) != 0)
		return errno;
	return 0;
}

uint64_t rtts_signal_count(void)
{
	return atomic_load_explicit(&rtts_signals, memory_order_relaxed);
}

#define RTTS_MAX_TIMERS 1024
static pthread_mutex_t rtts_timers_lock = PTHREAD_MUTEX_INITIALIZER;
static timer_t rtts_timers[RTTS_MAX_TIMERS];
static unsigned char rtts_timer_used[RTTS_MAX_TIMERS];

int64_t rtts_thread_timer_create(long tid, uint64_t interval_ns)
{
	return rtts_thread_timer_create_signal(tid, interval_ns, rtts_timer_signal());
}

int64_t rtts_thread_timer_create_signal(long tid, uint64_t interval_ns, int signo)
{
	if (interval_ns == 0 || signo <= 0)
		return -EINVAL;
	struct sigevent event;
	memset(&event, 0, sizeof(event));
	event.sigev_notify = SIGEV_THREAD_ID;
	event.sigev_signo = signo;
#ifdef sigev_notify_thread_id
	event.sigev_notify_thread_id = (pid_t)tid;
#else
	event._sigev_un._tid = (pid_t)tid; /* glibc < 2.37 has no accessor macro */
#endif
	timer_t timer;
	if (timer_create(CLOCK_MONOTONIC, &event, &timer) != 0)
		return -errno;
	struct itimerspec spec;
	spec.it_interval.tv_sec = (time_t)(interval_ns / 1000000000ull);
	spec.it_interval.tv_nsec = (long)(interval_ns % 1000000000ull);
	spec.it_value = spec.it_interval;
	if (timer_settime(timer, 0, &spec, NULL) != 0) {
		int err = errno;
		timer_delete(timer);
		return -err;
	}
	pthread_mutex_lock(&rtts_timers_lock);
	for (int64_t i = 0; i < RTTS_MAX_TIMERS; i++) {
		if (!rtts_timer_used[i]) {
			rtts_timer_used[i] = 1;
			rtts_timers[i] = timer;
			pthread_mutex_unlock(&rtts_timers_lock);
			return i;
		}
	}
	pthread_mutex_unlock(&rtts_timers_lock);
	timer_delete(timer);
	return -ENOSPC;
}

int rtts_thread_timer_delete(int64_t handle)
{
	if (handle < 0 || handle >= RTTS_MAX_TIMERS)
		return EINVAL;
	pthread_mutex_lock(&rtts_timers_lock);
	if (!rtts_timer_used[handle]) {
		pthread_mutex_unlock(&rtts_timers_lock);
		return EINVAL;
	}
	timer_t timer = rtts_timers[handle];
	rtts_timer_used[handle] = 0;
	pthread_mutex_unlock(&rtts_timers_lock);
	if (timer_delete(timer) != 0)
		return errno;
	return 0;
}

/* MARK: - Affinity */

static cpu_set_t rtts_all_cpus;
static int rtts_all_count;
static int rtts_all_list[CPU_SETSIZE];

int rtts_affinity_snapshot(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	int count = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set))
			rtts_all_list[count++] = cpu;
	}
	if (count == 0)
		return -EINVAL;
	rtts_all_cpus = set;
	rtts_all_count = count;
	return count;
}

int rtts_allowed_cpu_count(void)
{
	return rtts_all_count;
}

int rtts_allowed_cpu(int n)
{
	if (n < 0 || n >= rtts_all_count)
		return -1;
	return rtts_all_list[n];
}

int rtts_set_thread_affinity(long tid, int cpu)
{
	cpu_set_t set;
	if (cpu >= 0) {
		if (cpu >= CPU_SETSIZE)
			return EINVAL;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	} else {
		if (rtts_all_count == 0)
			return EINVAL;
		set = rtts_all_cpus;
	}
	if (sched_setaffinity((pid_t)tid, sizeof(set), &set) != 0)
		return errno;
	return 0;
}

long rtts_gettid(void)
{
	return syscall(SYS_gettid);
}

/* MARK: - glibc rseq */

extern const unsigned int __rseq_size __attribute__((weak));

uint32_t rtts_glibc_rseq_size(void)
{
	return &__rseq_size ? __rseq_size : 0;
}

/* MARK: - Pipes */

/* MARK: - ptrace driver */

static uint64_t rtts_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Kills the target when the wall-time cap expires, so that every wait below may block. */
struct rtts_watchdog {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int done;
	int fired;
	pid_t pid;
	int pidfd; /* signals through it can never reach a recycled pid; -1: use kill() */
	uint64_t timeout_ms;
};

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static void *rtts_watchdog_main(void *raw)
{
	struct rtts_watchdog *w = raw;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	uint64_t ns = (uint64_t)deadline.tv_nsec + (w->timeout_ms % 1000) * 1000000ull;
	deadline.tv_sec += (time_t)(w->timeout_ms / 1000 + ns / 1000000000ull);
	deadline.tv_nsec = (long)(ns % 1000000000ull);
	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		if (pthread_cond_timedwait(&w->done_cond, &w->lock, &deadline) == ETIMEDOUT) {
			if (!w->done) {
				w->fired = 1;
				if (w->pidfd >= 0)
					(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
				else
					kill(w->pid, SIGKILL);
			}
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int rtts_wait(pid_t pid, int *status)
{
	for (;;) {
		if (waitpid(pid, status, 0) == pid)
			return 0;
		if (errno != EINTR)
			return errno;
	}
}

int rtts_run_singlestepped_ex(const char *path, char *const argv[], char *const envp[],
			      uint64_t max_steps, int stdout_fd, int stderr_fd, uint64_t timeout_ms,
			      int pin_cpu, struct rtts_singlestep_result *result)
{
	memset(result, 0, sizeof(*result));
	const uint64_t start = rtts_now_ns();
	cpu_set_t saved_affinity;
	int pinned = 0;
	if (pin_cpu >= 0 && pin_cpu < CPU_SETSIZE && sched_getaffinity(0, sizeof(saved_affinity), &saved_affinity) == 0) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(pin_cpu, &one);
		pinned = sched_setaffinity(0, sizeof(one), &one) == 0; /* the child inherits it */
	}

	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		if (pinned)
			(void)sched_setaffinity(0, sizeof(saved_affinity), &saved_affinity);
		return e;
	}
	if (pid == 0) {
		/* Child of a multi-threaded parent: async-signal-safe calls only until execve. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (stdout_fd >= 0 && dup2(stdout_fd, 1) < 0)
			_exit(126);
		if (stderr_fd >= 0 && dup2(stderr_fd, 2) < 0)
			_exit(126);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
			_exit(125);
		execve(path, argv, envp);
		_exit(127);
	}

	struct rtts_watchdog watchdog = {
		.lock = PTHREAD_MUTEX_INITIALIZER, .done = 0, .fired = 0, .pid = pid,
		.pidfd = (int)syscall(SYS_pidfd_open, pid, 0), .timeout_ms = timeout_ms,
	};
	pthread_condattr_t cattr;
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&watchdog.done_cond, &cattr);
	pthread_condattr_destroy(&cattr);
	pthread_t watchdog_thread;
	int watching = timeout_ms > 0 && pthread_create(&watchdog_thread, NULL, rtts_watchdog_main, &watchdog) == 0;

	/* Phase 0: until the first SIGSTOP (the exec SIGTRAP comes first). Phase 1: single-stepping
	 * until the second SIGSTOP. Phase 2: running to the exit. */
	int phase = 0;
	int status = 0;
	int options_set = 0;
	int failure = 0;
	uint64_t stepping_start = 0;
	for (;;) {
		int err = rtts_wait(pid, &status);
		if (err != 0) {
			failure = err;
			kill(pid, SIGKILL);
			(void)rtts_wait(pid, &status);
			break;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			break;
		if (!WIFSTOPPED(status))
			continue;
		int sig = WSTOPSIG(status);
		if (!options_set) {
			/* Kill the target if we die: never leave a stopped, traced process behind. */
			(void)ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)PTRACE_O_EXITKILL);
			options_set = 1;
		}
		int deliver = 0;
		long request = PTRACE_CONT;
		if (phase == 0) {
			if (sig == SIGSTOP) {
				stepping_start = rtts_now_ns();
				if (max_steps) {
					phase = 1;
					request = PTRACE_SINGLESTEP;
				} else {
					result->reached_step_cap = 1;
					phase = 2;
				}
			} else if (sig != SIGTRAP) {
				deliver = sig;
				result->forwarded_signals++;
			}
		} else if (phase == 1) {
			if (sig == SIGSTOP) {
				result->saw_second_stop = 1;
				result->stepping_ns = rtts_now_ns() - stepping_start;
				phase = 2;
			} else {
				if (sig == SIGTRAP) {
					result->steps++;
				} else {
					deliver = sig;
					result->forwarded_signals++;
				}
				if (result->steps >= max_steps) {
					result->reached_step_cap = 1;
					result->stepping_ns = rtts_now_ns() - stepping_start;
					phase = 2;
				} else {
					request = PTRACE_SINGLESTEP;
				}
			}
		} else {
			if (sig == SIGSTOP)
				result->saw_second_stop = 1;
			else if (sig != SIGTRAP) {
				deliver = sig;
				result->forwarded_signals++;
			}
		}
		if (ptrace((enum __ptrace_request)request, pid, NULL, (void *)(long)deliver) != 0) {
			int e = errno;
			if (e == ESRCH)
				continue; /* killed meanwhile (watchdog): the next wait reports it */
			failure = e;
			kill(pid, SIGKILL);
			(void)rtts_wait(pid, &status);
			break;
		}
	}
	if (watching) {
		pthread_mutex_lock(&watchdog.lock);
		watchdog.done = 1;
		pthread_cond_signal(&watchdog.done_cond);
		pthread_mutex_unlock(&watchdog.lock);
		pthread_join(watchdog_thread, NULL);
	}
	pthread_cond_destroy(&watchdog.done_cond);
	if (watchdog.pidfd >= 0)
		close(watchdog.pidfd);
	if (pinned)
		(void)sched_setaffinity(0, sizeof(saved_affinity), &saved_affinity);
	result->timed_out = watchdog.fired;
	result->exit_status = status;
	result->total_ns = rtts_now_ns() - start;
	if (phase == 1 && !result->stepping_ns)
		result->stepping_ns = rtts_now_ns() - stepping_start;
	return failure;
}

int rtts_run_singlestepped(const char *path, char *const argv[], char *const envp[],
			   uint64_t max_steps, uint64_t *steps_out, int *exit_status_out)
{
	struct rtts_singlestep_result result;
	int err = rtts_run_singlestepped_ex(path, argv, envp, max_steps, -1, -1, 0, -1, &result);
	if (steps_out)
		*steps_out = result.steps;
	if (exit_status_out)
		*exit_status_out = result.exit_status;
	return err;
}
