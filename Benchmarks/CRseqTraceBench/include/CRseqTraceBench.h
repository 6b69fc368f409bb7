/*
 * CRseqTraceBench — the C half of the benchmark harness (Tools/bench).
 *
 * - Primitives every measured loop uses: the cycle counter, a compiler barrier, clocks, pinning.
 * - Allocation counting: bench-malloc.c interposes malloc & co. in the executable it is linked
 *   into and counts calls per thread (bench_thread_allocations()).
 * - The hand-written baselines the tracer is compared with (all inline, so the loop that calls them
 *   is compiled exactly like the RseqTrace loop that inlines its fast path):
 *     * a ring protected by one pthread mutex,
 *     * per-CPU rings indexed by sched_getcpu(), reserved and committed with atomic adds.
 *   Both write the same record as RseqTrace: an 8-byte word, an 8-byte rdtsc timestamp, then the
 *   payload padded to 8 bytes (40 bytes for the u64+u64+u32 event, 88 for the 64-byte string event).
 *   Both rings are sized by the caller to hold the whole run (no wrap, no reader), like the
 *   RseqTrace discard buffer in the timed runs.
 *
 * This header is also compiled by gcc into the LTTng-UST workload (Benchmarks/lttng).
 */
#ifndef CRSEQTRACE_BENCH_H
#define CRSEQTRACE_BENCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_INLINE static inline __attribute__((always_inline))

/* MARK: - Primitives */

/* The cycle counter, read exactly as RseqTrace reads it inside its sequences (plain rdtsc). */
BENCH_INLINE uint64_t bench_rdtsc(void)
{
#if defined(__x86_64__)
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
	uint64_t v;
	__asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
#error "unsupported architecture"
#endif
}

/* Keeps the compiler from deleting or merging the iterations of an otherwise empty loop. */
BENCH_INLINE void bench_compiler_barrier(void)
{
	__asm__ __volatile__("" ::: "memory");
}

/* CLOCK_MONOTONIC in nanoseconds (glibc's clock_gettime, through the vDSO). */
BENCH_INLINE uint64_t bench_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of the calling thread in nanoseconds. */
uint64_t bench_thread_cpu_ns(void);

/* CPU time of the whole process (all threads) in nanoseconds. */
uint64_t bench_process_cpu_ns(void);

/* Pins the calling thread to `cpu`; returns 0 or an errno value. */
int bench_pin_to_cpu(int cpu);

/* The CPU the calling thread runs on, or -1: glibc's sched_getcpu() (declared here so the header
 * needs no _GNU_SOURCE). It is the call a portable per-CPU ring makes. */
extern int sched_getcpu(void);
BENCH_INLINE int bench_current_cpu(void)
{
	return sched_getcpu();
}

/* Number of possible CPUs (/sys/devices/system/cpu/possible), at least 1. */
int bench_possible_cpus(void);

/* Number of CPUs this process may run on (sched_getaffinity), at least 1. */
int bench_allowed_cpus(void);

/* The `index`-th CPU (0-based) in this process's affinity mask, or -1. */
int bench_allowed_cpu(int index);

/* A dependent multiply chain of `iterations` steps (a CPU-contention probe; no memory traffic). */
uint64_t bench_alu_chain(uint64_t seed, uint64_t iterations);

/* The payload of the string event: 64 ASCII bytes (and a NUL for LTTng's ctf_string). */
#define BENCH_STRING_LENGTH 64
extern const char bench_string_text[BENCH_STRING_LENGTH + 1];

/* MARK: - Allocation counting (bench-malloc.c) */

/* malloc, calloc, realloc, memalign-family calls made by the calling thread so far. */
uint64_t bench_thread_allocations(void);

/* 1 when the interposer is in effect (a malloc call from this executable reached it). */
int bench_allocation_counting_works(void);

/* MARK: - Baseline rings */

/* A record word like RseqTrace's: length in bits 0-23, kind 1 (event) in bits 24-27, id in bits 32-47. */
BENCH_INLINE uint64_t bench_record_word(uint64_t length, uint64_t event_id)
{
	return length | (1ull << 24) | (event_id << 32);
}

/* One ring; bench_rings_create allocates them 64-byte aligned, and the padding keeps `head`,
 * `committed` and the rest on separate cache lines (explicit arrays rather than _Alignas, which
 * Swift cannot import). */
struct bench_ring {
	uint64_t head; /* reserved bytes (atomic, or under `mutex`) */
	uint64_t padding_after_head[7];
	uint64_t committed; /* committed bytes (atomic) */
	uint64_t padding_after_committed[7];
	uint8_t *data;
	uint64_t mask;
	pthread_mutex_t mutex;
	uint8_t padding_after_mutex[64 - (sizeof(pthread_mutex_t) + 16) % 64];
};

/* `count` rings of `size` bytes each (a power of two), zero-filled and pre-faulted; NULL on failure. */
struct bench_ring *bench_rings_create(int count, uint64_t size);
void bench_rings_destroy(struct bench_ring *rings, int count, uint64_t size);
/* Bytes reserved in all rings (to check the run stored every record). */
uint64_t bench_rings_reserved(const struct bench_ring *rings, int count);

#define BENCH_EVENT_RECORD 40  /* 16-byte header + 20-byte payload, padded to 8 */
#define BENCH_STRING_RECORD 88 /* 16-byte header + u16 length + 64 bytes, padded to 8 */

BENCH_INLINE void bench_store_event(uint8_t *slot, uint64_t stamp, uint64_t a, uint64_t b, uint32_t c)
{
	uint64_t word = bench_record_word(36, 1);
	memcpy(slot + 8, &stamp, 8);
	memcpy(slot + 16, &a, 8);
	memcpy(slot + 24, &b, 8);
	memcpy(slot + 32, &c, 4);
	__atomic_store_n((uint64_t *)slot, word, __ATOMIC_RELEASE);
}

BENCH_INLINE void bench_store_string(uint8_t *slot, uint64_t stamp, const uint8_t *text, uint16_t length)
{
	uint64_t word = bench_record_word(16 + 2 + (uint64_t)length, 2);
	memcpy(slot + 8, &stamp, 8);
	memcpy(slot + 16, &length, 2);
	memcpy(slot + 18, text, length);
	__atomic_store_n((uint64_t *)slot, word, __ATOMIC_RELEASE);
}

/* Per-CPU ring: sched_getcpu() picks the ring; LOCK xadd reserves; the timestamp is read after the
 * reservation; the payload is stored in place; a second LOCK xadd on `committed` commits. */
BENCH_INLINE struct bench_ring *bench_percpu_ring(struct bench_ring *rings, int count)
{
	int cpu = bench_current_cpu();
	return &rings[(unsigned)cpu < (unsigned)count ? cpu : 0];
}

BENCH_INLINE void bench_percpu_emit_event(struct bench_ring *rings, int count, uint64_t a, uint64_t b, uint32_t c)
{
	struct bench_ring *ring = bench_percpu_ring(rings, count);
	uint64_t position = __atomic_fetch_add(&ring->head, BENCH_EVENT_RECORD, __ATOMIC_RELAXED);
	bench_store_event(ring->data + (position & ring->mask), bench_rdtsc(), a, b, c);
	__atomic_fetch_add(&ring->committed, BENCH_EVENT_RECORD, __ATOMIC_RELEASE);
}

BENCH_INLINE void bench_percpu_emit_string(struct bench_ring *rings, int count)
{
	struct bench_ring *ring = bench_percpu_ring(rings, count);
	uint64_t position = __atomic_fetch_add(&ring->head, BENCH_STRING_RECORD, __ATOMIC_RELAXED);
	bench_store_string(ring->data + (position & ring->mask), bench_rdtsc(), (const uint8_t *)bench_string_text,
	                   BENCH_STRING_LENGTH);
	__atomic_fetch_add(&ring->committed, BENCH_STRING_RECORD, __ATOMIC_RELEASE);
}

/* One ring for every thread behind one pthread mutex; the timestamp is read under the lock, so
 * records are in timestamp order (as in every ring of RseqTrace). */
BENCH_INLINE void bench_mutex_emit_event(struct bench_ring *ring, uint64_t a, uint64_t b, uint32_t c)
{
	pthread_mutex_lock(&ring->mutex);
	uint64_t position = ring->head;
	ring->head = position + BENCH_EVENT_RECORD;
	bench_store_event(ring->data + (position & ring->mask), bench_rdtsc(), a, b, c);
	pthread_mutex_unlock(&ring->mutex);
}

BENCH_INLINE void bench_mutex_emit_string(struct bench_ring *ring)
{
	pthread_mutex_lock(&ring->mutex);
	uint64_t position = ring->head;
	ring->head = position + BENCH_STRING_RECORD;
	bench_store_string(ring->data + (position & ring->mask), bench_rdtsc(), (const uint8_t *)bench_string_text,
	                   BENCH_STRING_LENGTH);
	pthread_mutex_unlock(&ring->mutex);
}

#ifdef __cplusplus
}
#endif

#endif
