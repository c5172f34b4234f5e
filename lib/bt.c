/*
 * bt.c - the address-ordered list of tags (I1).  Span markers and segments
 * of every span sit in one circular list through BT_HEAD; a span marker is
 * followed by the segments that tile it (I2).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "arena_impl.h"

HOT_INLINE void bt_insert_after(struct arena *ar, bt_idx at, bt_idx n)
{
	struct bt *a = BT(ar, at), *b = BT(ar, n);
	b->prev = at;
	b->next = a->next;
	BT(ar, a->next)->prev = n;
	a->next = n;
}

HOT_INLINE void bt_insert_before(struct arena *ar, bt_idx at, bt_idx n)
{
	bt_insert_after(ar, BT(ar, at)->prev, n);
}

HOT_INLINE void bt_unlink(struct arena *ar, bt_idx n)
{
	struct bt *b = BT(ar, n);
	BT(ar, b->prev)->next = b->next;
	BT(ar, b->next)->prev = b->prev;
}
