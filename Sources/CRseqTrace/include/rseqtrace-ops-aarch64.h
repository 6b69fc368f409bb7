/*
 * aarch64 critical sections: the same sequences as rseqtrace-ops-x86_64.h (read that file's header
 * for the layout). Differences: the area is addressed through a register holding
 * thread pointer + offset; the committing store is `stlr` (release), which orders every try-store
 * and payload store before the publication of the head, as the design document requires; the
 * signature 0xd428bc00 (`brk #0x45e0`) precedes each abort handler. Tools/check-aarch64 compiles
 * and inspects them (clang --target=aarch64-linux-gnu); Tools/run-aarch64 runs every one, on both
 * index fields, under an arm64 Linux kernel in qemu-system-aarch64.
 */
#ifndef RSEQTRACE_AARCH64_COMMON
#define RSEQTRACE_AARCH64_COMMON

#define RSEQTRACE_ASM_DEFINE_TABLE(label, start_ip, post_commit_ip, abort_ip) \
	".pushsection __rseq_cs, \"aw\"\n\t" \
	".balign 32\n\t" \
	RSEQTRACE_STR(label) ":\n\t" \
	".long 0x0, 0x0\n\t" \
	".quad " RSEQTRACE_STR(start_ip) ", (" RSEQTRACE_STR(post_commit_ip) " - " \
		RSEQTRACE_STR(start_ip) "), " RSEQTRACE_STR(abort_ip) "\n\t" \
	".popsection\n\t" \
	".pushsection __rseq_cs_ptr_array, \"awR\"\n\t" \
	".quad " RSEQTRACE_STR(label) "b\n\t" \
	".popsection\n\t"

#define RSEQTRACE_ASM_DEFINE_EXIT_POINT(start_ip, exit_ip) \
	".pushsection __rseq_exit_point_array, \"awR\"\n\t" \
	".quad " RSEQTRACE_STR(start_ip) ", " RSEQTRACE_STR(exit_ip) "\n\t" \
	".popsection\n\t"

#define RSEQTRACE_ASM_STORE_RSEQ_CS(label, cs_label) \
	"adrp x16, " RSEQTRACE_STR(cs_label) "\n\t" \
	"add x16, x16, :lo12:" RSEQTRACE_STR(cs_label) "\n\t" \
	"str x16, [%[abi], #" RSEQTRACE_STR(RSEQTRACE_OFFSET_RSEQ_CS) "]\n\t" \
	RSEQTRACE_STR(label) ":\n\t"

#define RSEQTRACE_ASM_CBNE_INDEX(index_offset, abort_label) \
	"ldr w16, [%[abi], #" RSEQTRACE_STR(index_offset) "]\n\t" \
	"cmp w16, %w[index]\n\t" \
	"b.ne " RSEQTRACE_STR(abort_label) "\n\t"

#define RSEQTRACE_ASM_DEFINE_ABORT(label, abort_c_label) \
	".pushsection __rseq_failure, \"ax\"\n\t" \
	".inst " RSEQTRACE_STR(RSEQTRACE_SIG) "\n\t" \
	RSEQTRACE_STR(label) ":\n\t" \
	"b %l[" #abort_c_label "]\n\t" \
	".popsection\n\t"

#endif /* RSEQTRACE_AARCH64_COMMON */

/* rseqtrace_load_cbne_stamp_trystore_store: see the x86_64 file for the pseudo-code. */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_stamp_trystore_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *slot, uint64_t word, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"ldr x17, [%[v]]\n\t"
		"cmp x17, %[expect]\n\t"
		"b.ne %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"mrs x17, cntvct_el0\n\t"
		"str x17, [%[slot], #8]\n\t"
		"str %[word], [%[slot]]\n\t"
		"stlr %[newv], [%[v]]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [index] "r" (index),
		  [v] "r" (v), [expect] "r" (expect),
		  [slot] "r" (slot), [word] "r" (word), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/* rseqtrace_load_cbne_load_cbne_stamp_trystores_store: see the x86_64 file. */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_load_cbne_stamp_trystores_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *v2, uint64_t expect2,
	const struct rseqtrace_open_plan *plan, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"ldr x17, [%[v]]\n\t"
		"cmp x17, %[expect]\n\t"
		"b.ne %l[ne]\n\t"
		"ldr x17, [%[v2]]\n\t"
		"cmp x17, %[expect2]\n\t"
		"b.ne %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"ldp x16, x17, [%[plan], #0]\n\t"
		"str x17, [x16]\n\t"
		"ldp x16, x17, [%[plan], #16]\n\t"
		"str x17, [x16]\n\t"
		"mrs x17, cntvct_el0\n\t"
		"str x17, [x16, #8]\n\t"
		"ldr x17, [%[plan], #32]\n\t"
		"str x17, [x16, #16]\n\t"
		"ldp x16, x17, [%[plan], #40]\n\t"
		"str x17, [x16]\n\t"
		"mrs x17, cntvct_el0\n\t"
		"str x17, [x16, #8]\n\t"
		"stlr %[newv], [%[v]]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [index] "r" (index),
		  [v] "r" (v), [expect] "r" (expect), [v2] "r" (v2), [expect2] "r" (expect2),
		  [plan] "r" (plan), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/* rseqtrace_load_cbne_stamp_memcpy_trystore_store: see the x86_64 file. */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_stamp_memcpy_trystore_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *dst, const uint64_t *src,
	uint64_t nfull, uint64_t last, uint64_t word, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"ldr x17, [%[v]]\n\t"
		"cmp x17, %[expect]\n\t"
		"b.ne %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"mrs x17, cntvct_el0\n\t"
		"stur x17, [%[dst], #-8]\n\t"
		"mov x16, #0\n\t"
		"cbz %[nfull], 6f\n\t"
		"5:\n\t"
		"ldr x17, [%[src], x16, lsl #3]\n\t"
		"str x17, [%[dst], x16, lsl #3]\n\t"
		"add x16, x16, #1\n\t"
		"cmp x16, %[nfull]\n\t"
		"b.ne 5b\n\t"
		"6:\n\t"
		"str %[last], [%[dst], x16, lsl #3]\n\t"
		"stur %[word], [%[dst], #-16]\n\t"
		"stlr %[newv], [%[v]]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [index] "r" (index),
		  [v] "r" (v), [expect] "r" (expect),
		  [dst] "r" (dst), [src] "r" (src), [nfull] "r" (nfull), [last] "r" (last),
		  [word] "r" (word), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/* rseqtrace_load_add_store: see the x86_64 file. */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_add_store)(uint32_t index, uint64_t *v, uint64_t count)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		RSEQTRACE_INJECT_ASM
		"ldr x17, [%[v]]\n\t"
		"add x17, x17, %[count]\n\t"
		"str x17, [%[v]]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [index] "r" (index),
		  [v] "r" (v), [count] "r" (count)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort);
	return 0;
abort:
	return -1;
}

/* rseqtrace_load_cbgeu_addv: see the x86_64 file. ldr/add/str; the str is the commit (a plain
 * store: a counter publishes nothing else, readers load it relaxed). */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbgeu_addv)(
	uint64_t *base, uint64_t stride, uint32_t limit, uint64_t count)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		"ldr w16, [%[abi], #" RSEQTRACE_STR(RSEQTRACE_T_INDEX) "]\n\t"
		"cmp w16, %w[limit]\n\t"
		"b.hs %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"madd x16, x16, %[stride], %[base]\n\t"
		"ldr x17, [x16]\n\t"
		"add x17, x17, %[count]\n\t"
		"str x17, [x16]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [base] "r" (base), [stride] "r" (stride),
		  [limit] "r" (limit), [count] "r" (count)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/* rseqtrace_load_cbne_trystore_store: see the x86_64 file. */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_trystore_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *slot, uint64_t word, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"ldr x17, [%[v]]\n\t"
		"cmp x17, %[expect]\n\t"
		"b.ne %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"str %[word], [%[slot]]\n\t"
		"stlr %[newv], [%[v]]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [index] "r" (index),
		  [v] "r" (v), [expect] "r" (expect),
		  [slot] "r" (slot), [word] "r" (word), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/* rseqtrace_load_cbne_load_cbne_store: see the x86_64 file. */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_load_cbne_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *v2, uint64_t expect2, uint64_t *w, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"ldr x17, [%[v]]\n\t"
		"cmp x17, %[expect]\n\t"
		"b.ne %l[ne]\n\t"
		"ldr x17, [%[v2]]\n\t"
		"cmp x17, %[expect2]\n\t"
		"b.ne %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"stlr %[newv], [%[w]]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [index] "r" (index),
		  [v] "r" (v), [expect] "r" (expect), [v2] "r" (v2), [expect2] "r" (expect2),
		  [w] "r" (w), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/* rseqtrace_load_cbne_load_cbgtu_store: see the x86_64 file. */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_load_cbgtu_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *v2, uint64_t limit, uint64_t *w, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"ldr x17, [%[v]]\n\t"
		"cmp x17, %[expect]\n\t"
		"b.ne %l[ne]\n\t"
		"ldr x17, [%[v2]]\n\t"
		"cmp x17, %[limit]\n\t"
		"b.hi %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"stlr %[newv], [%[w]]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_abi()), [index] "r" (index),
		  [v] "r" (v), [expect] "r" (expect), [v2] "r" (v2), [limit] "r" (limit),
		  [w] "r" (w), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "x16", "x17"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}
