/*
 * CRseqTraceLTTng: the LTTng-UST tracepoint provider of the RseqTrace bridge.
 *
 * RseqTrace event schemas are known only at run time, so this provider builds LTTng-UST 2.13 probe
 * and event descriptors at run time (the structures of <lttng/ust-events.h> that
 * LTTNG_UST_TRACEPOINT_EVENT would generate at compile time), registers them with
 * lttng_ust_probe_register() and registers one tracepoint per event with
 * lttng_ust_tracepoint_module_register(). The session daemon receives the real event name and the
 * real field names and types, as for a static provider. Events that cannot be described that way
 * go to the static event `rseqtrace:text` (event name + the fields as text, rendered by Swift).
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

/* The LTTng-UST field an RseqTrace field (RseqTrace.FieldType) becomes. */
enum rseqtrace_lttng_kind {
	RSEQTRACE_LTTNG_UNSIGNED = 0,	/* bits: 8, 16, 32, 64 */
	RSEQTRACE_LTTNG_SIGNED = 1,	/* bits: 8, 16, 32, 64 */
	RSEQTRACE_LTTNG_FLOAT = 2,	/* bits: 32, 64 */
	RSEQTRACE_LTTNG_BOOL = 3,	/* one byte */
	RSEQTRACE_LTTNG_STRING = 4,	/* text sequence */
	RSEQTRACE_LTTNG_BYTES = 5,	/* byte sequence */
	RSEQTRACE_LTTNG_ENUM = 6,	/* bits + signedness; cases added after the field */
};

/* 1 when this build includes the LTTng-UST provider (the LTTng trait), 0 otherwise. */
int rseqtrace_lttng_is_available(void);

/* An event description being built; consumed by rseqtrace_lttng_builder_register(). */
struct rseqtrace_lttng_builder;

/* Starts describing event `name` ("provider:event"). Returns NULL when out of memory. */
struct rseqtrace_lttng_builder *rseqtrace_lttng_builder_create(const char *name);

/*
 * Appends a field of `kind` (see enum rseqtrace_lttng_kind) whose payload shape Swift computed
 * (RseqTrace.PayloadFieldShape): `fixed` bytes (1...8, `bound` 0), or (`fixed` 0) a little-endian
 * u16 count of at most `bound` (1...65535) followed by that many bytes. Any other shape fails the
 * builder.
 */
void rseqtrace_lttng_builder_add_field(struct rseqtrace_lttng_builder *builder, const char *name,
		int kind, unsigned bits, int is_signed, unsigned fixed, unsigned bound);

/* Adds a case to the enumeration field added last. */
void rseqtrace_lttng_builder_add_enum_case(struct rseqtrace_lttng_builder *builder, const char *label,
		int64_t value);

/*
 * Registers the event under the process-local number `index` (0...2^20-1) and frees `builder`.
 * `fixed_size` is the payload size when every field has a fixed size, -1 otherwise. With `typed`,
 * tries a typed LTTng event first; when that is refused (or without `typed`) the event is
 * forwarded as `rseqtrace:text`.
 * Returns 1 when the event is typed, 0 when it uses the text encoding, -1 on error; when
 * `message` is not NULL it receives why the typed registration was refused or the error.
 */
int rseqtrace_lttng_builder_register(struct rseqtrace_lttng_builder *builder, uint32_t index, int typed,
		long fixed_size, char *message, size_t message_size);

/*
 * Writes one event (payload in the RseqTrace encoding) to every LTTng session recording it, when
 * the event is typed and the payload matches its shapes. Returns 1 when the event uses the text
 * encoding and `rseqtrace:text` is enabled: the caller then renders the fields and calls
 * rseqtrace_lttng_write_text; 0 otherwise.
 */
int rseqtrace_lttng_forward(uint32_t index, const void *payload, size_t length);

/* Writes `rseqtrace:text` for event `index` with `text` (NUL-terminated) as its fields. */
void rseqtrace_lttng_write_text(uint32_t index, const char *text);

/* One field's payload shape, as passed to rseqtrace_lttng_builder_add_field. */
struct rseqtrace_lttng_field_shape {
	unsigned fixed;
	unsigned bound;
};

/*
 * Whether `length` bytes at `payload` are exactly one payload of the `count` fields `shapes` (the
 * check rseqtrace_lttng_forward makes before LTTng-UST reads a byte): every fixed field present,
 * every u16 count read only when its two bytes are inside `length` and refused above its bound or
 * past `length`, nothing left over. With `fixed_size` >= 0, only the length is compared. Returns 1
 * or 0. Compiled with and without the LTTng trait, so every build tests it against Swift's
 * PayloadFieldShape.matches.
 */
int rseqtrace_lttng_payload_matches(const struct rseqtrace_lttng_field_shape *shapes, unsigned count,
		long fixed_size, const void *payload, size_t length);

#ifdef __cplusplus
}
#endif

#endif /* CRSEQTRACE_LTTNG_H */
