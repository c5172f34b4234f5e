/*
 * check.c - the invariant checker.  It verifies every invariant listed in
 * arena.c (I1..I11) by walking the arena's structures independently of the
 * code that maintains them.  Tests call it after every step.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdarg.h>
#include <string.h>

#include "vmem_impl.h"

struct checker {
	const vmem_t *vm;
	char *buf;
	size_t len;
	int broken;
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

/* In-order walk of a treap (the free one, I5, or the span one, I2):
 * checks order, heap property and max; counts nodes. */
static bool ck_tree(struct checker *c, int inv, bt_idx t, bt_idx parent, uint64_t depth,
		    vmem_addr_t *lastend, bool *first, uint64_t *count, uint32_t *maxp)
{
	const vmem_t *vm = c->vm;
	if (t == BT_NIL) {
		*maxp = 0;
		return true;
	}
	if (!CK(c, inv, depth < 4096 && t < vm->bt_cap, "treap too deep or index %u out of range", t))
		return false;
	const struct bt *b = BT(vm, t);
	bool kind = inv == 5 ? b->type == BT_FREE : bt_is_span(b);
	if (!CK(c, inv, kind, "treap node %u has type %u", t, b->type))
		return false;
	if (!CK(c, inv, b->parent == parent, "treap node %u: parent %u, want %u", t, b->parent,
		parent))
		return false;
	uint32_t lm, rm;
	if (b->left != BT_NIL &&
	    !CK(c, inv, tree_prio(vm, b->left) <= tree_prio(vm, t), "heap order at %u", t))
		return false;
	if (b->right != BT_NIL &&
	    !CK(c, inv, tree_prio(vm, b->right) <= tree_prio(vm, t), "heap order at %u", t))
		return false;
	if (!ck_tree(c, inv, b->left, t, depth + 1, lastend, first, count, &lm))
		return false;
	if (!CK(c, inv, *first || b->start > *lastend, "treap out of address order at %#llx",
		(unsigned long long)b->start))
		return false;
	*first = false;
	*lastend = bt_last(b);
	(*count)++;
	if (!ck_tree(c, inv, b->right, t, depth + 1, lastend, first, count, &rm))
		return false;
	uint32_t m = tree_units(vm, b->size);
	if (lm > m)
		m = lm;
	if (rm > m)
		m = rm;
	*maxp = m;
	/* the span treap does not use max, but keeps it as exact */
	return CK(c, inv, b->max == m, "treap max at %#llx is %u, want %u",
		  (unsigned long long)b->start, b->max, m);
}

static void ck_run(struct checker *c)
{
	const vmem_t *vm = c->vm;
	const vmem_size_t q1 = vm->quantum - 1;
	uint64_t nspan = 0, nfree = 0, nbusy = 0, ntags = 0;
	vmem_size_t span_total = 0, free_total = 0, alloc_total = 0, import_total = 0;
	bool releasing = vm->source != NULL || vm->releasefn != NULL;

	/* I1, I2, I3, I8: the address list */
	bt_idx cur_span = BT_NIL, span_list = BT(vm, BT_HEAD)->lnext;
	vmem_addr_t expect = 0; /* next segment start within cur_span */
	bool span_done = true;
	vmem_size_t covered = 0;
	bt_idx prev = BT_HEAD;
	bool prev_free = false;
	for (bt_idx i = BT(vm, BT_HEAD)->next; i != BT_HEAD; i = BT(vm, i)->next) {
		if (!CK(c, 1, i < vm->bt_cap && ntags < vm->bt_cap, "address list broken at %u", i))
			return;
		const struct bt *b = BT(vm, i);
		ntags++;
		if (!CK(c, 1, b->prev == prev, "tag %u: prev is %u, want %u", i, b->prev, prev))
			return;
		prev = i;
		if (!CK(c, 8, b->size != 0 && (b->start & q1) == 0 && (b->size & q1) == 0 &&
				  b->size - 1 <= VMEM_ADDR_MAX - b->start,
			"tag %u [%#llx, +%llu] empty, misaligned or wrapping", i,
			(unsigned long long)b->start, (unsigned long long)b->size))
			return;
		if (bt_is_span(b)) {
			if (!CK(c, 2, span_done, "span before %#llx not tiled: %llu of %llu units",
				(unsigned long long)b->start, (unsigned long long)covered,
				(unsigned long long)(cur_span ? BT(vm, cur_span)->size : 0)))
				return;
			if (!CK(c, 2, cur_span == BT_NIL || b->start > bt_last(BT(vm, cur_span)),
				"spans overlap or are out of order at %#llx", (unsigned long long)b->start))
				return;
			if (!CK(c, 2, i == span_list, "span list does not follow address order at %u", i))
				return;
			if (!CK(c, 2, BT(vm, span_list)->lnext == BT_HEAD ||
					  BT(vm, BT(vm, span_list)->lnext)->lprev == span_list,
				"span list links broken at %u", i))
				return;
			span_list = b->lnext;
			cur_span = i;
			expect = b->start;
			covered = 0;
			span_done = false;
			prev_free = false;
			nspan++;
			span_total += b->size;
			if (b->type == BT_SPAN_IMPORT)
				import_total += b->size;
			continue;
		}
		if (!CK(c, 2, cur_span != BT_NIL && !span_done, "segment %#llx outside every span",
			(unsigned long long)b->start))
			return;
		if (!CK(c, 2, b->start == expect, "segment at %#llx, want %#llx",
			(unsigned long long)b->start, (unsigned long long)expect))
			return;
		covered += b->size;
		const struct bt *s = BT(vm, cur_span);
		if (!CK(c, 2, covered <= s->size, "segments overrun span %#llx",
			(unsigned long long)s->start))
			return;
		if (covered == s->size)
			span_done = true;
		else
			expect = b->start + b->size;
		if (b->type == BT_FREE) {
			if (!CK(c, 3, !prev_free, "adjacent free segments at %#llx",
				(unsigned long long)b->start))
				return;
			if (!CK(c, 10, !(releasing && s->type == BT_SPAN_IMPORT && b->size == s->size),
				"imported span %#llx wholly free but kept", (unsigned long long)s->start))
				return;
			nfree++;
			free_total += b->size;
			prev_free = true;
		} else if (bt_is_busy(b)) {
			if (!CK(c, 6, hash_lookup(vm, b->start) == i, "busy %#llx not in the hash",
				(unsigned long long)b->start))
				return;
			/* a slab's left and right hold its record (qcache.c) */
			if (!CK(c, 7, (b->type == BT_BUSY_QC || (b->left == BT_NIL && b->right == BT_NIL)) &&
					      b->parent == BT_NIL && b->max == 0,
				"busy %#llx has treap fields set", (unsigned long long)b->start))
				return;
			nbusy++;
			alloc_total += b->size;
			prev_free = false;
		} else {
			ck_fail(c, 1, "tag %u of type %u in the address list", i, b->type);
			return;
		}
	}
	if (!CK(c, 1, BT(vm, BT_HEAD)->prev == prev, "BT_HEAD prev is %u, want %u",
		BT(vm, BT_HEAD)->prev, prev))
		return;
	if (!CK(c, 2, span_done && span_list == BT_HEAD, "last span not tiled or span list too long"))
		return;

	/* I4: freelists and bitmap (empty until built) */
	uint64_t onlists = 0;
	for (unsigned int k = 0; k < VMEM_NCLASS; k++) {
		bt_idx h = vm->fl_head[k];
		if (!CK(c, 4, ((vm->fl_bitmap >> k) & 1) == (h != BT_NIL), "bitmap bit %u wrong", k))
			return;
		bt_idx p = BT_NIL;
		for (bt_idx i = h; i != BT_NIL; i = BT(vm, i)->lnext) {
			if (!CK(c, 4, i < vm->bt_cap && onlists <= nfree, "freelist %u runs away", k))
				return;
			const struct bt *b = BT(vm, i);
			if (!CK(c, 4, b->type == BT_FREE && freelist_class(b->size) == k && b->lprev == p,
				"freelist %u: tag %u (type %u, size %llu) misplaced", k, i, b->type,
				(unsigned long long)b->size))
				return;
			p = i;
			onlists++;
		}
	}
	if (!CK(c, 4, onlists == (vm->fl_on ? nfree : 0), "%llu tags on freelists, %llu free segments",
		(unsigned long long)onlists, (unsigned long long)nfree))
		return;

	/* I5: treap */
	vmem_addr_t lastend = 0;
	bool first = true;
	uint64_t intree = 0;
	uint32_t rootmax;
	if (!CK(c, 5, BT(vm, BT_NIL)->max == 0 && BT(vm, BT_NIL)->left == BT_NIL &&
			  BT(vm, BT_NIL)->right == BT_NIL && BT(vm, BT_NIL)->parent == BT_NIL,
		"BT_NIL was written"))
		return;
	if (!ck_tree(c, 5, vm->tree_root, BT_NIL, 0, &lastend, &first, &intree, &rootmax))
		return;
	if (!CK(c, 5, intree == (vm->tree_on ? nfree : 0), "%llu treap nodes, %llu free segments",
		(unsigned long long)intree, (unsigned long long)nfree))
		return;

	/* I6, I11: hash */
	uint64_t inhash = 0, nb = vm->hash_mask + 1;
	for (uint64_t k = 0; k < nb; k++) {
		for (bt_idx i = vm->hash[k]; i != BT_NIL; i = BT(vm, i)->lnext) {
			if (!CK(c, 6, i < vm->bt_cap && inhash < nbusy, "hash chain %llu runs away",
				(unsigned long long)k))
				return;
			const struct bt *b = BT(vm, i);
			if (!CK(c, 6, bt_is_busy(b) && hash_lookup(vm, b->start) == i,
				"hash bucket %llu holds tag %u (type %u)", (unsigned long long)k, i,
				b->type))
				return;
			inhash++;
		}
	}
	if (!CK(c, 6, inhash == nbusy && vm->nalloc == nbusy, "hash holds %llu, %llu busy, nalloc %llu",
		(unsigned long long)inhash, (unsigned long long)nbusy,
		(unsigned long long)vm->nalloc))
		return;
	if (!CK(c, 11, vm->nalloc <= nb + 1, "hash load %llu/%llu too high",
		(unsigned long long)vm->nalloc, (unsigned long long)nb))
		return;

	/* I2: the span treap holds exactly the spans */
	uint64_t inspans = 0;
	lastend = 0;
	first = true;
	if (!ck_tree(c, 2, vm->span_root, BT_NIL, 0, &lastend, &first, &inspans, &rootmax))
		return;
	if (!CK(c, 2, inspans == nspan, "%llu spans in the span treap, %llu in the list",
		(unsigned long long)inspans, (unsigned long long)nspan))
		return;

	/* I7: tags */
	uint64_t unused = 0;
	bool chain_ok = true;
	bt_idx bad = BT_NIL;
	QUIET_BEGIN(vm); /* unused tags are not alive for valgrind */
	for (bt_idx i = vm->bt_unused; i != BT_NIL; i = BT(vm, i)->lnext) {
		const struct bt *b = i < vm->bt_cap ? BT(vm, i) : NULL;
		if (i < BT_FIRST || b == NULL || unused >= vm->bt_cap || b->type != BT_UNUSED ||
		    b->left != BT_NIL || b->right != BT_NIL || b->parent != BT_NIL || b->max != 0) {
			chain_ok = false;
			bad = i;
			break;
		}
		unused++;
	}
	QUIET_END(vm);
	if (!CK(c, 7, chain_ok, "unused chain broken, or treap fields set, at %u", bad))
		return;
	if (!CK(c, 7, unused == vm->bt_nunused && ntags + unused + BT_FIRST == vm->bt_cap,
		"%llu tags in use + %llu unused (counted %u) + 2 sentinels != %u mapped",
		(unsigned long long)ntags, (unsigned long long)unused, vm->bt_nunused, vm->bt_cap))
		return;

	/* I9: totals */
	CK(c, 9, span_total == vm->span_total && free_total == arena_free_total(vm) &&
			 alloc_total == vm->alloc_total && import_total == vm->import_total &&
			 nspan == vm->nspans && nfree == vm->nfree && nbusy == vm->nalloc &&
			 span_total == free_total + alloc_total,
	   "totals: spans %llu/%llu free %llu/%llu alloc %llu/%llu import %llu/%llu "
	   "nspans %llu/%llu nfree %llu/%llu",
	   (unsigned long long)span_total, (unsigned long long)vm->span_total,
	   (unsigned long long)free_total, (unsigned long long)arena_free_total(vm),
	   (unsigned long long)alloc_total, (unsigned long long)vm->alloc_total,
	   (unsigned long long)import_total, (unsigned long long)vm->import_total,
	   (unsigned long long)nspan, (unsigned long long)vm->nspans, (unsigned long long)nfree,
	   (unsigned long long)vm->nfree);
}

int vmem_check(vmem_t *vm, char *buf, size_t len)
{
	struct checker c = { vm, buf, len, 0 };
	if (buf != NULL && len != 0)
		buf[0] = '\0';
	pthread_mutex_lock(&vm->lock);
	ck_run(&c);
	pthread_mutex_unlock(&vm->lock);
	return c.broken;
}

bool vmem_seam_lock_free(vmem_t *vm)
{
	if (pthread_mutex_trylock(&vm->lock) != 0)
		return false;
	pthread_mutex_unlock(&vm->lock);
	return true;
}

unsigned int vmem_seam_nwaiters(vmem_t *vm)
{
	pthread_mutex_lock(&vm->lock);
	unsigned int n = vm->nwaiters;
	pthread_mutex_unlock(&vm->lock);
	return n;
}
