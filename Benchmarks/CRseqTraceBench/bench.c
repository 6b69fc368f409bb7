/* Clocks, pinning, CPU sets and the baseline rings' setup (see CRseqTraceBench.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CRseqTraceBench.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct bench_ring) % 64 == 0, "rings fill whole cache lines");

const char bench_string_text[BENCH_STRING_LENGTH + 1] = "rseqtrace bench: a 64-byte string event payload, ASCII 012345678";

static uint64_t read_clock(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_thread_cpu_ns(void) { return read_clock(CLOCK_THREAD_CPUTIME_ID); }
uint64_t bench_process_cpu_ns(void) { return read_clock(CLOCK_PROCESS_CPUTIME_ID); }

int bench_pin_to_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

int bench_possible_cpus(void)
{
	/* "0-1", "0-3,8-11": the highest listed CPU + 1. */
	FILE *file = fopen("/sys/devices/system/cpu/possible", "r");
	int highest = -1;
	if (file) {
		int value;
		char separator;
		while (fscanf(file, "%d", &value) == 1) {
			if (value > highest) highest = value;
			if (fscanf(file, "%c", &separator) != 1) break;
		}
		fclose(file);
	}
	if (highest < 0) {
		long online = sysconf(_SC_NPROCESSORS_CONF);
		return online > 0 ? (int)online : 1;
	}
	return highest + 1;
}

int bench_allowed_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
	int count = CPU_COUNT(&set);
	return count > 0 ? count : 1;
}

int bench_allowed_cpu(int index)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) != 0) return index == 0 ? 0 : -1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &set) && index-- == 0) return cpu;
	}
	return -1;
}

uint64_t bench_alu_chain(uint64_t seed, uint64_t iterations)
{
	uint64_t x = seed | 1;
	for (uint64_t i = 0; i < iterations; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__ __volatile__("" : "+r"(x));
	}
	return x;
}

struct bench_ring *bench_rings_create(int count, uint64_t size)
{
	if (count < 1 || size == 0 || (size & (size - 1)) != 0) return NULL;
	struct bench_ring *rings = aligned_alloc(64, sizeof(struct bench_ring) * (size_t)count);
	if (!rings) return NULL;
	memset(rings, 0, sizeof(struct bench_ring) * (size_t)count);
	for (int i = 0; i < count; i++) {
		void *data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (data == MAP_FAILED) {
			bench_rings_destroy(rings, i, size);
			return NULL;
		}
		rings[i].data = data;
		rings[i].mask = size - 1;
		pthread_mutex_init(&rings[i].mutex, NULL);
	}
	return rings;
}

void bench_rings_destroy(struct bench_ring *rings, int count, uint64_t size)
{
	if (!rings) return;
	for (int i = 0; i < count; i++) {
		if (rings[i].data) munmap(rings[i].data, size);
		pthread_mutex_destroy(&rings[i].mutex);
	}
	free(rings);
}

uint64_t bench_rings_reserved(const struct bench_ring *rings, int count)
{
	uint64_t total = 0;
	for (int i = 0; i < count; i++) total += __atomic_load_n(&rings[i].head, __ATOMIC_ACQUIRE);
	return total;
}
