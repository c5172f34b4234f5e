/*
 * freelist.c - power-of-two freelists.  List k holds the free segments
 * whose size lies in [2^k, 2^(k+1)); bit k of fl_bitmap says list k is
 * non-empty (I4), so instant fit is one find-first-set.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "vmem_impl.h"

HOT_INLINE void freelist_insert(vmem_t *vm, bt_idx i)
{
	struct bt *b = BT(vm, i);
	unsigned int k = freelist_class(b->size);
	bt_idx h = vm->fl_head[k];
	b->lnext = h;
	b->lprev = BT_NIL;
	if (h != BT_NIL)
		BT(vm, h)->lprev = i;
	vm->fl_head[k] = i;
	vm->fl_bitmap |= 1ull << k;
	vm->nfree++;
}

HOT_INLINE void freelist_remove(vmem_t *vm, bt_idx i)
{
	struct bt *b = BT(vm, i);
	bt_idx n = b->lnext, p = b->lprev;
	if (n != BT_NIL)
		BT(vm, n)->lprev = p;
	if (p != BT_NIL) {
		BT(vm, p)->lnext = n;
	} else {
		unsigned int k = freelist_class(b->size);
		vm->fl_head[k] = n;
		if (n == BT_NIL)
			vm->fl_bitmap &= ~(1ull << k);
	}
	vm->nfree--;
}
