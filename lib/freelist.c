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
#include "vmem_impl.h"

/* Put free segment i at the head of list k. */
static HOT_INLINE void freelist_link_to(vmem_t *vm, bt_idx i, unsigned int k)
{
	struct bt *b = BT(vm, i);
	bt_idx h = vm->fl_head[k];
	b->lnext = h;
	b->lprev = BT_NIL;
	if (h != BT_NIL)
		BT(vm, h)->lprev = i;
	vm->fl_head[k] = i;
	vm->fl_bitmap |= 1ull << k;
}

static HOT_INLINE void freelist_link(vmem_t *vm, bt_idx i)
{
	freelist_link_to(vm, i, freelist_class(BT(vm, i)->size));
}

/* Take free segment i off list k. */
static HOT_INLINE void freelist_unlink(vmem_t *vm, bt_idx i, unsigned int k)
{
	struct bt *b = BT(vm, i);
	bt_idx n = b->lnext, p = b->lprev;
	if (n != BT_NIL)
		BT(vm, n)->lprev = p;
	if (p != BT_NIL) {
		BT(vm, p)->lnext = n;
	} else {
		vm->fl_head[k] = n;
		if (n == BT_NIL)
			vm->fl_bitmap &= ~(1ull << k);
	}
}

HOT_INLINE void freelist_insert(vmem_t *vm, bt_idx i)
{
	vm->nfree++;
	if (vm->fl_on)
		freelist_link(vm, i);
}

HOT_INLINE void freelist_remove(vmem_t *vm, bt_idx i)
{
	vm->nfree--;
	if (vm->fl_on)
		freelist_unlink(vm, i, freelist_class(BT(vm, i)->size));
}

HOT_INLINE void freelist_resize(vmem_t *vm, bt_idx i, vmem_size_t size)
{
	if (!vm->fl_on)
		return;
	unsigned int from = freelist_class(BT(vm, i)->size), to = freelist_class(size);
	if (from != to) {
		freelist_unlink(vm, i, from);
		freelist_link_to(vm, i, to);
	}
}

void freelist_need(vmem_t *vm)
{
	if (likely(vm->fl_on))
		return;
	vm->fl_on = true;
	for (bt_idx i = BT(vm, BT_HEAD)->next; i != BT_HEAD; i = BT(vm, i)->next)
		if (BT(vm, i)->type == BT_FREE)
			freelist_link(vm, i);
}
