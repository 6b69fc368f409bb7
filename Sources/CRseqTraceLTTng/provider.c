/*
 * The LTTng-UST tracepoint provider of the RseqTrace bridge (see include/CRseqTraceLTTng.h).
 *
 * Typed events: for each RseqTrace event this file builds, at run time, what
 * LTTNG_UST_TRACEPOINT_EVENT generates at compile time (LTTng-UST 2.13, <lttng/ust-events.h>):
 * a probe descriptor with one event descriptor, its tracepoint class (fields, probe callback,
 * signature), the field and type descriptors, and a `struct lttng_ust_tracepoint` call site. The
 * probe callback below follows the one the macros generate (ust-tracepoint-event.h, stage 5):
 * session/channel/event checks, filter (interpreter stack), reserve, write, commit, or a
 * notification. Every descriptor is allocated once and never freed: LTTng-UST keeps pointers to
 * them for the life of the process.
 *
 * Field mapping: see the table in README.md ("LTTng-UST bridge"). Swift passes each field's kind
 * and its payload shape (fixed size, or a u16 count bounded by `bound`), computed from the schema
 * (RseqTrace.PayloadFieldShape); this file walks a payload only with those shapes, every count
 * checked against its bound and the payload's length before any field is read
 * (rseqtrace_lttng_payload_matches, compiled in every build and tested against Swift's check).
 * On architectures with efficient unaligned access (x86) LTTng-UST packs event fields, so the
 * payload is written with one copy; elsewhere field by field at their natural alignment.
 *
 * Fallback: `rseqtrace:text { string event; string fields; }`; Swift renders the fields
 * (RseqTrace's EventSchema.renderText) and hands the text to rseqtrace_lttng_write_text.
 */
#include "CRseqTraceLTTng.h"

#if RSEQTRACE_WITH_LTTNG

#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "rseqtrace-lttng-text.h"

#include <lttng/ust-events.h>
#include <lttng/ust-ringbuffer-context.h>
#include <lttng/ust-tracer.h>
#include <lttng/ust-endian.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Process-local event numbers accepted: a two-level table of 1024 chunks of 1024 events. */
#define RSEQTRACE_LTTNG_CHUNK_SHIFT 10
#define RSEQTRACE_LTTNG_CHUNK_SIZE (1u << RSEQTRACE_LTTNG_CHUNK_SHIFT)
#define RSEQTRACE_LTTNG_MAX_EVENTS (RSEQTRACE_LTTNG_CHUNK_SIZE * RSEQTRACE_LTTNG_CHUNK_SIZE)
/* Schemas have at most 255 fields; strings and byte arrays add a length field each. */
#define RSEQTRACE_LTTNG_MAX_FIELDS 255

/* The argument list of the call site and of the probe callback (LTTng-UST compares them). */
#define RSEQTRACE_LTTNG_SIGNATURE \
	"const struct rseqtrace_lttng_event *, event, const uint8_t *, payload, size_t, length"

struct field_spec {
	char *name;
	int kind;
	unsigned bits;
	int is_signed;
	/* Payload shape from Swift: `fixed` bytes, or (fixed == 0) a u16 count of at most `bound`. */
	unsigned fixed;
	unsigned bound;
	unsigned case_count;
	char **case_labels;
	int64_t *case_values;
};

struct rseqtrace_lttng_builder {
	char *name;
	struct field_spec *fields;
	struct rseqtrace_lttng_field_shape *shapes;	/* parallel to `fields` */
	unsigned count;
	unsigned capacity;
	bool failed;
};

struct rseqtrace_lttng_event {
	char *name;				/* "provider:event" */
	struct field_spec *fields;
	struct rseqtrace_lttng_field_shape *shapes;	/* parallel to `fields` */
	unsigned field_count;
	/* Payload size when every field has a fixed size (Swift's EventSchema.fixedPayloadSize), else -1. */
	long fixed_size;
	bool typed;
	int largest_align;
	/* Typed events only. */
	struct lttng_ust_tracepoint tracepoint;
	struct lttng_ust_tracepoint *tracepoint_pointers[1];
};

typedef void (*rseqtrace_lttng_probe_function)(void *, const struct rseqtrace_lttng_event *,
		const uint8_t *, size_t);

static struct rseqtrace_lttng_event **event_chunks[RSEQTRACE_LTTNG_CHUNK_SIZE];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned enum_counter;

int rseqtrace_lttng_is_available(void)
{
	return 1;
}

static void set_message(char *message, size_t size, const char *format, ...)
	__attribute__((format(printf, 3, 4)));
static void set_message(char *message, size_t size, const char *format, ...)
{
	va_list args;

	if (!message || !size)
		return;
	va_start(args, format);
	vsnprintf(message, size, format, args);
	va_end(args);
}

static struct rseqtrace_lttng_event *event_at(uint32_t index)
{
	struct rseqtrace_lttng_event **chunk;

	if (index >= RSEQTRACE_LTTNG_MAX_EVENTS)
		return NULL;
	chunk = __atomic_load_n(&event_chunks[index >> RSEQTRACE_LTTNG_CHUNK_SHIFT], __ATOMIC_ACQUIRE);
	if (!chunk)
		return NULL;
	return __atomic_load_n(&chunk[index & (RSEQTRACE_LTTNG_CHUNK_SIZE - 1)], __ATOMIC_ACQUIRE);
}

/* Called with registry_lock held. */
static bool publish_event(uint32_t index, struct rseqtrace_lttng_event *event)
{
	struct rseqtrace_lttng_event ***slot = &event_chunks[index >> RSEQTRACE_LTTNG_CHUNK_SHIFT];
	struct rseqtrace_lttng_event **chunk = *slot;

	if (!chunk) {
		chunk = calloc(RSEQTRACE_LTTNG_CHUNK_SIZE, sizeof(*chunk));
		if (!chunk)
			return false;
		__atomic_store_n(slot, chunk, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&chunk[index & (RSEQTRACE_LTTNG_CHUNK_SIZE - 1)], event, __ATOMIC_RELEASE);
	return true;
}

/* MARK: - Builder */

struct rseqtrace_lttng_builder *rseqtrace_lttng_builder_create(const char *name)
{
	struct rseqtrace_lttng_builder *builder = calloc(1, sizeof(*builder));

	if (!builder)
		return NULL;
	builder->name = strdup(name);
	if (!builder->name) {
		free(builder);
		return NULL;
	}
	return builder;
}

void rseqtrace_lttng_builder_add_field(struct rseqtrace_lttng_builder *builder, const char *name,
		int kind, unsigned bits, int is_signed, unsigned fixed, unsigned bound)
{
	struct field_spec *field;

	if (!builder || builder->failed)
		return;
	if ((fixed == 0) == (bound == 0) || fixed > 8 || bound > UINT16_MAX) {
		builder->failed = true;		/* not a shape Swift computes */
		return;
	}
	if (builder->count == builder->capacity) {
		unsigned capacity = builder->capacity ? builder->capacity * 2 : 8;
		struct field_spec *fields = realloc(builder->fields, capacity * sizeof(*fields));
		struct rseqtrace_lttng_field_shape *shapes;

		if (!fields) {
			builder->failed = true;
			return;
		}
		builder->fields = fields;
		shapes = realloc(builder->shapes, capacity * sizeof(*shapes));
		if (!shapes) {
			builder->failed = true;
			return;
		}
		builder->shapes = shapes;
		builder->capacity = capacity;
	}
	builder->shapes[builder->count].fixed = fixed;
	builder->shapes[builder->count].bound = bound;
	field = &builder->fields[builder->count];
	memset(field, 0, sizeof(*field));
	field->name = strdup(name);
	if (!field->name) {
		builder->failed = true;
		return;
	}
	field->kind = kind;
	field->bits = bits;
	field->is_signed = is_signed;
	field->fixed = fixed;
	field->bound = bound;
	builder->count++;
}

void rseqtrace_lttng_builder_add_enum_case(struct rseqtrace_lttng_builder *builder, const char *label,
		int64_t value)
{
	struct field_spec *field;
	char **labels;
	int64_t *values;

	if (!builder || builder->failed || !builder->count)
		return;
	field = &builder->fields[builder->count - 1];
	labels = realloc(field->case_labels, (field->case_count + 1) * sizeof(*labels));
	if (labels)
		field->case_labels = labels;
	values = realloc(field->case_values, (field->case_count + 1) * sizeof(*values));
	if (values)
		field->case_values = values;
	if (!labels || !values) {
		builder->failed = true;
		return;
	}
	labels[field->case_count] = strdup(label);
	if (!labels[field->case_count]) {
		builder->failed = true;
		return;
	}
	values[field->case_count] = value;
	field->case_count++;
}

static void free_fields(struct field_spec *fields, unsigned count)
{
	unsigned i, j;

	for (i = 0; i < count; i++) {
		free(fields[i].name);
		for (j = 0; j < fields[i].case_count; j++)
			free(fields[i].case_labels[j]);
		free(fields[i].case_labels);
		free(fields[i].case_values);
	}
	free(fields);
}

/* MARK: - Payload access (little-endian, whatever the host order) */

static uint64_t load_le(const uint8_t *p, unsigned bytes)
{
	uint64_t value = 0;
	unsigned i;

	for (i = 0; i < bytes; i++)
		value |= (uint64_t) p[i] << (8 * i);
	return value;
}

/* MARK: - Typed events: descriptors */

static struct lttng_ust_type_common *integer_type(unsigned bits, int is_signed)
{
	struct lttng_ust_type_integer *type = calloc(1, sizeof(*type));

	if (!type)
		return NULL;
	type->parent.type = lttng_ust_type_integer;
	type->struct_size = sizeof(*type);
	type->size = bits;
#ifdef LTTNG_UST_RING_BUFFER_NATURAL_ALIGN
	type->alignment = bits;
#else
	type->alignment = 8;
#endif
	type->signedness = is_signed ? 1 : 0;
	/* The payload is little-endian. */
	type->reverse_byte_order = LTTNG_UST_BYTE_ORDER != LTTNG_UST_LITTLE_ENDIAN;
	type->base = 10;
	return &type->parent;
}

static struct lttng_ust_type_common *float_type(unsigned bits)
{
	struct lttng_ust_type_float *type = calloc(1, sizeof(*type));

	if (!type)
		return NULL;
	type->parent.type = lttng_ust_type_float;
	type->struct_size = sizeof(*type);
	type->exp_dig = bits == 32 ? 8 : 11;
	type->mant_dig = bits == 32 ? 24 : 53;
#ifdef LTTNG_UST_RING_BUFFER_NATURAL_ALIGN
	type->alignment = bits;
#else
	type->alignment = 8;
#endif
	type->reverse_byte_order = LTTNG_UST_BYTE_ORDER != LTTNG_UST_LITTLE_ENDIAN;
	return &type->parent;
}

static struct lttng_ust_type_common *sequence_type(bool is_text)
{
	struct lttng_ust_type_sequence *type = calloc(1, sizeof(*type));

	if (!type)
		return NULL;
	type->parent.type = lttng_ust_type_sequence;
	type->struct_size = sizeof(*type);
	type->length_name = NULL;	/* the previous field, as lttng_ust_field_sequence writes it */
	type->elem_type = integer_type(8, 0);
	type->alignment = 0;
	type->encoding = is_text ? lttng_ust_string_encoding_UTF8 : lttng_ust_string_encoding_none;
	if (!type->elem_type) {
		free(type);
		return NULL;
	}
	return &type->parent;
}

static struct lttng_ust_type_common *enum_type(const struct field_spec *field,
		const struct lttng_ust_probe_desc *probe)
{
	struct lttng_ust_type_enum *type = calloc(1, sizeof(*type));
	struct lttng_ust_enum_desc *desc = calloc(1, sizeof(*desc));
	const struct lttng_ust_enum_entry **entries = calloc(field->case_count ? field->case_count : 1,
			sizeof(*entries));
	char name[64];
	unsigned i;

	if (!type || !desc || !entries)
		return NULL;
	snprintf(name, sizeof(name), "rseqtrace_enum_%u", __atomic_add_fetch(&enum_counter, 1, __ATOMIC_RELAXED));
	for (i = 0; i < field->case_count; i++) {
		struct lttng_ust_enum_entry *entry = calloc(1, sizeof(*entry));

		if (!entry)
			return NULL;
		entry->struct_size = sizeof(*entry);
		entry->start.value = (unsigned long long) field->case_values[i];
		entry->start.signedness = field->is_signed && field->case_values[i] < 0;
		entry->end = entry->start;
		entry->string = field->case_labels[i];
		entries[i] = entry;
	}
	desc->struct_size = sizeof(*desc);
	desc->name = strdup(name);
	desc->entries = entries;
	desc->nr_entries = field->case_count;
	desc->probe_desc = probe;
	type->parent.type = lttng_ust_type_enum;
	type->struct_size = sizeof(*type);
	type->desc = desc;
	type->container_type = integer_type(field->bits, field->is_signed);
	if (!desc->name || !type->container_type)
		return NULL;
	return &type->parent;
}

static struct lttng_ust_event_field *event_field(const char *name, const struct lttng_ust_type_common *type,
		bool filterable)
{
	struct lttng_ust_event_field *field = calloc(1, sizeof(*field));

	if (!field || !type)
		return NULL;
	field->struct_size = sizeof(*field);
	field->name = name;
	field->type = type;
	field->nowrite = 0;
	field->nofilter = filterable ? 0 : 1;
	return field;
}

static void rseqtrace_lttng_probe(void *tp_data, const struct rseqtrace_lttng_event *event,
		const uint8_t *payload, size_t length) lttng_ust_notrace;

/* Whether the constructor of <lttng/tracepoint.h> loaded liblttng-ust-tracepoint.so.1. */
static bool tracepoint_library_ready(void)
{
	return lttng_ust_tracepoint_dlopen_ptr && lttng_ust_tracepoint_dlopen_ptr->liblttngust_handle
		&& lttng_ust_tracepoint_dlopen_ptr->lttng_ust_tracepoint_module_register
		&& lttng_ust_tracepoint_dlopen_ptr->rcu_read_lock_sym;
}

/*
 * Builds and registers the LTTng-UST descriptors of `event`. Returns false (with a reason in
 * `message`) when LTTng-UST cannot take it; nothing is registered then. Allocations made before a
 * failure are not freed: LTTng-UST may still reference descriptors of a refused registration.
 */
static bool register_typed(struct rseqtrace_lttng_event *event, char *message, size_t message_size)
{
	const char *colon = strchr(event->name, ':');
	char *provider, *event_name, *signature;
	struct lttng_ust_probe_desc *probe;
	struct lttng_ust_event_desc *desc;
	const struct lttng_ust_event_desc **descs;
	struct lttng_ust_tracepoint_class *tp_class;
	const struct lttng_ust_event_field **fields;
	size_t lttng_field_count = 0;
	unsigned i;

	if (!colon || colon == event->name || !colon[1]) {
		set_message(message, message_size, "'%s' is not 'provider:event'", event->name);
		return false;
	}
	if (strlen(event->name) >= LTTNG_UST_ABI_SYM_NAME_LEN) {
		set_message(message, message_size, "LTTng-UST event names are limited to %d bytes",
			LTTNG_UST_ABI_SYM_NAME_LEN - 1);
		return false;
	}
	for (i = 0; i < event->field_count; i++) {
		/* LTTng-UST sends names of at most LTTNG_UST_ABI_SYM_NAME_LEN - 1 bytes to the session daemon. */
		if (strlen(event->fields[i].name) + strlen("__length") >= LTTNG_UST_ABI_SYM_NAME_LEN) {
			set_message(message, message_size, "field name '%.40s...' is longer than LTTng-UST accepts",
				event->fields[i].name);
			return false;
		}
		lttng_field_count += (event->fields[i].kind == RSEQTRACE_LTTNG_STRING
			|| event->fields[i].kind == RSEQTRACE_LTTNG_BYTES) ? 2 : 1;
	}
	if (!tracepoint_library_ready()) {
		set_message(message, message_size, "liblttng-ust-tracepoint.so.1 could not be loaded");
		return false;
	}

	provider = strndup(event->name, (size_t) (colon - event->name));
	event_name = strdup(colon + 1);
	signature = strdup(RSEQTRACE_LTTNG_SIGNATURE);
	probe = calloc(1, sizeof(*probe));
	desc = calloc(1, sizeof(*desc));
	descs = calloc(2, sizeof(*descs));
	tp_class = calloc(1, sizeof(*tp_class));
	fields = calloc(lttng_field_count ? lttng_field_count : 1, sizeof(*fields));
	if (!provider || !event_name || !signature || !probe || !desc || !descs || !tp_class || !fields)
		goto out_of_memory;

	lttng_field_count = 0;
	for (i = 0; i < event->field_count; i++) {
		const struct field_spec *spec = &event->fields[i];
		const struct lttng_ust_type_common *type = NULL;

		switch (spec->kind) {
		case RSEQTRACE_LTTNG_UNSIGNED:
		case RSEQTRACE_LTTNG_SIGNED:
			type = integer_type(spec->bits, spec->kind == RSEQTRACE_LTTNG_SIGNED);
			break;
		case RSEQTRACE_LTTNG_BOOL:
			type = integer_type(8, 0);
			break;
		case RSEQTRACE_LTTNG_FLOAT:
			type = float_type(spec->bits);
			break;
		case RSEQTRACE_LTTNG_ENUM:
			type = enum_type(spec, probe);
			break;
		case RSEQTRACE_LTTNG_STRING:
		case RSEQTRACE_LTTNG_BYTES:
		{
			size_t length_name_size = strlen(spec->name) + strlen("__length") + 1;
			char *length_name = malloc(length_name_size);

			if (!length_name)
				goto out_of_memory;
			snprintf(length_name, length_name_size, "_%s_length", spec->name);
			fields[lttng_field_count] = event_field(length_name, integer_type(16, 0), false);
			if (!fields[lttng_field_count])
				goto out_of_memory;
			lttng_field_count++;
			type = sequence_type(spec->kind == RSEQTRACE_LTTNG_STRING);
			break;
		}
		default:
			set_message(message, message_size, "field '%s' has an unknown kind %d", spec->name, spec->kind);
			return false;
		}
		fields[lttng_field_count] = event_field(spec->name, type, true);
		if (!fields[lttng_field_count])
			goto out_of_memory;
		lttng_field_count++;
	}

	tp_class->struct_size = sizeof(*tp_class);
	tp_class->fields = fields;
	tp_class->nr_fields = lttng_field_count;
	tp_class->probe_callback = (void (*)(void)) rseqtrace_lttng_probe;
	tp_class->signature = signature;
	tp_class->probe_desc = probe;

	desc->struct_size = sizeof(*desc);
	desc->event_name = event_name;
	desc->probe_desc = probe;
	desc->tp_class = tp_class;
	desc->loglevel = NULL;		/* LTTNG_UST_TRACEPOINT_LOGLEVEL_DEFAULT */
	desc->model_emf_uri = NULL;
	descs[0] = desc;

	probe->struct_size = sizeof(*probe);
	probe->provider_name = provider;
	probe->event_desc = descs;
	probe->nr_events = 1;
	probe->major = LTTNG_UST_PROVIDER_MAJOR;
	probe->minor = LTTNG_UST_PROVIDER_MINOR;

	event->tracepoint.struct_size = sizeof(event->tracepoint);
	event->tracepoint.provider_name = provider;
	event->tracepoint.event_name = event_name;
	event->tracepoint.state = 0;
	event->tracepoint.probes = NULL;
	event->tracepoint.tracepoint_provider_ref = NULL;
	event->tracepoint.signature = signature;
	event->tracepoint_pointers[0] = &event->tracepoint;

	if (!lttng_ust_probe_register(probe)) {
		set_message(message, message_size,
			"LTTng-UST refused the event's probe descriptor (run with LTTNG_UST_DEBUG=1 to see why)");
		return false;
	}
	if (lttng_ust_tracepoint_dlopen_ptr->lttng_ust_tracepoint_module_register(event->tracepoint_pointers, 1)) {
		set_message(message, message_size, "LTTng-UST could not register the event's call site");
		return false;
	}
	return true;

out_of_memory:
	set_message(message, message_size, "out of memory while describing the event to LTTng-UST");
	return false;
}

/* MARK: - Typed events: the probe callback */

/* The filter interpreter's view of the fields: 8 bytes per number, length + pointer per sequence. */
static void prepare_interpreter_stack(const struct rseqtrace_lttng_event *event, const uint8_t *payload,
		char *stack)
{
	const uint8_t *p = payload;
	unsigned i;

	for (i = 0; i < event->field_count; i++) {
		const struct field_spec *field = &event->fields[i];

		switch (field->kind) {
		case RSEQTRACE_LTTNG_UNSIGNED:
		case RSEQTRACE_LTTNG_SIGNED:
		case RSEQTRACE_LTTNG_BOOL:
		case RSEQTRACE_LTTNG_ENUM:
		{
			unsigned bytes = field->fixed;
			uint64_t raw = load_le(p, bytes);

			if (field->is_signed && bytes < 8 && (raw >> (8 * bytes - 1)) & 1)
				raw |= ~(uint64_t) 0 << (8 * bytes);
			memcpy(stack, &raw, sizeof(raw));
			stack += sizeof(int64_t);
			p += bytes;
			break;
		}
		case RSEQTRACE_LTTNG_FLOAT:
		{
			double value;

			if (field->bits == 32) {
				uint32_t raw = (uint32_t) load_le(p, 4);
				float f;

				memcpy(&f, &raw, sizeof(f));
				value = f;
			} else {
				uint64_t raw = load_le(p, 8);

				memcpy(&value, &raw, sizeof(value));
			}
			memcpy(stack, &value, sizeof(value));
			stack += sizeof(double);
			p += field->bits / 8;
			break;
		}
		default:
		{
			unsigned long count = (unsigned long) load_le(p, 2);
			const void *bytes = p + 2;

			memcpy(stack, &count, sizeof(count));
			stack += sizeof(unsigned long);
			memcpy(stack, &bytes, sizeof(bytes));
			stack += sizeof(void *);
			p += 2 + count;
			break;
		}
		}
	}
}

#ifdef LTTNG_UST_RING_BUFFER_NATURAL_ALIGN
/* Size of the event's fields once aligned as LTTng-UST aligns them (relative to an aligned start). */
static size_t aligned_payload_size(const struct rseqtrace_lttng_event *event, const uint8_t *payload)
{
	const uint8_t *p = payload;
	size_t size = 0;
	unsigned i;

	for (i = 0; i < event->field_count; i++) {
		unsigned fixed = event->fields[i].fixed;

		if (fixed) {
			size += lttng_ust_ring_buffer_align(size, fixed);
			size += fixed;
			p += fixed;
		} else {
			size_t count = load_le(p, 2);

			size += lttng_ust_ring_buffer_align(size, 2);
			size += 2 + count;
			p += 2 + count;
		}
	}
	return size;
}
#endif

static void write_payload(struct lttng_ust_channel_buffer *channel, struct lttng_ust_ring_buffer_ctx *ctx,
		const struct rseqtrace_lttng_event *event, const uint8_t *payload, size_t length)
{
#ifdef LTTNG_UST_RING_BUFFER_NATURAL_ALIGN
	const uint8_t *p = payload;
	unsigned i;

	(void) length;
	for (i = 0; i < event->field_count; i++) {
		unsigned fixed = event->fields[i].fixed;

		if (fixed) {
			channel->ops->event_write(ctx, p, fixed, fixed);
			p += fixed;
		} else {
			size_t count = load_le(p, 2);

			channel->ops->event_write(ctx, p, 2, 2);
			channel->ops->event_write(ctx, p + 2, count, 1);
			p += 2 + count;
		}
	}
#else
	/* Packed ring buffer: LTTng-UST's layout of these fields is the payload itself. */
	(void) event;
	channel->ops->event_write(ctx, payload, length, 1);
#endif
}

static void rseqtrace_lttng_probe(void *tp_data, const struct rseqtrace_lttng_event *event,
		const uint8_t *payload, size_t length)
{
	struct lttng_ust_event_common *common = (struct lttng_ust_event_common *) tp_data;
	struct lttng_ust_probe_ctx probe_ctx;
	char stack_data[2 * sizeof(unsigned long) * 2 * RSEQTRACE_LTTNG_MAX_FIELDS];
	bool stack_prepared = false;

	switch (common->type) {
	case LTTNG_UST_EVENT_TYPE_RECORDER:
	{
		struct lttng_ust_event_recorder *recorder = (struct lttng_ust_event_recorder *) common->child;
		struct lttng_ust_channel_common *channel = recorder->chan->parent;

		if (caa_unlikely(!CMM_ACCESS_ONCE(channel->session->active)))
			return;
		if (caa_unlikely(!CMM_ACCESS_ONCE(channel->enabled)))
			return;
		break;
	}
	case LTTNG_UST_EVENT_TYPE_NOTIFIER:
		break;
	}
	if (caa_unlikely(!CMM_ACCESS_ONCE(common->enabled)))
		return;
	probe_ctx.struct_size = sizeof(probe_ctx);
	probe_ctx.ip = __builtin_return_address(0);
	if (caa_unlikely(CMM_ACCESS_ONCE(common->eval_filter))) {
		prepare_interpreter_stack(event, payload, stack_data);
		stack_prepared = true;
		if (caa_likely(common->run_filter(common, stack_data, &probe_ctx, NULL) != LTTNG_UST_EVENT_FILTER_ACCEPT))
			return;
	}
	switch (common->type) {
	case LTTNG_UST_EVENT_TYPE_RECORDER:
	{
		struct lttng_ust_event_recorder *recorder = (struct lttng_ust_event_recorder *) common->child;
		struct lttng_ust_channel_buffer *channel = recorder->chan;
		struct lttng_ust_ring_buffer_ctx ctx;
#ifdef LTTNG_UST_RING_BUFFER_NATURAL_ALIGN
		size_t size = aligned_payload_size(event, payload);
#else
		size_t size = length;
#endif

		lttng_ust_ring_buffer_ctx_init(&ctx, recorder, size, event->largest_align, &probe_ctx);
		if (channel->ops->event_reserve(&ctx) < 0)
			return;
		write_payload(channel, &ctx, event, payload, length);
		channel->ops->event_commit(&ctx);
		break;
	}
	case LTTNG_UST_EVENT_TYPE_NOTIFIER:
	{
		struct lttng_ust_event_notifier *notifier = (struct lttng_ust_event_notifier *) common->child;
		struct lttng_ust_notification_ctx notification_ctx;

		notification_ctx.struct_size = sizeof(notification_ctx);
		notification_ctx.eval_capture = CMM_ACCESS_ONCE(notifier->eval_capture);
		if (caa_unlikely(!stack_prepared && notification_ctx.eval_capture))
			prepare_interpreter_stack(event, payload, stack_data);
		notifier->notification_send(notifier, stack_data, &probe_ctx, &notification_ctx);
		break;
	}
	}
}

/* MARK: - Registration and forwarding */

int rseqtrace_lttng_builder_register(struct rseqtrace_lttng_builder *builder, uint32_t index, int typed,
		long fixed_size, char *message, size_t message_size)
{
	struct rseqtrace_lttng_event *event, *existing;
	unsigned i;
	int result;

	if (message && message_size)
		message[0] = '\0';
	if (!builder) {
		set_message(message, message_size, "out of memory while describing the event");
		return -1;
	}
	if (builder->failed || index >= RSEQTRACE_LTTNG_MAX_EVENTS || builder->count > RSEQTRACE_LTTNG_MAX_FIELDS) {
		set_message(message, message_size, builder->failed ? "out of memory while describing the event"
			: "event number or field count out of range (at most %u events of %u fields)",
			RSEQTRACE_LTTNG_MAX_EVENTS, RSEQTRACE_LTTNG_MAX_FIELDS);
		free_fields(builder->fields, builder->count);
		free(builder->shapes);
		free(builder->name);
		free(builder);
		return -1;
	}
	pthread_mutex_lock(&registry_lock);
	existing = event_at(index);
	if (existing) {
		/* Registered before (the forwarder was installed again): keep the first registration. */
		result = strcmp(existing->name, builder->name) == 0 ? (existing->typed ? 1 : 0) : -1;
		if (result < 0)
			set_message(message, message_size, "event number %u is already registered as %s",
				index, existing->name);
		pthread_mutex_unlock(&registry_lock);
		free_fields(builder->fields, builder->count);
		free(builder->shapes);
		free(builder->name);
		free(builder);
		return result;
	}
	event = calloc(1, sizeof(*event));
	if (!event) {
		pthread_mutex_unlock(&registry_lock);
		set_message(message, message_size, "out of memory while describing the event");
		return -1;
	}
	event->name = builder->name;
	event->fields = builder->fields;
	event->shapes = builder->shapes;
	event->field_count = builder->count;
	event->fixed_size = fixed_size;
	event->largest_align = 1;
#ifdef LTTNG_UST_RING_BUFFER_NATURAL_ALIGN
	for (i = 0; i < event->field_count; i++) {
		unsigned fixed = event->fields[i].fixed;
		int align = fixed ? (int) fixed : 2;

		if (align > event->largest_align)
			event->largest_align = align;
	}
#else
	(void) i;
#endif
	free(builder);
	event->typed = typed && register_typed(event, message, message_size);
	if (!publish_event(index, event)) {
		pthread_mutex_unlock(&registry_lock);
		set_message(message, message_size, "out of memory while recording the event");
		return -1;
	}
	pthread_mutex_unlock(&registry_lock);
	return event->typed ? 1 : 0;
}

int rseqtrace_lttng_forward(uint32_t index, const void *payload, size_t length)
{
	const struct rseqtrace_lttng_event *event = event_at(index);

	if (caa_unlikely(!event))
		return 0;
	if (caa_likely(event->typed)) {
		struct lttng_ust_tracepoint_probe *probe;

		if (caa_likely(!CMM_LOAD_SHARED(event->tracepoint.state)))
			return 0;
		if (caa_unlikely(!LTTNG_UST_TP_RCU_LINK_TEST()))
			return 0;
		if (caa_unlikely(!rseqtrace_lttng_payload_matches(event->shapes, event->field_count,
				event->fixed_size, payload, length)))
			return 0;
		lttng_ust_tp_rcu_read_lock();
		probe = lttng_ust_tp_rcu_dereference(((struct rseqtrace_lttng_event *) event)->tracepoint.probes);
		if (probe) {
			do {
				((rseqtrace_lttng_probe_function) probe->func)(probe->data, event, payload, length);
			} while ((++probe)->func);
		}
		lttng_ust_tp_rcu_read_unlock();
		return 0;
	}
	return lttng_ust_tracepoint_enabled(rseqtrace, text) ? 1 : 0;
}

void rseqtrace_lttng_write_text(uint32_t index, const char *text)
{
	const struct rseqtrace_lttng_event *event = event_at(index);

	if (event && text && lttng_ust_tracepoint_enabled(rseqtrace, text))
		lttng_ust_do_tracepoint(rseqtrace, text, event->name, text);
}

#else /* RSEQTRACE_WITH_LTTNG */

#include <stdio.h>

/* Built without the LTTng trait: nothing to forward to. */

int rseqtrace_lttng_is_available(void)
{
	return 0;
}

struct rseqtrace_lttng_builder *rseqtrace_lttng_builder_create(const char *name)
{
	(void) name;
	return NULL;
}

void rseqtrace_lttng_builder_add_field(struct rseqtrace_lttng_builder *builder, const char *name,
		int kind, unsigned bits, int is_signed, unsigned fixed, unsigned bound)
{
	(void) builder; (void) name; (void) kind; (void) bits; (void) is_signed; (void) fixed; (void) bound;
}

void rseqtrace_lttng_builder_add_enum_case(struct rseqtrace_lttng_builder *builder, const char *label,
		int64_t value)
{
	(void) builder; (void) label; (void) value;
}

int rseqtrace_lttng_builder_register(struct rseqtrace_lttng_builder *builder, uint32_t index, int typed,
		long fixed_size, char *message, size_t message_size)
{
	(void) builder; (void) index; (void) typed; (void) fixed_size;
	if (message && message_size)
		snprintf(message, message_size, "this build has no LTTng-UST provider (the LTTng trait is off)");
	return -1;
}

int rseqtrace_lttng_forward(uint32_t index, const void *payload, size_t length)
{
	(void) index; (void) payload; (void) length;
	return 0;
}

void rseqtrace_lttng_write_text(uint32_t index, const char *text)
{
	(void) index; (void) text;
}

#endif /* RSEQTRACE_WITH_LTTNG */

/* MARK: - Payload shape check (every build) */

int rseqtrace_lttng_payload_matches(const struct rseqtrace_lttng_field_shape *shapes, unsigned count,
		long fixed_size, const void *payload, size_t length)
{
	const uint8_t *bytes = payload;
	size_t offset = 0;
	unsigned i;

	if (fixed_size >= 0)
		return length == (size_t) fixed_size;
	for (i = 0; i < count; i++) {
		size_t items;

		if (shapes[i].fixed) {
			if (length - offset < shapes[i].fixed)
				return 0;
			offset += shapes[i].fixed;
			continue;
		}
		if (length - offset < 2)
			return 0;
		/* Little-endian, whatever the host order. */
		items = (size_t) bytes[offset] | (size_t) bytes[offset + 1] << 8;
		if (items > shapes[i].bound || length - offset - 2 < items)
			return 0;
		offset += 2 + items;
	}
	return offset == length;
}
