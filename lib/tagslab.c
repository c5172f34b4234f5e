/*
 * tagslab.c - the tag table.  Each arena keeps its boundary tags in one
 * mapping of its own, grown with mremap, and refers to them by index, so a
 * tag is 48 bytes and moving the table costs nothing but the kernel's page
 * table update.  Unused tags form a chain through lnext.  Operations
 * reserve every tag they may need before they change anything (I12), so a
 * failed mapping leaves the arena as it was.
 *
 * The treap fields (left, right, parent, max: the last 16 bytes) of a tag
 * outside the treaps are clear (I7): new tags are zeroed, a tag leaves a
 * treap only through tree_remove, which clears them, and the free of a
 * quantum-cache slab clears the record qcache.c keeps in them.  So neither
 * tagslab_put nor tagslab_get writes them, which spares touching a second
 * cache line for the quarter of tags whose last 16 bytes lie on one.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "vmem_impl.h"

_Static_assert(sizeof(struct bt) == 48, "a tag is 48 bytes");
_Static_assert(offsetof(struct bt, left) == 32 && offsetof(struct bt, max) == 44,
	       "the treap fields are a tag's last 16 bytes");

static void tagslab_chain(vmem_t *vm, uint32_t from, uint32_t to)
{
	/* push [from, to) so that lower indices come out first */
	for (uint32_t i = to; i-- > from;) {
		struct bt *b = BT(vm, i);
		memset(b, 0, sizeof(*b));
		b->type = BT_UNUSED;
		b->lnext = vm->bt_unused;
		vm->bt_unused = i;
	}
	vm->bt_nunused += to - from;
	TAG_NOACCESS(vm, BT(vm, from), (size_t)(to - from) * sizeof(struct bt));
}

/* valgrind knows tags by address: tell it when they all move or go */
static void tagslab_forget(vmem_t *vm)
{
	QUIET_BEGIN(vm);
	for (uint32_t i = BT_FIRST; i < vm->bt_cap; i++)
		if (BT(vm, i)->type != BT_UNUSED)
			TAG_DEAD(vm, BT(vm, i));
	QUIET_END(vm);
}

static void tagslab_remember(vmem_t *vm)
{
	QUIET_BEGIN(vm);
	for (uint32_t i = BT_FIRST; i < vm->bt_cap; i++) {
		struct bt *b = BT(vm, i);
		if (b->type != BT_UNUSED) {
			struct bt copy = *b;
			TAG_ALIVE(vm, b);
			*b = copy;
		} else {
			TAG_NOACCESS(vm, b, sizeof(*b));
		}
	}
	QUIET_END(vm);
}

int tagslab_init(vmem_t *vm)
{
	vm->valgrind = ON_VALGRIND();
	size_t bytes = os_pagesize();
	vm->bt = os_map(bytes);
	if (vm->bt == NULL)
		return ENOMEM;
	vm->bt_bytes = bytes;
	vm->bt_cap = (uint32_t)(bytes / sizeof(struct bt));
	vm->bt_unused = BT_NIL;
	vm->bt_nunused = 0;
	memset(vm->bt, 0, bytes);
	BT(vm, BT_NIL)->type = BT_SENTINEL;
	struct bt *h = BT(vm, BT_HEAD);
	h->type = BT_SENTINEL;
	h->prev = h->next = BT_HEAD;
	h->lnext = BT_HEAD;
	h->lprev = BT_HEAD;
	tagslab_chain(vm, BT_FIRST, vm->bt_cap);
	return 0;
}

void tagslab_fini(vmem_t *vm)
{
	if (vm->valgrind)
		tagslab_forget(vm);
	os_unmap(vm->bt, vm->bt_bytes);
	vm->bt = NULL;
	vm->bt_bytes = 0;
	vm->bt_cap = 0;
	vm->bt_nunused = 0;
}

int tagslab_grow(vmem_t *vm, uint32_t n)
{
	/* grow by an eighth: the slack bounds memory per segment (W8) */
	size_t want = (size_t)vm->bt_cap + n - vm->bt_nunused;
	size_t grow = vm->bt_cap / 8;
	size_t cap = vm->bt_cap + (grow > want - vm->bt_cap ? grow : want - vm->bt_cap);
	if (cap > BT_IDX_MAX)
		cap = BT_IDX_MAX;
	if (cap < want)
		return ENOMEM;
	size_t bytes = os_round_page(cap * sizeof(struct bt));
	bool vg = vm->valgrind;
	if (vg)
		tagslab_forget(vm);
	struct bt *p = os_remap(vm->bt, vm->bt_bytes, bytes);
	if (p == NULL) {
		if (vg)
			tagslab_remember(vm);
		return ENOMEM;
	}
	uint32_t old = vm->bt_cap;
	vm->bt = p;
	vm->bt_bytes = bytes;
	vm->bt_cap = (uint32_t)(bytes / sizeof(struct bt));
	if (vm->bt_cap > BT_IDX_MAX)
		vm->bt_cap = BT_IDX_MAX;
	if (vg) {
		uint32_t cap_now = vm->bt_cap;
		vm->bt_cap = old;
		tagslab_remember(vm);
		vm->bt_cap = cap_now;
	}
	tagslab_chain(vm, old, vm->bt_cap);
	return 0;
}

HOT_INLINE bt_idx tagslab_get(vmem_t *vm)
{
	bt_idx i = vm->bt_unused;
	struct bt *b = BT(vm, i);
	QUIET_BEGIN(vm);
	vm->bt_unused = b->lnext;
	QUIET_END(vm);
	vm->bt_nunused--;
	TAG_ALIVE(vm, b);
	/* every field starts known: BT_NIL links; the treap fields are clear */
	memset(b, 0, offsetof(struct bt, left));
	return i;
}

HOT_INLINE void tagslab_put(vmem_t *vm, bt_idx i)
{
	struct bt *b = BT(vm, i);
	b->type = BT_UNUSED;
	b->lnext = vm->bt_unused;
	vm->bt_unused = i;
	vm->bt_nunused++;
	TAG_DEAD(vm, b);
}
