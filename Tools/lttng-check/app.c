/*
 * A C program with a static LTTng-UST provider, for Tools/check-lttng's merge step: emits
 * `lttng_check:ping` with seq 0...N-1 (N = argv[1], default 10), one every millisecond, so that its
 * events interleave with those of `rseqtrace demo --backend both` running at the same time.
 *
 *   gcc -O2 -I Tools/lttng-check Tools/lttng-check/app.c $(pkg-config --cflags --libs lttng-ust)
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "lttng_check_tp.h"
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 10;
	struct timespec pause = { 0, 1000000 };

	for (int i = 0; i < count; i++) {
		lttng_ust_tracepoint(lttng_check, ping, i, "from C");
		nanosleep(&pause, NULL);
	}
	return 0;
}
