/*
 * The static LTTng-UST event of the bridge's fallback encoding: `rseqtrace:text`, carrying the
 * original event name and its fields rendered as text. Used for events whose schema cannot be
 * registered as a typed LTTng event, or for every event with RSEQTRACE_LTTNG_ENCODING=text.
 * Private to CRseqTraceLTTng (not in include/, so Swift never sees the tracepoint macros).
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER rseqtrace

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "rseqtrace-lttng-text.h"

#if !defined(RSEQTRACE_LTTNG_TEXT_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define RSEQTRACE_LTTNG_TEXT_H

#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(rseqtrace, text,
	LTTNG_UST_TP_ARGS(const char *, event_name, const char *, rendered_fields),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_string(event, event_name)
		lttng_ust_field_string(fields, rendered_fields)
	)
)

#endif

#include <lttng/tracepoint-event.h>
