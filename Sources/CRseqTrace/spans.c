/*
 * Span identifiers (see CRseqTrace.h, "Span identifiers").
 */
#include "CRseqTrace.h"

#include <stdint.h>

__thread uint64_t rseqtrace_span_next_id;

/* Blocks handed out so far; block 0 is never used, so no id is 0. */
static uint64_t rseqtrace_span_blocks;

uint64_t rseqtrace_span_block_slow(void)
{
	uint64_t block = __atomic_add_fetch(&rseqtrace_span_blocks, 1, __ATOMIC_RELAXED);
	return (block << 32) | 1;
}
