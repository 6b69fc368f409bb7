#ifndef CRSEQTRACE_SUPPORT_H
#define CRSEQTRACE_SUPPORT_H

/*
 * CRseqTraceSupport — the process-management system calls the Swift support module cannot reach
 * through Glibc's Swift module (pipe2 and signalfd need _GNU_SOURCE;
 * pidfd_open and gettid have no wrapper in the imported glibc 2.36 headers). Nothing else belongs here.
 */

#include <sys/types.h>
#include <stdint.h>

/// pipe2(fds, O_CLOEXEC): both ends are close-on-exec from the start, so a child spawned by another
/// thread at the same moment cannot inherit them. Returns 0, or -errno.
int rseqtrace_support_pipe_cloexec(int fds[2]);

/// pidfd_open(pid, 0) (Linux 5.3+): a descriptor that polls readable once `pid` has exited.
/// The descriptor is close-on-exec. Returns it, or -errno (-ENOSYS on older kernels).
int rseqtrace_support_pidfd_open(pid_t pid);

/// Blocks `signals` (an array of `count` signal numbers) in the calling thread and returns a
/// non-blocking, close-on-exec signalfd that reads them. Returns the descriptor, or -errno.
int rseqtrace_support_signalfd_block(const int *signals, int count);

/// Reads one signal from a signalfd: returns its number, 0 when none is pending, or -errno.
int rseqtrace_support_signalfd_read(int fd);

/// gettid(): the calling thread's id (what LTTng and the kernel call its tid / vtid).
int rseqtrace_support_gettid(void);

/// Unblocks `signals` (an array of `count` signal numbers) in the calling thread. Returns 0, or -errno.
int rseqtrace_support_unblock_signals(const int *signals, int count);

#endif
