/*
 * x86_64 critical sections. Textual template: CRseqTrace.h includes it once per index field with
 *   RSEQTRACE_T_INDEX  offset of the compared field in struct rseq (cpu_id or mm_cid)
 *   RSEQTRACE_T(name)  the name with its __cpu_id / __mm_cid suffix.
 *
 * Layout of every sequence (numeric local labels only: the compiler may duplicate or merge them):
 *   3:  descriptor in __rseq_cs {version 0, flags 0, start 1f, post_commit 2f - 1f, abort 4f},
 *       with its address in __rseq_cs_ptr_array ("R": kept by --gc-sections) for debuggers/tools
 *       leaq 3b(%rip), %rax ; movq %rax, %fs:8(abi)        arm the descriptor
 *   1:  cmpl index, %fs:INDEX(abi) ; jnz 4f                 wrong CPU: abort
 *       ... loads, compares, try-stores ...
 *       <one committing store>
 *   2:
 *   __rseq_failure: ud1 0x53053053(%rip) (the signature is the 4 bytes before 4:) ; 4: jmp abort
 * No call, no syscall, nothing that can fault on memory we do not own, between 1: and 2:.
 */
#ifndef RSEQTRACE_X86_64_COMMON
#define RSEQTRACE_X86_64_COMMON

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

/* Records a non-abort exit (the `ne` branch) so debuggers can step over the sequence. */
#define RSEQTRACE_ASM_DEFINE_EXIT_POINT(start_ip, exit_ip) \
	".pushsection __rseq_exit_point_array, \"awR\"\n\t" \
	".quad " RSEQTRACE_STR(start_ip) ", " RSEQTRACE_STR(exit_ip) "\n\t" \
	".popsection\n\t"

#define RSEQTRACE_ASM_STORE_RSEQ_CS(label, cs_label) \
	"leaq " RSEQTRACE_STR(cs_label) "(%%rip), %%rax\n\t" \
	"movq %%rax, %%fs:" RSEQTRACE_STR(RSEQTRACE_OFFSET_RSEQ_CS) "(%[abi])\n\t" \
	RSEQTRACE_STR(label) ":\n\t"

#define RSEQTRACE_ASM_CBNE_INDEX(index_offset, abort_label) \
	"cmpl %[index], %%fs:" RSEQTRACE_STR(index_offset) "(%[abi])\n\t" \
	"jnz " RSEQTRACE_STR(abort_label) "\n\t"

#define RSEQTRACE_ASM_DEFINE_ABORT(label, abort_c_label) \
	".pushsection __rseq_failure, \"ax\"\n\t" \
	".byte 0x0f, 0xb9, 0x3d\n\t" \
	".long " RSEQTRACE_STR(RSEQTRACE_SIG) "\n\t" \
	RSEQTRACE_STR(label) ":\n\t" \
	"jmp %l[" #abort_c_label "]\n\t" \
	".popsection\n\t"

/* rdtsc into %rax (clobbers %rdx). */
#define RSEQTRACE_ASM_READ_CYCLES \
	"rdtsc\n\t" \
	"shlq $32, %%rdx\n\t" \
	"orq %%rdx, %%rax\n\t"

#endif /* RSEQTRACE_X86_64_COMMON */

/*
 * rseqtrace_load_cbne_stamp_trystore_store(index, v, expect, slot, word, newv)
 *
 * Reserve (and, with a committed `word`, publish) one record at `slot`.
 * Pseudo-code:
 *   cbne(index_field, index, abort)
 *   load(r1, [v])
 *   cbne(r1, expect, ne)
 *   stamp([slot + 8])
 *   trystore(word, [slot])
 *   store(newv, [v])
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_stamp_trystore_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *slot, uint64_t word, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"cmpq %[v], %[expect]\n\t"
		"jnz %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		RSEQTRACE_ASM_READ_CYCLES
		"movq %%rax, 8(%[slot])\n\t"
		"movq %[word], (%[slot])\n\t"
		"movq %[newv], %[v]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [index] "r" (index),
		  [v] "m" (*v), [expect] "r" (expect),
		  [slot] "r" (slot), [word] "r" (word), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax", "rdx"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/*
 * rseqtrace_load_cbne_load_cbne_stamp_trystores_store(index, v, expect, v2, expect2, plan, newv)
 *
 * Open a sub-buffer: pad the previous one, write the begin record and the first record.
 * Pseudo-code:
 *   cbne(index_field, index, abort)
 *   load(r1, [v]);  cbne(r1, expect, ne)
 *   load(r2, [v2]); cbne(r2, expect2, ne)
 *   trystore(plan.pad_word, [plan.pad_slot])
 *   trystore(plan.begin_word, [plan.begin_slot]); stamp([plan.begin_slot + 8])
 *   trystore(plan.begin_lost, [plan.begin_slot + 16])
 *   trystore(plan.record_word, [plan.record_slot]); stamp([plan.record_slot + 8])
 *   store(newv, [v])
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_load_cbne_stamp_trystores_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *v2, uint64_t expect2,
	const struct rseqtrace_open_plan *plan, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"cmpq %[v], %[expect]\n\t"
		"jnz %l[ne]\n\t"
		"cmpq %[v2], %[expect2]\n\t"
		"jnz %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		RSEQTRACE_ASM_READ_CYCLES
		"movq 0(%[plan]), %%rcx\n\t"
		"movq 8(%[plan]), %%rdx\n\t"
		"movq %%rdx, (%%rcx)\n\t"
		"movq 16(%[plan]), %%rcx\n\t"
		"movq 24(%[plan]), %%rdx\n\t"
		"movq %%rdx, (%%rcx)\n\t"
		"movq %%rax, 8(%%rcx)\n\t"
		"movq 32(%[plan]), %%rdx\n\t"
		"movq %%rdx, 16(%%rcx)\n\t"
		"movq 40(%[plan]), %%rcx\n\t"
		"movq 48(%[plan]), %%rdx\n\t"
		"movq %%rdx, (%%rcx)\n\t"
		"movq %%rax, 8(%%rcx)\n\t"
		"movq %[newv], %[v]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [index] "r" (index),
		  [v] "m" (*v), [expect] "r" (expect), [v2] "m" (*v2), [expect2] "r" (expect2),
		  [plan] "r" (plan), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax", "rcx", "rdx"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/*
 * rseqtrace_load_cbne_stamp_memcpy_trystore_store(index, v, expect, dst, src, nfull, last, word, newv)
 *
 * Copy-commit: write a whole record (header at dst - 16, stamp at dst - 8, payload at dst) and
 * publish it in one sequence. The payload is nfull words from src followed by the word `last`.
 * Pseudo-code:
 *   cbne(index_field, index, abort)
 *   load(r1, [v]); cbne(r1, expect, ne)
 *   stamp([dst - 8])
 *   for i in 0..<nfull: trystore([src + 8i], [dst + 8i])
 *   trystore(last, [dst + 8 nfull])
 *   trystore(word, [dst - 16])
 *   store(newv, [v])
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_stamp_memcpy_trystore_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *dst, const uint64_t *src,
	uint64_t nfull, uint64_t last, uint64_t word, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"cmpq %[v], %[expect]\n\t"
		"jnz %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		RSEQTRACE_ASM_READ_CYCLES
		"movq %%rax, -8(%[dst])\n\t"
		"xorl %%ecx, %%ecx\n\t"
		"testq %[nfull], %[nfull]\n\t"
		"jz 6f\n\t"
		"5:\n\t"
		"movq (%[src],%%rcx,8), %%rax\n\t"
		"movq %%rax, (%[dst],%%rcx,8)\n\t"
		"incq %%rcx\n\t"
		"cmpq %%rcx, %[nfull]\n\t"
		"jne 5b\n\t"
		"6:\n\t"
		"movq %[last], (%[dst],%%rcx,8)\n\t"
		"movq %[word], -16(%[dst])\n\t"
		"movq %[newv], %[v]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [index] "r" (index),
		  [v] "m" (*v), [expect] "r" (expect),
		  [dst] "r" (dst), [src] "r" (src), [nfull] "r" (nfull), [last] "r" (last),
		  [word] "r" (word), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax", "rcx", "rdx"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/*
 * rseqtrace_load_add_store(index, v, count)
 *
 * Per-CPU counter increment (lost-record counters).
 * Pseudo-code:
 *   cbne(index_field, index, abort)
 *   load(r1, [v]); r1 += count; store(r1, [v])    (one `addq` to memory: the commit)
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_add_store)(uint32_t index, uint64_t *v, uint64_t count)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		RSEQTRACE_INJECT_ASM
		"addq %[count], %[v]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [index] "r" (index),
		  [v] "m" (*v), [count] "er" (count)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax"
		: abort);
	return 0;
abort:
	return -1;
}

/*
 * rseqtrace_load_cbgeu_addv(base, stride, limit, count)
 *
 * Per-CPU counter add (docs/BufferProtocol.md §8): the index is read inside the sequence, so the
 * block it selects is the running CPU's until the commit; no atomic read-modify-write.
 * Pseudo-code:
 *   load(i, index_field); cbgeu(i, limit, ne)      (unregistered thread, or no block for i)
 *   v = base + i * stride
 *   load(r1, [v]); r1 += count; store(r1, [v])     (one `addq` to memory: the commit)
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbgeu_addv)(
	uint64_t *base, uint64_t stride, uint32_t limit, uint64_t count)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		"movl %%fs:" RSEQTRACE_STR(RSEQTRACE_T_INDEX) "(%[abi]), %%ecx\n\t"
		"cmpl %[limit], %%ecx\n\t"
		"jae %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"imulq %[stride], %%rcx\n\t"
		"addq %[count], (%[base], %%rcx)\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [base] "r" (base), [stride] "r" (stride),
		  [limit] "r" (limit), [count] "r" (count)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax", "rcx"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/*
 * rseqtrace_load_cbne_trystore_store(index, v, expect, slot, word, newv)
 *
 * Seal: close the current sub-buffer with a padding record (consumer side, run on the CPU).
 * Pseudo-code:
 *   cbne(index_field, index, abort)
 *   load(r1, [v]); cbne(r1, expect, ne)
 *   trystore(word, [slot])
 *   store(newv, [v])
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_trystore_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *slot, uint64_t word, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"cmpq %[v], %[expect]\n\t"
		"jnz %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"movq %[word], (%[slot])\n\t"
		"movq %[newv], %[v]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [index] "r" (index),
		  [v] "m" (*v), [expect] "r" (expect),
		  [slot] "r" (slot), [word] "r" (word), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/*
 * rseqtrace_load_cbne_load_cbne_store(index, v, expect, v2, expect2, w, newv)
 *
 * Overwrite mode, recycling a sub-buffer: publish its "recycled" marker only if neither the head
 * nor the consumer position moved since the records in it were counted.
 * Pseudo-code:
 *   cbne(index_field, index, abort)
 *   load(r1, [v]);  cbne(r1, expect, ne)
 *   load(r2, [v2]); cbne(r2, expect2, ne)
 *   store(newv, [w])
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_load_cbne_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *v2, uint64_t expect2, uint64_t *w, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"cmpq %[v], %[expect]\n\t"
		"jnz %l[ne]\n\t"
		"cmpq %[v2], %[expect2]\n\t"
		"jnz %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"movq %[newv], %[w]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [index] "r" (index),
		  [v] "m" (*v), [expect] "r" (expect), [v2] "m" (*v2), [expect2] "r" (expect2),
		  [w] "m" (*w), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}

/*
 * rseqtrace_load_cbne_load_cbgtu_store(index, v, expect, v2, limit, w, newv)
 *
 * Consumer commit in overwrite mode: publish `newv` into `w` (the consumer position) only if the
 * "recycled" marker of the oldest copied sub-buffer is unchanged and the head has not passed
 * `limit` — i.e. nothing just copied was recycled meanwhile.
 * Pseudo-code:
 *   cbne(index_field, index, abort)
 *   load(r1, [v]);  cbne(r1, expect, ne)
 *   load(r2, [v2]); cbgtu(r2, limit, ne)
 *   store(newv, [w])
 */
RSEQTRACE_INLINE int RSEQTRACE_T(rseqtrace_load_cbne_load_cbgtu_store)(
	uint32_t index, uint64_t *v, uint64_t expect, uint64_t *v2, uint64_t limit, uint64_t *w, uint64_t newv)
{
	__asm__ __volatile__ goto (
		RSEQTRACE_ASM_DEFINE_TABLE(3, 1f, 2f, 4f)
		RSEQTRACE_ASM_DEFINE_EXIT_POINT(1f, %l[ne])
		RSEQTRACE_ASM_STORE_RSEQ_CS(1, 3b)
		RSEQTRACE_ASM_CBNE_INDEX(RSEQTRACE_T_INDEX, 4f)
		"cmpq %[v], %[expect]\n\t"
		"jnz %l[ne]\n\t"
		"cmpq %[limit], %[v2]\n\t"
		"ja %l[ne]\n\t"
		RSEQTRACE_INJECT_ASM
		"movq %[newv], %[w]\n\t"
		"2:\n\t"
		RSEQTRACE_ASM_DEFINE_ABORT(4, abort)
		: /* no outputs */
		: [abi] "r" (rseqtrace_rseq_offset), [index] "r" (index),
		  [v] "m" (*v), [expect] "r" (expect), [v2] "m" (*v2), [limit] "r" (limit),
		  [w] "m" (*w), [newv] "r" (newv)
		  RSEQTRACE_INJECT_INPUT
		: "memory", "cc", "rax"
		: abort, ne);
	return 0;
abort:
	return -1;
ne:
	return 1;
}
