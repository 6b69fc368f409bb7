#include "CRseqTraceSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(pid_t) == sizeof(int), "pid_t is passed to pidfd_open as an int");

int rseqtrace_support_pipe_cloexec(int fds[2])
{
	return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
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
