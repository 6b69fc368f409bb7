/* LTTng-UST 2.13 tracepoint provider `rseqtrace_bench` for the benchmark harness (Tools/bench):
 * the same two events as the RseqTrace rows, with the same field types. */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER rseqtrace_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./rseqtrace_bench-tp.h"

#if !defined(RSEQTRACE_BENCH_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define RSEQTRACE_BENCH_TP_H

#include <lttng/tracepoint.h>
#include <stdint.h>

/* bench:event — 2 × u64 + 1 × u32 (20-byte payload). */
LTTNG_UST_TRACEPOINT_EVENT(
	rseqtrace_bench, event,
	LTTNG_UST_TP_ARGS(uint64_t, a, uint64_t, b, uint32_t, c),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, a, a)
		lttng_ust_field_integer(uint64_t, b, b)
		lttng_ust_field_integer(uint32_t, c, c)
	)
)

/* bench:string — one 64-byte string (LTTng stores it NUL-terminated: 65 bytes). */
LTTNG_UST_TRACEPOINT_EVENT(
	rseqtrace_bench, string,
	LTTNG_UST_TP_ARGS(const char *, text),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_string(text, text)
	)
)

#endif /* RSEQTRACE_BENCH_TP_H */

#include <lttng/tracepoint-event.h>
