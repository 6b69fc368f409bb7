/*
 * One index variant of the emulated aarch64 test (included twice by init.c, like CRseqTrace.h
 * includes the ops header twice): V(name) is name##__cpu_id or name##__mm_cid, V_NAME the index
 * field's name, V_INDEX() reads it from the registered area.
 *
 * Every worker calls one critical section directly (so it is inlined as in the Swift producer),
 * retries after an abort (-1) or a changed head (1), and every 16th iteration also makes a call
 * that must not commit: a wrong expected value (must return 1 or -1) and a wrong index (must
 * return -1); the per-CPU add, which reads its index itself, gets a limit of 0 instead (must
 * return 1 or -1). A call that commits where it must not is a test failure.
 */

/* Reads the current index; returns a ring or NULL when the index is outside the test's rings. */
static struct ring *V(ring_for)(uint32_t *index)
{
	uint32_t i = V_INDEX();
	*index = i;
	if (i >= MAX_INDEX) {
		fail_at("%s %s: index %u outside 0..%d (thread not registered?)", V_NAME, current_op->name, i,
			MAX_INDEX - 1);
		return NULL;
	}
	return &rings[i];
}

/* Checks a call that must not commit (wrong expected value: 1 or -1; wrong index: -1). */
static void V(must_not_commit)(int rc, int wrong_index, const char *what)
{
	if (rc == 0 || (wrong_index && rc != -1))
		fail_at("%s %s: a call with %s returned %d (must %s)", V_NAME, current_op->name, what, rc,
			wrong_index ? "abort (-1)" : "not commit (1 or -1)");
	else
		me->refused++;
}

/* Tallies the result of one attempt; returns 1 when it committed. */
static int V(tally)(int rc)
{
	if (rc == 0) return 1;
	if (rc == 1) me->ne++; else me->aborts++;
	return 0;
}

static void V(op_stamp_trystore_store)(uint64_t seq)
{
	uint64_t word = record_word(T_STAMPED, 0, seq);
	uint32_t idx;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		if (!room(r, h, 2)) return;
		if ((seq & 15) == 0) {
			V(must_not_commit)(V(rseqtrace_load_cbne_stamp_trystore_store)(idx, &r->head, h ^ WRONG, &r->slots[h],
								    word, h + 2), 0, "a wrong head");
			V(must_not_commit)(V(rseqtrace_load_cbne_stamp_trystore_store)(WRONG_INDEX, &r->head, h, &r->slots[h],
								    word, h + 2), 1, "a wrong index");
		}
		if (V(tally)(V(rseqtrace_load_cbne_stamp_trystore_store)(idx, &r->head, h, &r->slots[h], word, h + 2)))
			break;
	}
	me->commits++;
}

static void V(op_stamp_trystores_store)(uint64_t seq)
{
	/* One sub-buffer opening: pad record, begin record, first event; every third opening has
	 * nothing to pad (pad_slot aliases begin_slot, whose store then overwrites it). */
	int aliased = seq % 3 == 0;
	uint64_t words = aliased ? 5 : 6;
	uint32_t idx;
	struct rseqtrace_open_plan plan;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		uint64_t gen = __atomic_load_n(&r->gen, __ATOMIC_RELAXED);
		if (!room(r, h, words)) return;
		uint64_t *begin = &r->slots[aliased ? h : h + 1];
		plan.pad_slot = &r->slots[h];
		plan.pad_word = record_word(T_PAD, 0, seq);
		plan.begin_slot = begin;
		plan.begin_word = record_word(T_BEGIN, 0, seq);
		plan.begin_lost = ~plan.begin_word;
		plan.record_slot = begin + 3;
		plan.record_word = record_word(T_EVENT, 0, seq);
		if ((seq & 15) == 0) {
			V(must_not_commit)(V(rseqtrace_load_cbne_load_cbne_stamp_trystores_store)(idx, &r->head, h, &r->gen,
								      gen ^ WRONG, &plan, h + words), 0, "a wrong second value");
			V(must_not_commit)(V(rseqtrace_load_cbne_load_cbne_stamp_trystores_store)(WRONG_INDEX, &r->head, h,
								      &r->gen, gen, &plan, h + words), 1, "a wrong index");
		}
		if (V(tally)(V(rseqtrace_load_cbne_load_cbne_stamp_trystores_store)(idx, &r->head, h, &r->gen, gen, &plan,
										 h + words)))
			break;
	}
	me->commits++;
}

static void V(op_stamp_memcpy_trystore_store)(uint64_t seq)
{
	uint64_t nfull = seq % (MAX_PAYLOAD + 1);
	uint64_t word = record_word(T_COPIED, nfull, seq);
	uint64_t src[MAX_PAYLOAD + 1];
	for (uint64_t k = 0; k < nfull; k++) src[k] = payload_word(word, k);
	uint64_t last = payload_word(word, nfull);
	uint32_t idx;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		uint64_t words = 3 + nfull;
		if (!room(r, h, words)) return;
		uint64_t *dst = &r->slots[h + 2];
		if ((seq & 15) == 0) {
			V(must_not_commit)(V(rseqtrace_load_cbne_stamp_memcpy_trystore_store)(idx, &r->head, h ^ WRONG, dst,
								      src, nfull, last, word, h + words), 0, "a wrong head");
			V(must_not_commit)(V(rseqtrace_load_cbne_stamp_memcpy_trystore_store)(WRONG_INDEX, &r->head, h, dst,
								      src, nfull, last, word, h + words), 1, "a wrong index");
		}
		if (V(tally)(V(rseqtrace_load_cbne_stamp_memcpy_trystore_store)(idx, &r->head, h, dst, src, nfull, last,
									     word, h + words)))
			break;
	}
	me->commits++;
}

static void V(op_add_store)(uint64_t seq)
{
	uint64_t add = 1 + seq % 3;
	uint32_t idx;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		if ((seq & 15) == 0)
			V(must_not_commit)(V(rseqtrace_load_add_store)(WRONG_INDEX, &r->count, add), 1, "a wrong index");
		if (V(tally)(V(rseqtrace_load_add_store)(idx, &r->count, add)))
			break;
	}
	me->commits++;
	me->added += add;
}

static void V(op_cbgeu_addv)(uint64_t seq)
{
	/* Per-CPU counter add: the section reads the index itself and adds to that index's ring
	 * count (base + index * stride); a limit of 0 has no block for any index (must not commit). */
	uint64_t add = 1 + seq % 3;
	uint32_t idx;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		if ((seq & 15) == 0)
			V(must_not_commit)(V(rseqtrace_load_cbgeu_addv)(&rings[0].count, sizeof(struct ring), 0, add), 0,
					   "a limit of 0");
		if (V(tally)(V(rseqtrace_load_cbgeu_addv)(&rings[0].count, sizeof(struct ring), MAX_INDEX, add)))
			break;
	}
	me->commits++;
	me->added += add;
}

static void V(op_trystore_store)(uint64_t seq)
{
	uint64_t word = record_word(T_PLAIN, 0, seq);
	uint32_t idx;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		if (!room(r, h, 1)) return;
		if ((seq & 15) == 0) {
			V(must_not_commit)(V(rseqtrace_load_cbne_trystore_store)(idx, &r->head, h ^ WRONG, &r->slots[h], word,
								      h + 1), 0, "a wrong head");
			V(must_not_commit)(V(rseqtrace_load_cbne_trystore_store)(WRONG_INDEX, &r->head, h, &r->slots[h], word,
								      h + 1), 1, "a wrong index");
		}
		if (V(tally)(V(rseqtrace_load_cbne_trystore_store)(idx, &r->head, h, &r->slots[h], word, h + 1)))
			break;
	}
	me->commits++;
}

static void V(op_load_cbne_store)(uint64_t seq)
{
	/* Claims one unit: head += 1 when head and gen are what was read. */
	uint32_t idx;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		uint64_t gen = __atomic_load_n(&r->gen, __ATOMIC_RELAXED);
		if ((seq & 15) == 0) {
			V(must_not_commit)(V(rseqtrace_load_cbne_load_cbne_store)(idx, &r->head, h, &r->gen, gen ^ WRONG,
								   &r->head, h + 1), 0, "a wrong second value");
			V(must_not_commit)(V(rseqtrace_load_cbne_load_cbne_store)(WRONG_INDEX, &r->head, h, &r->gen, gen,
								   &r->head, h + 1), 1, "a wrong index");
		}
		if (V(tally)(V(rseqtrace_load_cbne_load_cbne_store)(idx, &r->head, h, &r->gen, gen, &r->head, h + 1)))
			break;
	}
	me->commits++;
	me->added += 1;
}

static void V(op_load_cbgtu_store)(uint64_t seq)
{
	/* gen has its top bit set: a limit of 1 must refuse (unsigned compare), a limit >= gen must
	 * pass (equal included). */
	uint32_t idx;
	for (;;) {
		struct ring *r = V(ring_for)(&idx);
		if (!r) return;
		uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		uint64_t gen = __atomic_load_n(&r->gen, __ATOMIC_RELAXED);
		uint64_t limit = (seq & 1) ? gen : UINT64_MAX;
		if ((seq & 15) == 0) {
			V(must_not_commit)(V(rseqtrace_load_cbne_load_cbgtu_store)(idx, &r->head, h, &r->gen, 1, &r->head,
								    h + 1), 0, "a limit below the value (unsigned)");
			V(must_not_commit)(V(rseqtrace_load_cbne_load_cbgtu_store)(idx, &r->head, h, &r->gen, gen - 1,
								    &r->head, h + 1), 0, "a limit one below the value");
			V(must_not_commit)(V(rseqtrace_load_cbne_load_cbgtu_store)(WRONG_INDEX, &r->head, h, &r->gen, limit,
								    &r->head, h + 1), 1, "a wrong index");
		}
		if (V(tally)(V(rseqtrace_load_cbne_load_cbgtu_store)(idx, &r->head, h, &r->gen, limit, &r->head, h + 1)))
			break;
	}
	me->commits++;
	me->added += 1;
}

/* The signal handler's own critical section: one unit into sigcount of the current index. */
static void V(signal_add)(void)
{
	uint32_t i = V_INDEX();
	if (i >= MAX_INDEX) {
		me->sig_unregistered++;
		return;
	}
	for (int attempt = 0; attempt < 1000; attempt++) {
		i = V_INDEX();
		if (i >= MAX_INDEX) break;
		if (V(rseqtrace_load_add_store)(i, &rings[i].sigcount, 1) == 0) {
			me->sig_added++;
			return;
		}
		me->sig_aborts++;
	}
	me->sig_gave_up++;
}

static const struct op V(ops)[] = {
	{ "rseqtrace_load_cbne_stamp_trystore_store", V(op_stamp_trystore_store), KIND_RECORDS },
	{ "rseqtrace_load_cbne_load_cbne_stamp_trystores_store", V(op_stamp_trystores_store), KIND_RECORDS },
	{ "rseqtrace_load_cbne_stamp_memcpy_trystore_store", V(op_stamp_memcpy_trystore_store), KIND_RECORDS },
	{ "rseqtrace_load_add_store", V(op_add_store), KIND_COUNT },
	{ "rseqtrace_load_cbgeu_addv", V(op_cbgeu_addv), KIND_COUNT },
	{ "rseqtrace_load_cbne_trystore_store", V(op_trystore_store), KIND_RECORDS },
	{ "rseqtrace_load_cbne_load_cbne_store", V(op_load_cbne_store), KIND_HEAD },
	{ "rseqtrace_load_cbne_load_cbgtu_store", V(op_load_cbgtu_store), KIND_HEAD },
};
