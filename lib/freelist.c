/*
 * freelist.c - power-of-two freelists.  List k holds the free segments
 * whose size lies in [2^k, 2^(k+1)); bit k of fl_bitmap says list k is
 * non-empty (I4), so instant fit is one find-first-set.
 *
 * Like the treap, the lists are built the first time a search needs them
 * (instant or best fit) and kept from then on.  An arena used only with
 * next fit or first fit never pays for them: under next fit a free mostly
 * merges with a free neighbour, and taking that neighbour off its list
 * touches two more random tags (its list neighbours), which were the main
 * cost of a next-fit free.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "arena_impl.h"

/* Put free segment i at the head of list k. */
static HOT_INLINE void freelist_link_to(struct arena *ar, bt_idx i, unsigned int k)
{
	struct bt *b = BT(ar, i);
	bt_idx h = ar->fl_head[k];
	b->lnext = h;
	b->lprev = BT_NIL;
	if (h != BT_NIL)
		BT(ar, h)->lprev = i;
	ar->fl_head[k] = i;
	ar->fl_bitmap |= 1ull << k;
}

static HOT_INLINE void freelist_link(struct arena *ar, bt_idx i)
{
	freelist_link_to(ar, i, freelist_class(BT(ar, i)->size));
}

/* Take free segment i off list k. */
static HOT_INLINE void freelist_unlink(struct arena *ar, bt_idx i, unsigned int k)
{
	struct bt *b = BT(ar, i);
	bt_idx n = b->lnext, p = b->lprev;
	if (n != BT_NIL)
		BT(ar, n)->lprev = p;
	if (p != BT_NIL) {
		BT(ar, p)->lnext = n;
	} else {
		ar->fl_head[k] = n;
		if (n == BT_NIL)
			ar->fl_bitmap &= ~(1ull << k);
	}
}

HOT_INLINE void freelist_insert(struct arena *ar, bt_idx i)
{
	ar->nfree++;
	if (ar->fl_on)
		freelist_link(ar, i);
}

HOT_INLINE void freelist_remove(struct arena *ar, bt_idx i)
{
	ar->nfree--;
	if (ar->fl_on)
		freelist_unlink(ar, i, freelist_class(BT(ar, i)->size));
}

HOT_INLINE void freelist_resize(struct arena *ar, bt_idx i, vmem_size_t size)
{
	if (!ar->fl_on)
		return;
	unsigned int from = freelist_class(BT(ar, i)->size), to = freelist_class(size);
	if (from != to) {
		freelist_unlink(ar, i, from);
		freelist_link_to(ar, i, to);
	}
}

void freelist_need(struct arena *ar)
{
	if (likely(ar->fl_on))
		return;
	ar->fl_on = true;
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next)
		if (BT(ar, i)->type == BT_FREE)
			freelist_link(ar, i);
}
