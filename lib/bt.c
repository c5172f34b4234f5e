/*
 * bt.c - the address-ordered list of tags (I1).  Span markers and segments
 * of every span sit in one circular list through BT_HEAD; a span marker is
 * followed by the segments that tile it (I2).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "vmem_impl.h"

HOT_INLINE void bt_insert_after(vmem_t *vm, bt_idx at, bt_idx n)
{
	struct bt *a = BT(vm, at), *b = BT(vm, n);
	b->prev = at;
	b->next = a->next;
	BT(vm, a->next)->prev = n;
	a->next = n;
}

HOT_INLINE void bt_insert_before(vmem_t *vm, bt_idx at, bt_idx n)
{
	bt_insert_after(vm, BT(vm, at)->prev, n);
}

HOT_INLINE void bt_unlink(vmem_t *vm, bt_idx n)
{
	struct bt *b = BT(vm, n);
	BT(vm, b->prev)->next = b->next;
	BT(vm, b->next)->prev = b->prev;
}
