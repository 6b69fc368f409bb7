/* Allocation counting: malloc & co. defined in the executable interpose glibc's (the dynamic
 * linker resolves every library's malloc calls, glibc's own included, to the first definition:
 * the executable's), count the call per thread and forward to glibc's __libc_* entry points.
 * Linked into rseqtrace-bench (SwiftPM) and into the LTTng-UST workload (gcc). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CRseqTraceBench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);
extern void __libc_free(void *pointer);

static __thread uint64_t allocations __attribute__((tls_model("initial-exec")));
static int interposed;

#define COUNT() (allocations++, __atomic_store_n(&interposed, 1, __ATOMIC_RELAXED))

void *malloc(size_t size) { COUNT(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { COUNT(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { COUNT(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { COUNT(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { COUNT(); return __libc_memalign(alignment, size); }
void *valloc(size_t size) { COUNT(); return __libc_valloc(size); }
void *pvalloc(size_t size) { COUNT(); return __libc_pvalloc(size); }
void free(void *pointer) { __libc_free(pointer); }

int posix_memalign(void **result, size_t alignment, size_t size)
{
	if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
	COUNT();
	void *pointer = __libc_memalign(alignment, size);
	if (!pointer && size != 0) return ENOMEM;
	*result = pointer;
	return 0;
}

uint64_t bench_thread_allocations(void) { return allocations; }

int bench_allocation_counting_works(void)
{
	uint64_t before = allocations;
	/* strdup allocates inside glibc: counted only if glibc's own calls reach this malloc. */
	char *(*volatile duplicate)(const char *) = strdup;
	char *probe = duplicate("probe");
	__libc_free(probe);
	return allocations > before && __atomic_load_n(&interposed, __ATOMIC_RELAXED);
}
