/*
 * The LTTng-UST workload of Tools/bench: the harness's measured loop, in C, firing the
 * `rseqtrace_bench` tracepoints. Same protocol as `rseqtrace-bench worker`:
 *
 *   rseqtrace-bench-lttng --workload event|string --threads T --events N --warmup W [--consumer-pids P,...]
 *
 * Thread i is pinned to the i-th allowed CPU (modulo their count), emits W warm-up events, waits
 * for every thread, then times N events with CLOCK_MONOTONIC. Whether LTTng records anything is up
 * to the session the harness set up (none: "compiled in, disabled"). Prints one line:
 *
 *   result threads=T events=N warmup=W ns_per_event=X wall_ns=W thread_ns=t0,t1 allocations=K cpus=c0,c1
 *
 * With --consumer-pids (lttng-consumerd's), it also prints consumer_start_ns: their CPU time just
 * before the timed loop, when the session's buffers exist and the warm-up is done, so that the
 * harness can charge the consumer only for the timed events (its reading after `lttng stop`
 * minus this one).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CRseqTraceBench.h"
#include "rseqtrace_bench-tp.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum workload { WORKLOAD_EVENT, WORKLOAD_STRING };

struct worker {
	pthread_t thread;
	int cpu;
	int pin_error;
	uint64_t start, end, allocations;
};

static enum workload workload;
static struct worker *first_worker;
static uint64_t events, warmup;
static int threads;
static int ready;
static const char *consumer_pids;
static uint64_t consumer_start_ns;

/* CPU time of every thread of the processes in `pids` ("1,2"), from /proc/<pid>/task/<tid>/schedstat. */
static uint64_t processes_cpu_ns(const char *pids)
{
	uint64_t total = 0;
	for (const char *cursor = pids; *cursor;) {
		long pid = strtol(cursor, (char **)&cursor, 10);
		if (*cursor == ',') cursor++;
		char path[64];
		snprintf(path, sizeof path, "/proc/%ld/task", pid);
		DIR *tasks = opendir(path);
		if (!tasks) continue;
		struct dirent *task;
		while ((task = readdir(tasks)) != NULL) {
			if (task->d_name[0] == '.') continue;
			char stat_path[320];
			snprintf(stat_path, sizeof stat_path, "/proc/%ld/task/%s/schedstat", pid, task->d_name);
			FILE *file = fopen(stat_path, "r");
			unsigned long long ns;
			if (file && fscanf(file, "%llu", &ns) == 1) total += ns;
			if (file) fclose(file);
		}
		closedir(tasks);
	}
	return total;
}

static void emit_range(uint64_t begin, uint64_t end)
{
	if (workload == WORKLOAD_EVENT) {
		for (uint64_t i = begin; i < end; i++) {
			lttng_ust_tracepoint(rseqtrace_bench, event, i, i * 0x9E3779B97F4A7C15ull, (uint32_t)i);
		}
	} else {
		for (uint64_t i = begin; i < end; i++) {
			lttng_ust_tracepoint(rseqtrace_bench, string, bench_string_text);
		}
	}
}

static void *run_worker(void *argument)
{
	struct worker *self = argument;
	self->pin_error = self->cpu >= 0 ? bench_pin_to_cpu(self->cpu) : 0;
	emit_range(0, warmup);
	__atomic_fetch_add(&ready, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&ready, __ATOMIC_ACQUIRE) < threads) {
#if defined(__x86_64__)
		__builtin_ia32_pause();
#endif
	}
	if (consumer_pids && self == first_worker) consumer_start_ns = processes_cpu_ns(consumer_pids);
	uint64_t allocations = bench_thread_allocations();
	self->start = bench_monotonic_ns();
	emit_range(warmup, warmup + events);
	self->end = bench_monotonic_ns();
	self->allocations = bench_thread_allocations() - allocations;
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: rseqtrace-bench-lttng --workload event|string --threads T --events N --warmup W"
	                " [--consumer-pids P,...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	workload = WORKLOAD_EVENT;
	threads = 1;
	events = 1000000;
	warmup = 10000;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc) usage();
		if (strcmp(argv[i], "--workload") == 0) {
			const char *value = argv[++i];
			if (strcmp(value, "event") == 0) workload = WORKLOAD_EVENT;
			else if (strcmp(value, "string") == 0) workload = WORKLOAD_STRING;
			else usage();
		} else if (strcmp(argv[i], "--threads") == 0) {
			threads = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--events") == 0) {
			events = strtoull(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--warmup") == 0) {
			warmup = strtoull(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--consumer-pids") == 0) {
			consumer_pids = argv[++i];
		} else {
			usage();
		}
	}
	if (threads < 1 || threads > 1024 || events == 0) usage();
	if (!bench_allocation_counting_works()) {
		fprintf(stderr, "rseqtrace-bench-lttng: the malloc interposer is not in effect\n");
		return 1;
	}

	struct worker *workers = calloc((size_t)threads, sizeof *workers);
	first_worker = workers;
	int allowed = bench_allowed_cpus();
	for (int i = 0; i < threads; i++) {
		workers[i].cpu = bench_allowed_cpu(i % allowed);
		int error = pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]);
		if (error != 0) {
			fprintf(stderr, "rseqtrace-bench-lttng: pthread_create: %s\n", strerror(error));
			return 1;
		}
	}
	for (int i = 0; i < threads; i++) pthread_join(workers[i].thread, NULL);

	uint64_t first = UINT64_MAX, last = 0, allocations = 0;
	double total = 0;
	for (int i = 0; i < threads; i++) {
		if (workers[i].pin_error != 0) {
			fprintf(stderr, "rseqtrace-bench-lttng: cannot pin thread %d to CPU %d: %s\n", i, workers[i].cpu,
			        strerror(workers[i].pin_error));
			return 1;
		}
		if (workers[i].start < first) first = workers[i].start;
		if (workers[i].end > last) last = workers[i].end;
		allocations += workers[i].allocations;
		total += (double)(workers[i].end - workers[i].start) / (double)events;
	}
	printf("result threads=%d events=%" PRIu64 " warmup=%" PRIu64 " ns_per_event=%.4f wall_ns=%" PRIu64
	       " allocations=%" PRIu64 " thread_ns=",
	       threads, events, warmup, total / threads, last - first, allocations);
	for (int i = 0; i < threads; i++) {
		printf("%s%" PRIu64, i ? "," : "", workers[i].end - workers[i].start);
	}
	printf(" cpus=");
	for (int i = 0; i < threads; i++) printf("%s%d", i ? "," : "", workers[i].cpu);
	if (consumer_pids) printf(" consumer_start_ns=%" PRIu64, consumer_start_ns);
	printf("\n");
	free(workers);
	return 0;
}
