/*
 * CRseqTraceLTTng: the LTTng-UST tracepoint provider of the RseqTrace bridge.
 *
 * RseqTrace event schemas are known only at run time, so this provider builds LTTng-UST 2.13 probe
 * and event descriptors at run time (the structures of <lttng/ust-events.h> that
 * LTTNG_UST_TRACEPOINT_EVENT would generate at compile time), registers them with
 * lttng_ust_probe_register() and registers one tracepoint per event with
 * lttng_ust_tracepoint_module_register(). The session daemon receives the real event name and the
 * real field names and types, as for a static provider. Events that cannot be described that way
 * go to the static event `rseqtrace:text` (event name + fields rendered as text).
 *
 * Without the LTTng trait (RSEQTRACE_WITH_LTTNG undefined) every function is a stub and
 * rseqtrace_lttng_is_available() returns 0, so the package builds without liblttng-ust.
 *
 * This header includes no LTTng header.
 */
#ifndef CRSEQTRACE_LTTNG_H
#define CRSEQTRACE_LTTNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Field kinds of an RseqTrace schema (RseqTrace.FieldType). */
enum rseqtrace_lttng_kind {
	RSEQTRACE_LTTNG_UNSIGNED = 0,	/* bits: 8, 16, 32, 64 */
	RSEQTRACE_LTTNG_SIGNED = 1,	/* bits: 8, 16, 32, 64 */
	RSEQTRACE_LTTNG_FLOAT = 2,	/* bits: 32, 64 */
	RSEQTRACE_LTTNG_BOOL = 3,	/* one byte */
	RSEQTRACE_LTTNG_STRING = 4,	/* u16 byte count + UTF-8 bytes */
	RSEQTRACE_LTTNG_BYTES = 5,	/* u16 count + bytes */
	RSEQTRACE_LTTNG_ENUM = 6,	/* bits + signedness; cases added after the field */
};

/* 1 when this build includes the LTTng-UST provider (the LTTng trait), 0 otherwise. */
int rseqtrace_lttng_is_available(void);

/* An event description being built; consumed by rseqtrace_lttng_builder_register(). */
struct rseqtrace_lttng_builder;

/* Starts describing event `name` ("provider:event"). Returns NULL when out of memory. */
struct rseqtrace_lttng_builder *rseqtrace_lttng_builder_create(const char *name);

/* Appends a field of `kind` (see enum rseqtrace_lttng_kind). */
void rseqtrace_lttng_builder_add_field(struct rseqtrace_lttng_builder *builder, const char *name,
		int kind, unsigned bits, int is_signed);

/* Adds a case to the enumeration field added last. */
void rseqtrace_lttng_builder_add_enum_case(struct rseqtrace_lttng_builder *builder, const char *label,
		int64_t value);

/*
 * Registers the event under the process-local number `index` (0...2^20-1) and frees `builder`.
 * With `typed`, tries a typed LTTng event first; when that is refused (or without `typed`) the
 * event is forwarded as `rseqtrace:text`.
 * Returns 1 when the event is typed, 0 when it uses the text encoding, -1 on error; when
 * `message` is not NULL it receives why the typed registration was refused or the error.
 */
int rseqtrace_lttng_builder_register(struct rseqtrace_lttng_builder *builder, uint32_t index, int typed,
		char *message, size_t message_size);

/* Writes one event (payload in the RseqTrace encoding) to every LTTng session recording it. */
void rseqtrace_lttng_forward(uint32_t index, const void *payload, size_t length);

/*
 * Renders `payload` of event `index` as the text of the fallback encoding into `out` (always
 * NUL-terminated). Returns the length, or -1 when the event is unknown or the payload malformed.
 */
long rseqtrace_lttng_render_text(uint32_t index, const void *payload, size_t length, char *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* CRSEQTRACE_LTTNG_H */
