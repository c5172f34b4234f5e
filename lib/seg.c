/*
 * seg.c - segment operations under the arena lock: carving an allocation
 * out of a free segment, giving it back with coalescing, adding and taking
 * out spans, and the search by policy.  Each operation that needs new tags
 * reserves them first, so it either happens whole or not at all (I12).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>

#include "vmem_impl.h"

/* Free segment i becomes [start, start + size): its freelist follows its
 * class, and its treap position stays valid because no other free segment
 * lies between the old and the new range. */
static HOT_INLINE void seg_reshape(vmem_t *vm, bt_idx i, vmem_addr_t start, vmem_size_t size)
{
	struct bt *b = BT(vm, i);
	freelist_resize(vm, i, size);
	b->start = start;
	b->size = size;
	tree_update(vm, i);
}

static HOT_INLINE void seg_make_busy(vmem_t *vm, bt_idx i, vmem_addr_t start, vmem_size_t size,
			  unsigned int type)
{
	struct bt *b = BT(vm, i);
	b->start = start;
	b->size = size;
	b->type = type;
	hash_insert(vm, i);
}

HOT_INLINE int seg_carve(vmem_t *vm, bt_idx fi, vmem_addr_t a, vmem_size_t size, unsigned int type,
	      bt_idx *busyp)
{
	struct bt *f = BT(vm, fi);
	vmem_size_t lead = a - f->start;
	vmem_size_t trail = f->size - lead - size;
	uint32_t need = (lead != 0) + (trail != 0);

	if (need != 0 && tagslab_reserve(vm, need) != 0)
		return ENOMEM;
	f = BT(vm, fi); /* the reserve may have moved the table */
	vm->alloc_total += size;

	if (lead == 0 && trail == 0) {
		freelist_remove(vm, fi);
		tree_remove(vm, fi);
		seg_make_busy(vm, fi, a, size, type);
		*busyp = fi;
		return 0;
	}
	bt_idx bi = tagslab_get(vm);
	if (lead == 0) {
		bt_insert_before(vm, fi, bi);
		seg_reshape(vm, fi, a + size, trail);
	} else {
		vmem_addr_t fstart = f->start;
		bt_insert_after(vm, fi, bi);
		seg_reshape(vm, fi, fstart, lead);
		if (trail != 0) {
			bt_idx ti = tagslab_get(vm);
			struct bt *t = BT(vm, ti);
			t->start = a + size;
			t->size = trail;
			t->type = BT_FREE;
			bt_insert_after(vm, bi, ti);
			freelist_insert(vm, ti);
			tree_insert(vm, ti);
		}
	}
	seg_make_busy(vm, bi, a, size, type);
	*busyp = bi;
	return 0;
}

/* Tag x has been merged into free segment into, which starts no later than
 * x did; x goes back to the slab.  If x was the next-fit hint, the hint
 * moves to into, which is then still a tag at or before the rotor.  Left
 * stale, the hint would send the next search looking for a place to start:
 * after freeing the previous next-fit allocation that is the start of the
 * arena, from which a short walk may not reach the rotor, and the fallback
 * builds the treap, which every later allocation and free then maintains. */
static HOT_INLINE void seg_put_merged(vmem_t *vm, bt_idx x, bt_idx into)
{
	if (unlikely(vm->rotor_hint == x))
		vm->rotor_hint = into;
	tagslab_put(vm, x);
}

HOT_INLINE bt_idx seg_release(vmem_t *vm, bt_idx bi)
{
	struct bt *b = BT(vm, bi);
	bt_idx pi = b->prev, ni = b->next;
	struct bt *p = BT(vm, pi), *n = BT(vm, ni);
	bool pfree = p->type == BT_FREE, nfree = n->type == BT_FREE;
	vmem_size_t size = b->size;

	vm->alloc_total -= size;
	/* span markers and BT_HEAD are never free, so this stays in the span (I3) */
	if (pfree && nfree) {
		vmem_size_t total = p->size + size + n->size;
		freelist_remove(vm, ni);
		tree_remove(vm, ni);
		bt_unlink(vm, ni);
		seg_put_merged(vm, ni, pi);
		bt_unlink(vm, bi);
		seg_put_merged(vm, bi, pi);
		seg_reshape(vm, pi, p->start, total);
		return pi;
	}
	if (pfree) {
		bt_unlink(vm, bi);
		seg_put_merged(vm, bi, pi);
		seg_reshape(vm, pi, p->start, p->size + size);
		return pi;
	}
	if (nfree) {
		vmem_addr_t start = b->start;
		bt_unlink(vm, bi);
		seg_put_merged(vm, bi, ni);
		seg_reshape(vm, ni, start, n->size + size);
		return ni;
	}
	/* the type after the freelist: the list writes lprev, which shares a
	 * word with the type, and a read of that word right after a byte
	 * store to it would stall store-to-load forwarding */
	freelist_insert(vm, bi);
	b->type = BT_FREE;
	tree_insert(vm, bi);
	return bi;
}

bt_idx seg_whole_span(const vmem_t *vm, bt_idx fi)
{
	const struct bt *f = BT(vm, fi);
	const struct bt *s = BT(vm, f->prev);
	if (s->type != BT_SPAN_IMPORT || s->size != f->size)
		return BT_NIL;
	return f->prev;
}

int seg_add_span(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, bool imported, bt_idx *spanp)
{
	/* the span list is sorted; the span treap finds the place in it */
	bt_idx prev = tree_span_floor(vm, addr);
	if (prev == BT_NIL)
		prev = BT_HEAD;
	bt_idx next = BT(vm, prev)->lnext;
	if (prev != BT_HEAD && bt_last(BT(vm, prev)) >= addr)
		return EINVAL;
	if (next != BT_HEAD && BT(vm, next)->start <= addr + (size - 1))
		return EINVAL;
	if (tagslab_reserve(vm, 2) != 0)
		return ENOMEM;

	bt_idx si = tagslab_get(vm), fi = tagslab_get(vm);
	struct bt *s = BT(vm, si), *f = BT(vm, fi);
	s->start = f->start = addr;
	s->size = f->size = size;
	s->type = imported ? BT_SPAN_IMPORT : BT_SPAN;
	f->type = BT_FREE;
	/* span list */
	s->lnext = next;
	s->lprev = prev;
	BT(vm, prev)->lnext = si;
	BT(vm, next)->lprev = si;
	/* address list: the new span goes right before the next span's marker */
	bt_insert_before(vm, next, si);
	bt_insert_after(vm, si, fi);
	freelist_insert(vm, fi);
	tree_insert(vm, fi);
	tree_span_insert(vm, si);

	vm->span_total += size;
	vm->nspans++;
	if (imported)
		vm->import_total += size;
	if (spanp)
		*spanp = si;
	return 0;
}

bool seg_span_free(vmem_t *vm, bt_idx si)
{
	struct bt *s = BT(vm, si);
	bt_idx fi = s->next;
	struct bt *f = BT(vm, fi);
	if (!bt_is_span(s) || f->type != BT_FREE || f->size != s->size)
		return false;
	freelist_remove(vm, fi);
	tree_remove(vm, fi);
	bt_unlink(vm, fi);
	tagslab_put(vm, fi);
	BT(vm, s->lprev)->lnext = s->lnext;
	BT(vm, s->lnext)->lprev = s->lprev;
	tree_span_remove(vm, si);
	bt_unlink(vm, si);
	vm->span_total -= s->size;
	vm->nspans--;
	if (s->type == BT_SPAN_IMPORT)
		vm->import_total -= s->size;
	tagslab_put(vm, si);
	return true;
}

/* ---- search by policy ---------------------------------------------------- */

static bt_idx seg_find_instant(vmem_t *vm, const struct fitreq *req, vmem_addr_t *addrp)
{
	freelist_need(vm);
	unsigned int lo = freelist_class(req->size);
	if (fitreq_plain(req, vm->quantum)) {
		/* every segment of class k >= ceil(log2 size) is at least size */
		unsigned int k = lo + ((req->size & (req->size - 1)) != 0);
		uint64_t m = k < 64 ? vm->fl_bitmap & (~0ull << k) : 0;
		if (likely(m != 0)) {
			bt_idx i = vm->fl_head[__builtin_ctzll(m)];
			*addrp = BT(vm, i)->start;
			return i;
		}
	} else {
		/* constrained: the head of each list is a cheap first guess */
		uint64_t m = vm->fl_bitmap & (~0ull << lo);
		while (m != 0) {
			unsigned int k = (unsigned int)__builtin_ctzll(m);
			bt_idx i = vm->fl_head[k];
			const struct bt *b = BT(vm, i);
			if (b->size >= req->size && fit(b->start, b->size, req, addrp))
				return i;
			m &= m - 1;
		}
	}
	/* complete fallback: never fail while any free segment can hold it */
	return tree_first_fit(vm, req, addrp);
}

static bt_idx seg_find_best(vmem_t *vm, const struct fitreq *req, vmem_addr_t *addrp)
{
	freelist_need(vm);
	uint64_t m = vm->fl_bitmap & (~0ull << freelist_class(req->size));
	while (m != 0) {
		/* every segment of a higher class is bigger than any of this one */
		unsigned int k = (unsigned int)__builtin_ctzll(m);
		bt_idx best = BT_NIL;
		vmem_size_t bestsize = 0;
		vmem_addr_t a;
		for (bt_idx i = vm->fl_head[k]; i != BT_NIL; i = BT(vm, i)->lnext) {
			const struct bt *b = BT(vm, i);
			if (b->size < req->size || (best != BT_NIL && b->size >= bestsize))
				continue;
			if (fit(b->start, b->size, req, &a)) {
				best = i;
				bestsize = b->size;
				*addrp = a;
				if (bestsize == req->size)
					break;
			}
		}
		if (best != BT_NIL)
			return best;
		m &= m - 1;
	}
	return BT_NIL;
}

#define NEXTFIT_WALK 16

/* A tag at or before the rotor to walk from: the hint if it is still a
 * live tag there, else the previous next-fit allocation if it is still
 * allocated, else the start of the arena.  Any of them is correct; the
 * closer, the fewer steps. */
static bt_idx seg_nextfit_from(vmem_t *vm)
{
	bt_idx i = vm->rotor_hint;
	const struct bt *b = BT(vm, i < vm->bt_cap ? i : BT_NIL);
	QUIET_BEGIN(vm); /* the hint may name an unused tag */
	bool live = i < vm->bt_cap && b->type != BT_UNUSED && b->type != BT_SENTINEL &&
		    b->start <= vm->rotor;
	QUIET_END(vm);
	if (live)
		return i;
	i = hash_lookup(vm, vm->rotor_last);
	if (i != BT_NIL && BT(vm, i)->start <= vm->rotor)
		return i;
	return BT(vm, BT_HEAD)->next;
}

/* The usual next-fit case: the previous allocation left the rest of its
 * free segment starting exactly at the rotor, and it holds size.  For a
 * plain request the rotor itself is then the first fit at or after the
 * rotor.  Returns that segment, or BT_NIL for the full search. */
HOT_INLINE bt_idx seg_nextfit_hint(const vmem_t *vm, vmem_size_t size)
{
	bt_idx h = vm->rotor_hint;
	if (unlikely(h >= vm->bt_cap))
		return BT_NIL;
	const struct bt *b = BT(vm, h);
	QUIET_BEGIN(vm); /* the hint may name an unused tag */
	bool hit = b->type == BT_FREE && b->start == vm->rotor && b->size >= size;
	QUIET_END(vm);
	return hit ? h : BT_NIL;
}

static bt_idx seg_find_next(vmem_t *vm, const struct fitreq *req, vmem_addr_t *addrp)
{
	if (fitreq_plain(req, vm->quantum)) {
		bt_idx h = seg_nextfit_hint(vm, req->size);
		if (h != BT_NIL) {
			*addrp = BT(vm, h)->start;
			return h;
		}
	}

	struct fitreq after = *req;
	if (vm->rotor > after.minaddr)
		after.minaddr = vm->rotor;
	/* usually what follows the previous allocation is free: walk a few
	 * tags from there, wrapping once to the start of the arena */
	const struct fitreq *r = &after;
	bt_idx i = seg_nextfit_from(vm);
	bool wrapped = after.minaddr > after.maxaddr;
	if (wrapped) {
		r = req;
		i = BT(vm, BT_HEAD)->next;
	}
	for (int n = 0; n < 2 * NEXTFIT_WALK; n++) {
		if (i == BT_HEAD) {
			if (wrapped)
				return BT_NIL; /* walked the whole arena: nothing fits */
			wrapped = true;
			r = req;
			i = BT(vm, BT_HEAD)->next;
			continue;
		}
		const struct bt *b = BT(vm, i);
		if (b->type == BT_FREE && fit(b->start, b->size, r, addrp))
			return i;
		i = b->next;
	}
	if (!wrapped && vm->rotor > req->minaddr) {
		i = tree_first_fit(vm, &after, addrp);
		if (i != BT_NIL)
			return i;
	}
	return tree_first_fit(vm, req, addrp); /* wrap around */
}

bt_idx seg_find(vmem_t *vm, const struct fitreq *req, int policy, vmem_addr_t *addrp)
{
	switch (policy) {
	case VM_BESTFIT:
		return seg_find_best(vm, req, addrp);
	case VM_FIRSTFIT:
		return tree_first_fit(vm, req, addrp);
	case VM_NEXTFIT:
		return seg_find_next(vm, req, addrp);
	default:
		return seg_find_instant(vm, req, addrp);
	}
}
