/* The probes of the `rseqtrace_bench` provider, linked into the workload (static provider). */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "rseqtrace_bench-tp.h"
