/*
 * check.c - the invariant checker.  It verifies the arena's invariants
 * I1..I11 and I13 (stated in arena.c) and the caches' Q1..Q7 (stated in qcache.c)
 * by walking the structures independently of the code that maintains
 * them.  I12, that a failed call changes nothing, is about calls rather
 * than states: the tests check it with a snapshot of the arena before and
 * after (tests/helpers.h).  Tests call vmem_check after every step, and
 * some call it while other threads run: every check below holds whenever
 * the caches' locks and the arena's lock are all held, which is how it
 * runs.
 *
 * The checker stands beside the layers rather than in them: it reads every
 * layer's structures and is called only by tests (seams.h).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdarg.h>
#include <string.h>

#include "vmem_impl.h"

/* vmem_check's number for Qn: the arena's are 1..13, the caches' 101.. */
#define QINV(n) (100 + (n))

struct checker {
	const struct arena *ar;
	const struct qcaches *qs;
	char *buf;
	size_t len;
	int broken;
	uint64_t marked[VMEM_QCACHE_MAX]; /* Q7: objects marked as with a caller, per cache */
};

__attribute__((format(printf, 3, 4))) static bool ck_fail(struct checker *c, int inv,
							  const char *fmt, ...)
{
	if (c->broken == 0) {
		c->broken = inv;
		if (c->buf != NULL && c->len != 0) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->buf, c->len, fmt, ap);
			va_end(ap);
		}
	}
	return false;
}

#define CK(c, inv, cond, ...) ((cond) ? true : ck_fail((c), (inv), __VA_ARGS__))

/* ==== the arena: I1..I11, I13 =============================================== */

/* What the walk of the address list counts, for the checks after it. */
struct tally {
	uint64_t nspan, nfree, nbusy, ntags, nsmall;
	vmem_size_t span_total, free_total, alloc_total, import_total;
};

/* A tag's cold part outside the treaps and slabs: all clear (I7). */
static bool ck_node_clear(const struct bt_node *n)
{
	return n->left == BT_NIL && n->right == BT_NIL && n->parent == BT_NIL && n->max == 0;
}

/* The cookie a slab's tag keeps in its cold part; 0 while there is none. */
static uintptr_t ck_cookie(const struct arena *ar, bt_idx i)
{
	return ar->bt_node != NULL ? bt_node_cookie(BN(ar, i)) : 0;
}

/* One segment of span s in the address walk: I3, I6 (membership), I7 for
 * busy tags, I10.  prev_free says whether the segment before it was free. */
static bool ck_segment(struct checker *c, const struct bt *s, bt_idx i, bool *prev_free,
		       struct tally *t)
{
	const struct arena *ar = c->ar;
	const struct bt *b = BT(ar, i);
	bool releasing = ar->source != NULL || ar->releasefn != NULL;
	if (b->type == BT_FREE) {
		if (!CK(c, 3, !*prev_free, "adjacent free segments at %#llx",
			(unsigned long long)b->start))
			return false;
		if (!CK(c, 10, !(releasing && s->type == BT_SPAN_IMPORT && b->size == s->size),
			"imported span %#llx wholly free but kept", (unsigned long long)s->start))
			return false;
		t->nfree++;
		t->free_total += b->size;
		*prev_free = true;
		return true;
	}
	if (!CK(c, 1, bt_is_busy(b), "tag %u of type %u in the address list", i, b->type))
		return false;
	if (!CK(c, 6, hash_lookup(ar, b->start) == i, "busy %#llx not in the hash",
		(unsigned long long)b->start))
		return false;
	/* a slab's left and right hold its cookie (qcache.c) */
	const struct bt_node *n = ar->bt_node != NULL ? BN(ar, i) : NULL;
	if (!CK(c, 7, n == NULL || (b->type == BT_BUSY_QC ? n->parent == BT_NIL && n->max == 0
							    : ck_node_clear(n)),
		"busy %#llx has treap fields set", (unsigned long long)b->start))
		return false;
	t->nbusy++;
	t->alloc_total += b->size;
	if (b->type != BT_BUSY_QC && b->size <= ar->small_max)
		t->nsmall++;
	*prev_free = false;
	return true;
}

/* I1 (the list), I2 (spans tile, in order, the span list agrees), I8 (sizes
 * and alignment), and each segment by ck_segment. */
static bool ck_address_list(struct checker *c, struct tally *t)
{
	const struct arena *ar = c->ar;
	const vmem_size_t q1 = ar->quantum - 1;
	bt_idx cur_span = BT_NIL, span_list = BT(ar, BT_HEAD)->lnext;
	vmem_addr_t expect = 0; /* next segment start within cur_span */
	bool span_done = true, prev_free = false;
	vmem_size_t covered = 0;
	bt_idx prev = BT_HEAD;
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next) {
		if (!CK(c, 1, i < ar->bt_cap && t->ntags < ar->bt_cap, "address list broken at %u", i))
			return false;
		const struct bt *b = BT(ar, i);
		t->ntags++;
		if (!CK(c, 1, b->prev == prev, "tag %u: prev is %u, want %u", i, b->prev, prev))
			return false;
		prev = i;
		if (!CK(c, 8, b->size != 0 && (b->start & q1) == 0 && (b->size & q1) == 0 &&
				  b->size - 1 <= VMEM_ADDR_MAX - b->start,
			"tag %u [%#llx, +%llu] empty, misaligned or wrapping", i,
			(unsigned long long)b->start, (unsigned long long)b->size))
			return false;
		if (bt_is_span(b)) {
			if (!CK(c, 2, span_done, "span before %#llx not tiled: %llu of %llu units",
				(unsigned long long)b->start, (unsigned long long)covered,
				(unsigned long long)(cur_span ? BT(ar, cur_span)->size : 0)))
				return false;
			if (!CK(c, 2, cur_span == BT_NIL || b->start > bt_last(BT(ar, cur_span)),
				"spans overlap or are out of order at %#llx", (unsigned long long)b->start))
				return false;
			if (!CK(c, 2, i == span_list, "span list does not follow address order at %u", i))
				return false;
			if (!CK(c, 2, BT(ar, span_list)->lnext == BT_HEAD ||
					  BT(ar, BT(ar, span_list)->lnext)->lprev == span_list,
				"span list links broken at %u", i))
				return false;
			span_list = b->lnext;
			cur_span = i;
			expect = b->start;
			covered = 0;
			span_done = false;
			prev_free = false;
			t->nspan++;
			t->span_total += b->size;
			if (b->type == BT_SPAN_IMPORT)
				t->import_total += b->size;
			continue;
		}
		if (!CK(c, 2, cur_span != BT_NIL && !span_done, "segment %#llx outside every span",
			(unsigned long long)b->start))
			return false;
		if (!CK(c, 2, b->start == expect, "segment at %#llx, want %#llx",
			(unsigned long long)b->start, (unsigned long long)expect))
			return false;
		covered += b->size;
		const struct bt *s = BT(ar, cur_span);
		if (!CK(c, 2, covered <= s->size, "segments overrun span %#llx",
			(unsigned long long)s->start))
			return false;
		if (covered == s->size)
			span_done = true;
		else
			expect = b->start + b->size;
		if (!ck_segment(c, s, i, &prev_free, t))
			return false;
	}
	if (!CK(c, 1, BT(ar, BT_HEAD)->prev == prev, "BT_HEAD prev is %u, want %u",
		BT(ar, BT_HEAD)->prev, prev))
		return false;
	return CK(c, 2, span_done && span_list == BT_HEAD, "last span not tiled or span list too long");
}

/* I4: freelists and bitmap (empty until built). */
static bool ck_freelists(struct checker *c, const struct tally *t)
{
	const struct arena *ar = c->ar;
	uint64_t onlists = 0;
	for (unsigned int k = 0; k < VMEM_NCLASS; k++) {
		bt_idx h = ar->fl_head[k];
		if (!CK(c, 4, ((ar->fl_bitmap >> k) & 1) == (h != BT_NIL), "bitmap bit %u wrong", k))
			return false;
		bt_idx p = BT_NIL;
		for (bt_idx i = h; i != BT_NIL; i = BT(ar, i)->lnext) {
			if (!CK(c, 4, i < ar->bt_cap && onlists <= t->nfree, "freelist %u runs away", k))
				return false;
			const struct bt *b = BT(ar, i);
			if (!CK(c, 4, b->type == BT_FREE && freelist_class(b->size) == k && b->lprev == p,
				"freelist %u: tag %u (type %u, size %llu) misplaced", k, i, b->type,
				(unsigned long long)b->size))
				return false;
			p = i;
			onlists++;
		}
	}
	return CK(c, 4, onlists == (ar->fl_on ? t->nfree : 0),
		  "%llu tags on freelists, %llu free segments", (unsigned long long)onlists,
		  (unsigned long long)t->nfree);
}

/* In-order walk of a treap (the free one, I5, or the span one, I2):
 * checks order, heap property and max; counts nodes. */
struct treewalk {
	int inv;
	vmem_addr_t lastend;
	bool first;
	uint64_t count;
};

static bool ck_tree(struct checker *c, struct treewalk *w, bt_idx t, bt_idx parent, uint64_t depth,
		    uint32_t *maxp)
{
	const struct arena *ar = c->ar;
	int inv = w->inv;
	if (t == BT_NIL) {
		*maxp = 0;
		return true;
	}
	if (!CK(c, inv, depth < 4096 && t < ar->bt_cap, "treap too deep or index %u out of range", t))
		return false;
	const struct bt *b = BT(ar, t);
	const struct bt_node *n = BN(ar, t);
	bool kind = inv == 5 ? b->type == BT_FREE : bt_is_span(b);
	if (!CK(c, inv, kind, "treap node %u has type %u", t, b->type))
		return false;
	if (!CK(c, inv, n->parent == parent, "treap node %u: parent %u, want %u", t, n->parent,
		parent))
		return false;
	if (!CK(c, inv, n->left == BT_NIL || tree_prio(ar, n->left) <= tree_prio(ar, t),
		"heap order at %u", t))
		return false;
	if (!CK(c, inv, n->right == BT_NIL || tree_prio(ar, n->right) <= tree_prio(ar, t),
		"heap order at %u", t))
		return false;
	uint32_t lm, rm;
	if (!ck_tree(c, w, n->left, t, depth + 1, &lm))
		return false;
	if (!CK(c, inv, w->first || b->start > w->lastend, "treap out of address order at %#llx",
		(unsigned long long)b->start))
		return false;
	w->first = false;
	w->lastend = bt_last(b);
	w->count++;
	if (!ck_tree(c, w, n->right, t, depth + 1, &rm))
		return false;
	uint32_t m = tree_units(ar, b->size);
	if (lm > m)
		m = lm;
	if (rm > m)
		m = rm;
	*maxp = m;
	/* the span treap does not use max, but keeps it as exact */
	return CK(c, inv, n->max == m, "treap max at %#llx is %u, want %u",
		  (unsigned long long)b->start, n->max, m);
}

/* I5: the treap of free segments. */
static bool ck_treap(struct checker *c, const struct tally *t)
{
	const struct arena *ar = c->ar;
	if (ar->bt_node == NULL)
		return CK(c, 5, !ar->tree_on && ar->tree_root == BT_NIL && ar->tree_pending == BT_NIL,
			  "a treap without the tags' cold parts");
	const struct bt_node *nil = BN(ar, BT_NIL);
	if (!CK(c, 5, nil->max == 0 && nil->left == BT_NIL && nil->right == BT_NIL &&
			      nil->parent == BT_NIL,
		"BT_NIL was written"))
		return false;
	struct treewalk w = { .inv = 5, .first = true };
	uint32_t rootmax;
	if (!ck_tree(c, &w, ar->tree_root, BT_NIL, 0, &rootmax))
		return false;
	/* the newest free segment may wait beside the treap, its node clear */
	bt_idx p = ar->tree_pending;
	if (!CK(c, 5, p == BT_NIL || (ar->tree_on && p < ar->bt_cap && BT(ar, p)->type == BT_FREE &&
				      ck_node_clear(BN(ar, p))),
		"pending treap segment %u is not a free segment outside the treap", p))
		return false;
	uint64_t held = w.count + (p != BT_NIL);
	return CK(c, 5, held == (ar->tree_on ? t->nfree : 0),
		  "%llu treap nodes (and pending), %llu free segments", (unsigned long long)held,
		  (unsigned long long)t->nfree);
}

/* I2: the span treap holds exactly the spans. */
static bool ck_span_treap(struct checker *c, const struct tally *t)
{
	if (c->ar->bt_node == NULL)
		return CK(c, 2, c->ar->span_root == BT_NIL && t->nspan <= 1,
			  "%llu spans, and no span treap", (unsigned long long)t->nspan);
	struct treewalk w = { .inv = 2, .first = true };
	uint32_t rootmax;
	if (!ck_tree(c, &w, c->ar->span_root, BT_NIL, 0, &rootmax))
		return false;
	return CK(c, 2, w.count == t->nspan, "%llu spans in the span treap, %llu in the list",
		  (unsigned long long)w.count, (unsigned long long)t->nspan);
}

/* I6: the hash holds exactly the busy segments; I11: its load. */
static bool ck_hash(struct checker *c, const struct tally *t)
{
	const struct arena *ar = c->ar;
	uint64_t inhash = 0, nb = ar->hash_mask + 1;
	for (uint64_t k = 0; k < nb; k++) {
		for (bt_idx i = ar->hash[k]; i != BT_NIL; i = BT(ar, i)->lnext) {
			if (!CK(c, 6, i < ar->bt_cap && inhash < t->nbusy, "hash chain %llu runs away",
				(unsigned long long)k))
				return false;
			const struct bt *b = BT(ar, i);
			if (!CK(c, 6, bt_is_busy(b) && hash_lookup(ar, b->start) == i,
				"hash bucket %llu holds tag %u (type %u)", (unsigned long long)k, i,
				b->type))
				return false;
			inhash++;
		}
	}
	if (!CK(c, 6, inhash == t->nbusy && ar->nalloc == t->nbusy,
		"hash holds %llu, %llu busy, nalloc %llu", (unsigned long long)inhash,
		(unsigned long long)t->nbusy, (unsigned long long)ar->nalloc))
		return false;
	return CK(c, 11, ar->nalloc <= nb + 1, "hash load %llu/%llu too high",
		  (unsigned long long)ar->nalloc, (unsigned long long)nb);
}

/* I7: every tag is in use, on the unused chain, which is well formed, or in
 * the fresh run, untouched. */
static bool ck_tags(struct checker *c, const struct tally *t)
{
	const struct arena *ar = c->ar;
	uint64_t unused = 0;
	bool chain_ok = true;
	bt_idx bad = BT_NIL;
	QUIET_BEGIN(ar); /* unused tags are not alive for valgrind */
	for (bt_idx i = ar->bt_unused; i != BT_NIL; i = BT(ar, i)->lnext) {
		const struct bt *b = i < ar->bt_cap ? BT(ar, i) : NULL;
		if (i < BT_FIRST || b == NULL || unused >= ar->bt_cap || b->type != BT_UNUSED ||
		    (ar->bt_node != NULL && !ck_node_clear(BN(ar, i)))) {
			chain_ok = false;
			bad = i;
			break;
		}
		unused++;
	}
	QUIET_END(ar);
	if (!CK(c, 7, chain_ok, "unused chain broken, or treap fields set, at %u", bad))
		return false;
	/* the fresh run: never used, so every byte still zero */
	if (!CK(c, 7, ar->bt_fresh >= BT_FIRST && ar->bt_fresh <= ar->bt_cap,
		"fresh run from %u of %u tags", ar->bt_fresh, ar->bt_cap))
		return false;
	static const struct bt zero;
	QUIET_BEGIN(ar);
	for (bt_idx i = ar->bt_fresh; i < ar->bt_cap && bad == BT_NIL; i++)
		if (memcmp(BT(ar, i), &zero, sizeof(zero)) != 0)
			bad = i;
	QUIET_END(ar);
	if (!CK(c, 7, bad == BT_NIL, "fresh tag %u has been written", bad))
		return false;
	if (ar->bt_node != NULL) {
		if (!CK(c, 7, ar->bt_node_bytes >= (size_t)ar->bt_cap * sizeof(struct bt_node),
			"%zu bytes of cold parts for %u tags", ar->bt_node_bytes, ar->bt_cap))
			return false;
		for (bt_idx i = ar->bt_fresh; i < ar->bt_cap && bad == BT_NIL; i++)
			if (!ck_node_clear(BN(ar, i)))
				bad = i;
		if (!CK(c, 7, bad == BT_NIL, "fresh tag %u has treap fields set", bad))
			return false;
	}
	uint64_t fresh = ar->bt_cap - ar->bt_fresh;
	return CK(c, 7,
		  unused + fresh == ar->bt_nunused && t->ntags + unused + fresh + BT_FIRST == ar->bt_cap,
		  "%llu tags in use + %llu unused + %llu fresh (counted %u) + 2 sentinels != %u "
		  "mapped",
		  (unsigned long long)t->ntags, (unsigned long long)unused,
		  (unsigned long long)fresh, ar->bt_nunused, ar->bt_cap);
}

/* I13: the free map has a bit set for exactly the free segments' tags,
 * and none past the tags mapped. */
static bool ck_freemap(struct checker *c, const struct tally *t)
{
	const struct arena *ar = c->ar;
	uint64_t bits = (uint64_t)ar->bt_freemap_bytes * 8, set = 0;
	bt_idx bad = BT_NIL;
	if (!CK(c, 13, bits >= ar->bt_cap, "free map of %llu bits for %u tags",
		(unsigned long long)bits, ar->bt_cap))
		return false;
	QUIET_BEGIN(ar); /* unused tags are not alive for valgrind */
	for (uint64_t i = 0; i < bits && bad == BT_NIL; i++) {
		bool on = (ar->bt_freemap[i >> 6] >> (i & 63)) & 1;
		set += on;
		if (on != (i < ar->bt_cap && BT(ar, (bt_idx)i)->type == BT_FREE))
			bad = (bt_idx)i;
	}
	QUIET_END(ar);
	if (!CK(c, 13, bad == BT_NIL, "free map bit %u disagrees with its tag", bad))
		return false;
	return CK(c, 13, set == t->nfree, "free map has %llu bits set, %llu free segments",
		  (unsigned long long)set, (unsigned long long)t->nfree);
}

/* I9: the totals and counts the arena keeps agree with the tags. */
static bool ck_totals(struct checker *c, const struct tally *t)
{
	const struct arena *ar = c->ar;
	return CK(c, 9,
		  t->span_total == ar->span_total && t->free_total == arena_free_total(ar) &&
			  t->alloc_total == ar->alloc_total && t->import_total == ar->import_total &&
			  t->nspan == ar->nspans && t->nfree == ar->nfree && t->nbusy == ar->nalloc &&
			  t->span_total == t->free_total + t->alloc_total,
		  "totals: spans %llu/%llu free %llu/%llu alloc %llu/%llu import %llu/%llu "
		  "nspans %llu/%llu nfree %llu/%llu",
		  (unsigned long long)t->span_total, (unsigned long long)ar->span_total,
		  (unsigned long long)t->free_total, (unsigned long long)arena_free_total(ar),
		  (unsigned long long)t->alloc_total, (unsigned long long)ar->alloc_total,
		  (unsigned long long)t->import_total, (unsigned long long)ar->import_total,
		  (unsigned long long)t->nspan, (unsigned long long)ar->nspans,
		  (unsigned long long)t->nfree, (unsigned long long)ar->nfree);
}

/* ==== the caches: Q1..Q7 =================================================== */

static inline uint64_t ck_rounds(const struct qc_cpu *cc)
{
	return cc->bias + cc->pushes - cc->pops;
}

static const struct qcache *ck_cache_of_slab(const struct qcaches *qs, vmem_size_t slabsize)
{
	for (unsigned int k = 0; k < qs->n; k++)
		if (qs->tab[k]->slabsize == slabsize)
			return qs->tab[k];
	return NULL;
}

/* The record of the slab holding obj, from the arena's tags; NULL if obj
 * is no object of c's slabs. */
static const struct qc_slab *ck_slab_of(const struct arena *ar, const struct qcache *c,
					vmem_addr_t obj, unsigned int *bitp)
{
	vmem_addr_t base = obj & ~(c->slabalign - 1);
	bt_idx i = hash_lookup(ar, base);
	const struct bt *b = BT(ar, i);
	if (i == BT_NIL || b->type != BT_BUSY_QC || b->size != c->slabsize)
		return NULL;
	const struct qc_slab *s = (const struct qc_slab *)ck_cookie(ar, i);
	if (s == NULL || (obj - base) % c->objsize != 0 || (obj - base) / c->objsize >= QCACHE_SLAB_OBJS)
		return NULL;
	*bitp = (unsigned int)((obj - base) / c->objsize);
	return s;
}

/* Q2: the free gate follows the arena's own segments of cached sizes. */
static bool ck_gate(struct checker *c, const struct tally *t)
{
	const struct arena *ar = c->ar;
	const struct qcaches *qs = c->qs;
	if (!CK(c, QINV(2), ar->arena_small == t->nsmall,
		"the arena counts %llu segments of cached sizes of its own, the tags %llu",
		(unsigned long long)ar->arena_small, (unsigned long long)t->nsmall))
		return false;
	vmem_size_t want_max = qs->rseq && !qs->debug ? qs->max : 0;
	if (!CK(c, QINV(2), qs->alloc_max == want_max, "alloc_max %llu, want %llu",
		(unsigned long long)qs->alloc_max, (unsigned long long)want_max))
		return false;
	vmem_size_t want = ar->arena_small == 0 ? qs->alloc_max : 0;
	return CK(c, QINV(2), ar->free_gate == want && ar->gate_open == qs->alloc_max,
		  "free gate %llu (open: %llu), want %llu with %llu segments of cached sizes",
		  (unsigned long long)ar->free_gate, (unsigned long long)ar->gate_open,
		  (unsigned long long)want, (unsigned long long)ar->arena_small);
}

/* Q3: slab segments with a cookie are their caches' slabs, nslabs of them. */
static bool ck_slabs(struct checker *c)
{
	const struct arena *ar = c->ar;
	const struct qcaches *qs = c->qs;
	uint64_t found[VMEM_QCACHE_MAX] = { 0 };
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next) {
		const struct bt *b = BT(ar, i);
		uintptr_t cookie = ck_cookie(ar, i);
		if (b->type != BT_BUSY_QC || cookie == 0)
			continue; /* not a slab, or one in transit between arena and cache */
		const struct qcache *qc = ck_cache_of_slab(qs, b->size);
		const struct qc_slab *s = (const struct qc_slab *)cookie;
		if (!CK(c, QINV(3), qc != NULL && (b->start & (qc->slabalign - 1)) == 0 &&
					    s->base == b->start,
			"slab [%#llx, +%llu] fits no cache, is misaligned or names another record",
			(unsigned long long)b->start, (unsigned long long)b->size))
			return false;
		found[(qc->objsize >> qs->qshift) - 1]++;
	}
	for (unsigned int k = 0; k < qs->n; k++)
		if (!CK(c, QINV(3), found[k] == qs->tab[k]->nslabs, "cache %llu: %llu slabs, %llu kept",
			(unsigned long long)qs->tab[k]->objsize, (unsigned long long)found[k],
			(unsigned long long)qs->tab[k]->nslabs))
			return false;
	return true;
}

/* Q4 for every slab of c (reached through the arena's cookies), and the
 * partial list; returns the free objects in slabs. */
static bool ck_slab_records(struct checker *c, const struct qcache *qc, uint64_t *slab_free)
{
	const struct arena *ar = c->ar;
	uint64_t npartial = 0;
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next) {
		const struct bt *b = BT(ar, i);
		uintptr_t cookie = ck_cookie(ar, i);
		if (b->type != BT_BUSY_QC || b->size != qc->slabsize || cookie == 0)
			continue;
		const struct qc_slab *s = (const struct qc_slab *)cookie;
		bool linked = s->prev != NULL || qc->partial == s;
		if (!CK(c, QINV(4), s->nfree == (uint32_t)__builtin_popcountll(s->freemap) &&
					    linked == (s->nfree != 0),
			"slab %#llx: nfree %u, %d objects free, %s the partial list",
			(unsigned long long)s->base, s->nfree, __builtin_popcountll(s->freemap),
			linked ? "on" : "off"))
			return false;
		*slab_free += s->nfree;
		npartial += s->nfree != 0;
	}
	uint64_t onlist = 0;
	for (const struct qc_slab *s = qc->partial; s != NULL && onlist <= npartial; s = s->next) {
		if (!CK(c, QINV(4), s->nfree != 0 && (s->next == NULL || s->next->prev == s),
			"partial list of cache %llu broken at %#llx", (unsigned long long)qc->objsize,
			(unsigned long long)s->base))
			return false;
		onlist++;
	}
	return CK(c, QINV(4), onlist == npartial, "cache %llu: %llu slabs on the partial list, %llu with free objects",
		  (unsigned long long)qc->objsize, (unsigned long long)onlist,
		  (unsigned long long)npartial);
}

/* Q6 for one magazine's rounds: objects of the cache's slabs, neither free
 * in them nor marked as with a caller; each is added to seen, to look for
 * twins after. */
struct seen {
	vmem_addr_t *obj;
	uint64_t n, cap;
};

static bool ck_rounds_of(struct checker *c, const struct qcache *qc, const vmem_addr_t *obj,
			 uint64_t n, struct seen *seen)
{
	for (uint64_t k = 0; k < n; k++) {
		unsigned int bit = 0;
		const struct qc_slab *s = ck_slab_of(c->ar, qc, obj[k], &bit);
		const uint8_t *st = c->qs->checked ? qstate_byte(&c->qs->state, obj[k] >> c->qs->qshift) : NULL;
		bool marked = st != NULL && qstate_read(st) == (uint8_t)(qc->objsize >> c->qs->qshift);
		if (!CK(c, QINV(6), s != NULL && !(s->freemap >> bit & 1) && !marked,
			"cache %llu: round %#llx is no object, or is free or with a caller",
			(unsigned long long)qc->objsize, (unsigned long long)obj[k]))
			return false;
		if (seen->n < seen->cap)
			seen->obj[seen->n] = obj[k];
		seen->n++;
	}
	return true;
}

/* Move a[r] down the max-heap a[0..n) to its place. */
static void ck_sift(vmem_addr_t *a, uint64_t r, uint64_t n)
{
	for (uint64_t ch; (ch = 2 * r + 1) < n; r = ch) {
		if (ch + 1 < n && a[ch] < a[ch + 1])
			ch++;
		if (a[r] >= a[ch])
			return;
		vmem_addr_t x = a[r];
		a[r] = a[ch];
		a[ch] = x;
	}
}

/* Sort a[0..n) in place: heapsort, no memory, n log n. */
static void ck_sort(vmem_addr_t *a, uint64_t n)
{
	for (uint64_t i = n / 2; i-- > 0;)
		ck_sift(a, i, n);
	for (uint64_t end = n; end-- > 1;) {
		vmem_addr_t x = a[0];
		a[0] = a[end];
		a[end] = x;
		ck_sift(a, 0, end);
	}
}

/* Q5, Q6 and Q1 for one cache. */
static bool ck_cache(struct checker *c, const struct qcache *qc)
{
	const struct qcaches *qs = c->qs;
	uint64_t rounds = 0, hits = 0, pushes = 0;

	/* Q5: the magazines */
	for (unsigned int i = 0; i < qs->ncpu; i++) {
		const struct qc_cpu *cc = &qc->cpu[i];
		uint64_t r = ck_rounds(cc);
		if (!CK(c, QINV(5), cc->loaded != NULL && cc->prev != NULL && cc->cap <= QC_MAG_MAX &&
					    r <= cc->cap && cc->prev->rounds <= QC_MAG_MAX,
			"cache %llu, CPU %u: %llu rounds in a magazine of %u", (unsigned long long)qc->objsize,
			i, (unsigned long long)r, cc->cap))
			return false;
		rounds += r + cc->prev->rounds;
		hits += cc->pops;
		pushes += cc->pushes;
	}
	uint64_t nfull = 0, nempty = 0;
	for (const struct qc_mag *m = qc->full; m != NULL && nfull <= qc->nmags; m = m->next, nfull++) {
		if (!CK(c, QINV(5), m->rounds != 0 && m->rounds <= QC_MAG_MAX,
			"cache %llu: a full magazine holds %u rounds", (unsigned long long)qc->objsize,
			m->rounds))
			return false;
		rounds += m->rounds;
	}
	for (const struct qc_mag *m = qc->empty; m != NULL && nempty <= qc->nmags; m = m->next, nempty++)
		if (!CK(c, QINV(5), m->rounds == 0, "cache %llu: an empty magazine holds %u rounds",
			(unsigned long long)qc->objsize, m->rounds))
			return false;
	if (!CK(c, QINV(5), nfull == qc->nfull && nempty == qc->nempty,
		"cache %llu: depot has %llu full and %llu empty, counts %llu and %llu",
		(unsigned long long)qc->objsize, (unsigned long long)nfull, (unsigned long long)nempty,
		(unsigned long long)qc->nfull, (unsigned long long)qc->nempty))
		return false;

	/* Q4: the slabs */
	uint64_t slab_free = 0;
	if (!ck_slab_records(c, qc, &slab_free))
		return false;

	/* Q6: every round an object, none twice; the rounds are sorted in a
	 * scratch mapping to find twins (the checker may not use malloc) */
	struct seen seen = { 0 };
	seen.cap = rounds;
	size_t bytes = os_round_page(rounds * sizeof(vmem_addr_t));
	if (rounds != 0)
		seen.obj = os_scratch_map(bytes);
	if (seen.obj == NULL)
		seen.cap = 0;
	bool ok = true;
	for (unsigned int i = 0; ok && i < qs->ncpu; i++) {
		const struct qc_cpu *cc = &qc->cpu[i];
		ok = ck_rounds_of(c, qc, cc->loaded->obj, ck_rounds(cc), &seen) &&
		     ck_rounds_of(c, qc, cc->prev->obj, cc->prev->rounds, &seen);
	}
	for (const struct qc_mag *m = qc->full; ok && m != NULL; m = m->next)
		ok = ck_rounds_of(c, qc, m->obj, m->rounds, &seen);
	if (ok && seen.cap != 0) {
		ck_sort(seen.obj, seen.cap);
		for (uint64_t k = 1; ok && k < seen.cap; k++)
			ok = CK(c, QINV(6), seen.obj[k] != seen.obj[k - 1],
				"cache %llu: object %#llx is a round twice", (unsigned long long)qc->objsize,
				(unsigned long long)seen.obj[k]);
	}
	if (seen.obj != NULL)
		os_scratch_unmap(seen.obj, bytes);
	if (!ok)
		return false;

	/* Q1: conservation */
	uint64_t held = (hits + qc->allocs) - (pushes + qc->frees);
	if (!CK(c, QINV(1), qc->nslabs * QCACHE_SLAB_OBJS == slab_free + rounds + held,
		"cache %llu: %llu slabs of %u, but %llu free in slabs + %llu in magazines + %llu held",
		(unsigned long long)qc->objsize, (unsigned long long)qc->nslabs, QCACHE_SLAB_OBJS,
		(unsigned long long)slab_free, (unsigned long long)rounds, (unsigned long long)held))
		return false;
	/* Q7: an object is marked after its pop and unmarked before its push,
	 * so a caller may hold one not marked yet, never the other way round */
	unsigned int k = (unsigned int)(qc->objsize >> qs->qshift);
	return CK(c, QINV(7), c->marked[k - 1] <= held,
		  "cache %llu: %llu objects marked as with a caller, %llu held",
		  (unsigned long long)qc->objsize, (unsigned long long)c->marked[k - 1],
		  (unsigned long long)held);
}

/* Q7 for one leaf of the state map: every unit marked as the start of an
 * object with a caller is one, of the cache its mark names, and not free
 * in its slab; counts the marks per cache. */
static void ck_state_leaf(void *arg, uint64_t u0, const uint8_t *b)
{
	struct checker *c = arg;
	const struct qcaches *qs = c->qs;
	for (uint64_t i = 0; i < QSTATE_LEAF_UNITS && c->broken == 0; i++) {
		/* the caches are locked, but frees change states without locks */
		unsigned int st = qstate_read(&b[i]), k = st & ~QSTATE_FREED;
		if (st == 0)
			continue;
		if (!CK(c, QINV(7), k >= 1 && k <= qs->n, "unit %#llx has state %#x",
			(unsigned long long)(u0 + i), st))
			return;
		if (st & QSTATE_FREED)
			continue;
		vmem_addr_t obj = (u0 + i) << qs->qshift;
		unsigned int bit = 0;
		const struct qc_slab *s = ck_slab_of(c->ar, qs->tab[k - 1], obj, &bit);
		if (!CK(c, QINV(7), s != NULL && !(s->freemap >> bit & 1),
			"%#llx is marked as a caller's object of %u quanta, but is none or is free",
			(unsigned long long)obj, k))
			return;
		c->marked[k - 1]++;
	}
}

static void ck_run(struct checker *c)
{
	struct tally t = { 0 };
	if (!ck_address_list(c, &t) || !ck_freelists(c, &t) || !ck_treap(c, &t) ||
	    !ck_hash(c, &t) || !ck_span_treap(c, &t) || !ck_tags(c, &t) || !ck_freemap(c, &t) ||
	    !ck_totals(c, &t))
		return;
	if (c->qs->map == NULL)
		return;
	if (!ck_gate(c, &t) || !ck_slabs(c))
		return;
	if (c->qs->checked)
		qstate_each_leaf(&c->qs->state, ck_state_leaf, c);
	if (c->broken != 0)
		return;
	for (unsigned int k = 0; k < c->qs->n; k++)
		if (!ck_cache(c, c->qs->tab[k]))
			return;
}

int vmem_check(vmem_t *vm, char *buf, size_t len)
{
	struct checker c = { .ar = &vm->arena, .qs = &vm->qc, .buf = buf, .len = len };
	if (buf != NULL && len != 0)
		buf[0] = '\0';
	/* in the lock order: every cache's locks, then the arena's */
	qcache_lock_all(&vm->qc);
	pthread_mutex_lock(&vm->arena.lock);
	ck_run(&c);
	pthread_mutex_unlock(&vm->arena.lock);
	qcache_unlock_all(&vm->qc);
	return c.broken;
}

/* ---- seams (seams.h) ----------------------------------------------------------- */

bool vmem_seam_lock_free(vmem_t *vm)
{
	if (pthread_mutex_trylock(&vm->arena.lock) != 0)
		return false;
	pthread_mutex_unlock(&vm->arena.lock);
	return true;
}

unsigned int vmem_seam_nwaiters(vmem_t *vm)
{
	pthread_mutex_lock(&vm->arena.lock);
	unsigned int n = vm->arena.nwaiters;
	pthread_mutex_unlock(&vm->arena.lock);
	return n;
}
