/*
 * Anonymous memory files and control sockets: the live-tracing system calls whose flags or
 * control-message macros Swift cannot reach (see the declarations in CRseqTrace.h).
 */
#ifndef _GNU_SOURCE
#error "CRseqTrace must be compiled with _GNU_SOURCE"
#endif

#include "CRseqTrace.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <pthread.h>
#include <unistd.h>

_Static_assert(RSEQTRACE_SEAL_SEAL == F_SEAL_SEAL, "seal values match the kernel's");
_Static_assert(RSEQTRACE_SEAL_SHRINK == F_SEAL_SHRINK, "seal values match the kernel's");
_Static_assert(RSEQTRACE_SEAL_GROW == F_SEAL_GROW, "seal values match the kernel's");
_Static_assert(RSEQTRACE_CONTROL_NAME_MAX == sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
	       "an abstract name fills sun_path after its leading NUL");
_Static_assert(sizeof(pid_t) == sizeof(int32_t) && sizeof(uid_t) == sizeof(uint32_t),
	       "credentials are passed as 32-bit integers");

int rseqtrace_memfd_create(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd >= 0 ? fd : -errno;
}

int rseqtrace_add_seals(int fd, int seals)
{
	return fcntl(fd, F_ADD_SEALS, seals) == 0 ? 0 : -errno;
}

int rseqtrace_get_seals(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 ? seals : -errno;
}

/* Fills an abstract address; returns its length for bind/connect, or -ENAMETOOLONG. */
static int rseqtrace_control_address(struct sockaddr_un *address, const char *name, size_t length)
{
	if (length == 0 || length > RSEQTRACE_CONTROL_NAME_MAX)
		return -ENAMETOOLONG;
	memset(address, 0, sizeof(*address));
	address->sun_family = AF_UNIX;
	memcpy(address->sun_path + 1, name, length);
	return (int)(offsetof(struct sockaddr_un, sun_path) + 1 + length);
}

int rseqtrace_control_listen(const char *name, size_t length)
{
	struct sockaddr_un address;
	int size = rseqtrace_control_address(&address, name, length);
	if (size < 0)
		return size;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&address, (socklen_t)size) != 0 || listen(fd, 16) != 0) {
		int error = errno;
		close(fd);
		return -error;
	}
	return fd;
}

int rseqtrace_control_accept(int listener)
{
	int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A peer that never reads its replies must not hold the control thread: sends give up. */
	struct timeval timeout = { .tv_sec = 1, .tv_usec = 0 };
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) != 0) {
		int error = errno;
		close(fd);
		return -error;
	}
	return fd;
}

int rseqtrace_control_connect(const char *name, size_t length, int timeout_ms)
{
	struct sockaddr_un address;
	int size = rseqtrace_control_address(&address, name, length);
	if (size < 0)
		return size;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval timeout = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	/* The send timeout also bounds connect() on a Unix socket whose backlog is full. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0 ||
	    connect(fd, (struct sockaddr *)&address, (socklen_t)size) != 0) {
		int error = errno;
		close(fd);
		return -error;
	}
	return fd;
}

long rseqtrace_control_send(int fd, const void *bytes, size_t count, int passed_fd)
{
	struct iovec vector = { .iov_base = (void *)bytes, .iov_len = count };
	union {
		char buffer[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1 };
	if (passed_fd >= 0) {
		memset(&control, 0, sizeof(control));
		message.msg_control = control.buffer;
		message.msg_controllen = sizeof(control.buffer);
		struct cmsghdr *header = CMSG_FIRSTHDR(&message);
		header->cmsg_level = SOL_SOCKET;
		header->cmsg_type = SCM_RIGHTS;
		header->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(header), &passed_fd, sizeof(int));
	}
	ssize_t sent;
	do {
		sent = sendmsg(fd, &message, MSG_NOSIGNAL);
	} while (sent < 0 && errno == EINTR);
	return sent >= 0 ? (long)sent : -errno;
}

long rseqtrace_control_receive(int fd, void *bytes, size_t capacity, int *passed_fd)
{
	struct iovec vector = { .iov_base = bytes, .iov_len = capacity };
	union {
		char buffer[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} control;
	struct msghdr message = {
		.msg_iov = &vector, .msg_iovlen = 1,
		.msg_control = control.buffer, .msg_controllen = sizeof(control.buffer),
	};
	*passed_fd = -1;
	ssize_t received;
	do {
		received = recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
	} while (received < 0 && errno == EINTR);
	if (received < 0)
		return -errno;
	int descriptors = 0;
	int refused = 0;
	for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
		if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int received_fd;
			memcpy(&received_fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
			if (descriptors++ == 0) {
				*passed_fd = received_fd;
			} else {
				close(received_fd);
				refused = 1;
			}
		}
	}
	if (refused || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (*passed_fd >= 0)
			close(*passed_fd);
		*passed_fd = -1;
		return (message.msg_flags & MSG_TRUNC) ? -EMSGSIZE : -EBADMSG;
	}
	return (long)received;
}

int rseqtrace_control_peer(int fd, int32_t *pid, uint32_t *uid)
{
	struct ucred credentials;
	socklen_t size = sizeof(credentials);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0)
		return -errno;
	*pid = credentials.pid;
	*uid = credentials.uid;
	return 0;
}

int rseqtrace_name_current_thread(const char *name)
{
	return -pthread_setname_np(pthread_self(), name);
}
