/*
 * seg.c - segment operations under the arena lock: carving an allocation
 * out of a free segment, giving it back with coalescing, adding and taking
 * out spans, and the search by policy.  Each operation that needs new tags
 * reserves them first, so it either happens whole or not at all (I12).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>

#include "arena_impl.h"

/* Free segment i becomes [start, start + size): its freelist follows its
 * class, and its treap position stays valid because no other free segment
 * lies between the old and the new range. */
static HOT_INLINE void seg_reshape(struct arena *ar, bt_idx i, vmem_addr_t start, vmem_size_t size)
{
	struct bt *b = BT(ar, i);
	freelist_resize(ar, i, size);
	b->start = start;
	b->size = size;
	tree_update(ar, i);
}

static HOT_INLINE void seg_make_busy(struct arena *ar, bt_idx i, vmem_addr_t start, vmem_size_t size,
			  unsigned int type)
{
	struct bt *b = BT(ar, i);
	b->start = start;
	b->size = size;
	b->type = type;
	hash_insert(ar, i);
}

/* seg_carve with a leading gap: the allocation does not start where free
 * segment fi does (a constrained request).  Out of line, so that the
 * common carve keeps a small frame.  Not static: seg_carve, an inline
 * function with external linkage, calls it. */
NOINLINE int seg_carve_lead(struct arena *ar, bt_idx fi, vmem_addr_t a, vmem_size_t size,
			    unsigned int type, bt_idx *busyp);
NOINLINE int seg_carve_lead(struct arena *ar, bt_idx fi, vmem_addr_t a, vmem_size_t size,
			    unsigned int type, bt_idx *busyp)
{
	struct bt *f = BT(ar, fi);
	vmem_size_t lead = a - f->start;
	vmem_size_t trail = f->size - lead - size;

	if (tagslab_reserve(ar, 1 + (trail != 0)) != 0)
		return ENOMEM;
	f = BT(ar, fi); /* the reserve may have moved the table */
	ar->alloc_total += size;

	bt_idx bi = tagslab_get(ar);
	vmem_addr_t fstart = f->start;
	bt_insert_after(ar, fi, bi);
	seg_reshape(ar, fi, fstart, lead);
	if (trail != 0) {
		bt_idx ti = tagslab_get(ar);
		struct bt *t = BT(ar, ti);
		t->start = a + size;
		t->size = trail;
		t->type = BT_FREE;
		bt_map_free(ar, ti);
		bt_insert_after(ar, bi, ti);
		freelist_insert(ar, ti);
		tree_insert(ar, ti);
	}
	seg_make_busy(ar, bi, a, size, type);
	*busyp = bi;
	return 0;
}

HOT_INLINE int seg_carve(struct arena *ar, bt_idx fi, vmem_addr_t a, vmem_size_t size, unsigned int type,
	      bt_idx *busyp)
{
	struct bt *f = BT(ar, fi);
	if (unlikely(a != f->start))
		return seg_carve_lead(ar, fi, a, size, type, busyp);
	vmem_size_t trail = f->size - size;

	if (trail != 0 && tagslab_reserve(ar, 1) != 0)
		return ENOMEM;
	ar->alloc_total += size;

	if (trail == 0) {
		freelist_remove(ar, fi);
		tree_remove(ar, fi);
		bt_map_unfree(ar, fi);
		seg_make_busy(ar, fi, a, size, type);
		*busyp = fi;
		return 0;
	}
	bt_idx bi = tagslab_get(ar);
	bt_insert_before(ar, fi, bi);
	seg_reshape(ar, fi, a + size, trail);
	seg_make_busy(ar, bi, a, size, type);
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
static HOT_INLINE void seg_put_merged(struct arena *ar, bt_idx x, bt_idx into)
{
	if (unlikely(ar->rotor_hint == x))
		ar->rotor_hint = into;
	tagslab_put(ar, x);
}

/* Not static: seg_release, an inline function with external linkage,
 * calls it (and it is nobody else's, so it is declared here). */
NOINLINE bt_idx seg_release_merge(struct arena *ar, bt_idx bi, bool pfree, bool nfree);

HOT_INLINE bt_idx seg_release(struct arena *ar, bt_idx bi)
{
	struct bt *b = BT(ar, bi);
	bt_idx pi = b->prev, ni = b->next;
	/* from the free map (I13): a neighbour's tag is read only to merge */
	bool pfree = bt_free_at(ar, pi), nfree = bt_free_at(ar, ni);
	vmem_size_t size = b->size;

	ar->alloc_total -= size;
	if (likely(!pfree && !nfree)) {
		/* the type after the freelist: the list writes lprev, which
		 * shares a word with the type, and a read of that word right
		 * after a byte store to it would stall store-to-load forwarding */
		freelist_insert(ar, bi);
		b->type = BT_FREE;
		bt_map_free(ar, bi);
		tree_insert(ar, bi);
		return bi;
	}
	return seg_release_merge(ar, bi, pfree, nfree);
}

/* seg_release of busy segment bi (alloc_total already down) when a
 * neighbour is free: it merges.  Out of line, so that a free with no free
 * neighbour keeps a small frame. */
NOINLINE bt_idx seg_release_merge(struct arena *ar, bt_idx bi, bool pfree, bool nfree)
{
	struct bt *b = BT(ar, bi);
	bt_idx pi = b->prev, ni = b->next;
	vmem_size_t size = b->size;
	struct bt *p = BT(ar, pi), *n = BT(ar, ni);
	/* span markers and BT_HEAD are never free, so this stays in the span (I3) */
	if (pfree && nfree) {
		vmem_size_t total = p->size + size + n->size;
		freelist_remove(ar, ni);
		tree_remove(ar, ni);
		bt_map_unfree(ar, ni);
		bt_unlink(ar, ni);
		seg_put_merged(ar, ni, pi);
		bt_unlink(ar, bi);
		seg_put_merged(ar, bi, pi);
		seg_reshape(ar, pi, p->start, total);
		return pi;
	}
	if (pfree) {
		bt_unlink(ar, bi);
		seg_put_merged(ar, bi, pi);
		seg_reshape(ar, pi, p->start, p->size + size);
		return pi;
	}
	vmem_addr_t start = b->start;
	bt_unlink(ar, bi);
	seg_put_merged(ar, bi, ni);
	seg_reshape(ar, ni, start, n->size + size);
	return ni;
}

bt_idx seg_whole_span(const struct arena *ar, bt_idx fi)
{
	const struct bt *f = BT(ar, fi);
	const struct bt *s = BT(ar, f->prev);
	if (s->type != BT_SPAN_IMPORT || s->size != f->size)
		return BT_NIL;
	return f->prev;
}

int seg_add_span(struct arena *ar, vmem_addr_t addr, vmem_size_t size, bool imported, bt_idx *spanp)
{
	/* the span list is sorted; the span treap finds the place in it */
	bt_idx prev = tree_span_floor(ar, addr);
	if (prev == BT_NIL)
		prev = BT_HEAD;
	bt_idx next = BT(ar, prev)->lnext;
	if (prev != BT_HEAD && bt_last(BT(ar, prev)) >= addr)
		return EINVAL;
	if (next != BT_HEAD && BT(ar, next)->start <= addr + (size - 1))
		return EINVAL;
	/* a second span needs the span treap, and so the tags' cold parts;
	 * if the tags then cannot be had, they go back (I12) */
	if (ar->nspans != 0 && tree_need_nodes(ar) != 0)
		return ENOMEM;
	if (tagslab_reserve(ar, 2) != 0) {
		tree_failed_locked(ar);
		return ENOMEM;
	}

	bt_idx si = tagslab_get(ar), fi = tagslab_get(ar);
	struct bt *s = BT(ar, si), *f = BT(ar, fi);
	s->start = f->start = addr;
	s->size = f->size = size;
	s->type = imported ? BT_SPAN_IMPORT : BT_SPAN;
	f->type = BT_FREE;
	bt_map_free(ar, fi);
	/* span list */
	s->lnext = next;
	s->lprev = prev;
	BT(ar, prev)->lnext = si;
	BT(ar, next)->lprev = si;
	/* address list: the new span goes right before the next span's marker */
	bt_insert_before(ar, next, si);
	bt_insert_after(ar, si, fi);
	freelist_insert(ar, fi);
	tree_insert(ar, fi);
	tree_span_insert(ar, si);

	ar->span_total += size;
	ar->nspans++;
	tree_kept_locked(ar);
	if (imported)
		ar->import_total += size;
	if (spanp)
		*spanp = si;
	return 0;
}

bool seg_span_free(struct arena *ar, bt_idx si)
{
	struct bt *s = BT(ar, si);
	bt_idx fi = s->next;
	struct bt *f = BT(ar, fi);
	if (!bt_is_span(s) || f->type != BT_FREE || f->size != s->size)
		return false;
	freelist_remove(ar, fi);
	tree_remove(ar, fi);
	bt_map_unfree(ar, fi);
	bt_unlink(ar, fi);
	tagslab_put(ar, fi);
	BT(ar, s->lprev)->lnext = s->lnext;
	BT(ar, s->lnext)->lprev = s->lprev;
	tree_span_remove(ar, si);
	bt_unlink(ar, si);
	ar->span_total -= s->size;
	ar->nspans--;
	if (s->type == BT_SPAN_IMPORT)
		ar->import_total -= s->size;
	tagslab_put(ar, si);
	return true;
}

/* ---- search by policy ---------------------------------------------------- */

static bt_idx seg_find_instant(struct arena *ar, const struct fitreq *req, vmem_addr_t *addrp)
{
	freelist_need(ar);
	unsigned int lo = freelist_class(req->size);
	/* no list from size's class up has a member: no free segment is as
	 * big as size, constrained or not, and the fallback has nothing to
	 * find (a full arena must not build the treap to learn that) */
	if ((ar->fl_bitmap >> lo) == 0)
		return BT_NIL;
	if (fitreq_plain(req, ar->quantum)) {
		/* every segment of class k >= ceil(log2 size) is at least size */
		bt_idx i = freelist_surely_fits(ar, req->size);
		if (likely(i != BT_NIL)) {
			*addrp = BT(ar, i)->start;
			return i;
		}
	} else {
		/* constrained: the head of each list is a cheap first guess */
		uint64_t m = ar->fl_bitmap & (~0ull << lo);
		while (m != 0) {
			unsigned int k = (unsigned int)__builtin_ctzll(m);
			bt_idx i = ar->fl_head[k];
			const struct bt *b = BT(ar, i);
			if (b->size >= req->size && fit(b->start, b->size, req, addrp))
				return i;
			m &= m - 1;
		}
	}
	/* complete fallback: never fail while any free segment can hold it */
	return tree_first_fit(ar, req, addrp);
}

static bt_idx seg_find_best(struct arena *ar, const struct fitreq *req, vmem_addr_t *addrp)
{
	freelist_need(ar);
	uint64_t m = ar->fl_bitmap & (~0ull << freelist_class(req->size));
	while (m != 0) {
		/* every segment of a higher class is bigger than any of this one */
		unsigned int k = (unsigned int)__builtin_ctzll(m);
		bt_idx best = BT_NIL;
		vmem_size_t bestsize = 0;
		vmem_addr_t a;
		for (bt_idx i = ar->fl_head[k]; i != BT_NIL; i = BT(ar, i)->lnext) {
			const struct bt *b = BT(ar, i);
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
static bt_idx seg_nextfit_from(struct arena *ar)
{
	bt_idx i = ar->rotor_hint;
	const struct bt *b = BT(ar, i < ar->bt_cap ? i : BT_NIL);
	QUIET_BEGIN(ar); /* the hint may name an unused tag */
	bool live = i < ar->bt_cap && b->type != BT_UNUSED && b->type != BT_SENTINEL &&
		    b->start <= ar->rotor;
	QUIET_END(ar);
	if (live)
		return i;
	i = hash_lookup(ar, ar->rotor_last);
	if (i != BT_NIL && BT(ar, i)->start <= ar->rotor)
		return i;
	return BT(ar, BT_HEAD)->next;
}

/* The usual next-fit case: the previous allocation left the rest of its
 * free segment starting exactly at the rotor, and it holds size.  For a
 * plain request the rotor itself is then the first fit at or after the
 * rotor.  Returns that segment, or BT_NIL for the full search. */
HOT_INLINE bt_idx seg_nextfit_hint(const struct arena *ar, vmem_size_t size)
{
	bt_idx h = ar->rotor_hint;
	if (unlikely(h >= ar->bt_cap))
		return BT_NIL;
	const struct bt *b = BT(ar, h);
	QUIET_BEGIN(ar); /* the hint may name an unused tag */
	bool hit = b->type == BT_FREE && b->start == ar->rotor && b->size >= size;
	QUIET_END(ar);
	return hit ? h : BT_NIL;
}

static bt_idx seg_find_next(struct arena *ar, const struct fitreq *req, vmem_addr_t *addrp)
{
	if (fitreq_plain(req, ar->quantum)) {
		bt_idx h = seg_nextfit_hint(ar, req->size);
		if (h != BT_NIL) {
			*addrp = BT(ar, h)->start;
			return h;
		}
	}

	struct fitreq after = *req;
	if (ar->rotor > after.minaddr)
		after.minaddr = ar->rotor;
	/* usually what follows the previous allocation is free: walk a few
	 * tags from there, wrapping once to the start of the arena */
	const struct fitreq *r = &after;
	bt_idx i = seg_nextfit_from(ar);
	bool wrapped = after.minaddr > after.maxaddr;
	if (wrapped) {
		r = req;
		i = BT(ar, BT_HEAD)->next;
	}
	for (int n = 0; n < 2 * NEXTFIT_WALK; n++) {
		if (i == BT_HEAD) {
			if (wrapped)
				return BT_NIL; /* walked the whole arena: nothing fits */
			wrapped = true;
			r = req;
			i = BT(ar, BT_HEAD)->next;
			continue;
		}
		const struct bt *b = BT(ar, i);
		if (b->type == BT_FREE && fit(b->start, b->size, r, addrp))
			return i;
		i = b->next;
	}
	if (!wrapped && ar->rotor > req->minaddr) {
		i = tree_first_fit(ar, &after, addrp);
		if (i != BT_NIL)
			return i;
	}
	return tree_first_fit(ar, req, addrp); /* wrap around */
}

bt_idx seg_find(struct arena *ar, const struct fitreq *req, int policy, vmem_addr_t *addrp)
{
	switch (policy) {
	case VM_BESTFIT:
		return seg_find_best(ar, req, addrp);
	case VM_FIRSTFIT:
		return tree_first_fit(ar, req, addrp);
	case VM_NEXTFIT:
		return seg_find_next(ar, req, addrp);
	default:
		return seg_find_instant(ar, req, addrp);
	}
}
