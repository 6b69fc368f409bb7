/*
 * The static LTTng-UST tracepoint of Tools/lttng-check/app.c: `lttng_check:ping { int seq; string text; }`.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER lttng_check
#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./lttng_check_tp.h"
#if !defined(LTTNG_CHECK_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define LTTNG_CHECK_TP_H
#include <lttng/tracepoint.h>
LTTNG_UST_TRACEPOINT_EVENT(lttng_check, ping,
	LTTNG_UST_TP_ARGS(int, seq, const char *, text),
	LTTNG_UST_TP_FIELDS(lttng_ust_field_integer(int, seq, seq) lttng_ust_field_string(text, text)))
#endif
#include <lttng/tracepoint-event.h>
