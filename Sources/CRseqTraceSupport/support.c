#include "CRseqTraceSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(pid_t) == sizeof(int), "pid_t is passed to pidfd_open as an int");
_Static_assert(sizeof(struct signalfd_siginfo) == 128, "a signalfd read returns 128-byte records");

int rseqtrace_support_pipe_cloexec(int fds[2])
{
	return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int rseqtrace_support_gettid(void)
{
	return (int)syscall(SYS_gettid);
}

int rseqtrace_support_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	long fd = syscall(SYS_pidfd_open, pid, 0);
	return fd >= 0 ? (int)fd : -errno;
#else
	(void)pid;
	return -ENOSYS;
#endif
}

static int rseqtrace_support_signal_set(const int *signals, int count, sigset_t *set)
{
	sigemptyset(set);
	for (int i = 0; i < count; i++) {
		if (sigaddset(set, signals[i]) != 0)
			return -errno;
	}
	return 0;
}

int rseqtrace_support_signalfd_block(const int *signals, int count)
{
	sigset_t set;
	int rc = rseqtrace_support_signal_set(signals, count, &set);
	if (rc != 0)
		return rc;
	rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (rc != 0)
		return -rc;
	int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0) {
		int error = errno;
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		return -error;
	}
	return fd;
}

int rseqtrace_support_signalfd_read(int fd)
{
	struct signalfd_siginfo info;
	for (;;) {
		ssize_t got = read(fd, &info, sizeof info);
		if (got == (ssize_t)sizeof info)
			return (int)info.ssi_signo;
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return got < 0 ? -errno : -EIO;
	}
}

int rseqtrace_support_unblock_signals(const int *signals, int count)
{
	sigset_t set;
	int rc = rseqtrace_support_signal_set(signals, count, &set);
	if (rc != 0)
		return rc;
	rc = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return -rc;
}
