/*
 * tagslab.c - the tag table.  Each arena keeps its boundary tags in one
 * mapping of its own, grown with mremap, and refers to them by index, so a
 * tag is 32 bytes, two to a cache line and never across two, and moving
 * the table costs nothing but the kernel's page table update.  Unused tags
 * form a chain through lnext, but for the fresh run at the end of the
 * table, tags never used since the kernel zeroed them, which are handed
 * out in index order when the chain is empty.
 *
 * Beside the table, in mappings grown with it, are the free map, a bit per
 * tag, set while the tag is a free segment (I13; seg.c keeps it), and,
 * once the arena first needs a treap or a slab's cookie, the tags' cold
 * parts (struct bt_node, 16 bytes each): an ID arena that only allocates
 * and frees by instant fit never maps them.  Operations reserve every tag
 * they may need before they change anything (I12), so a failed mapping
 * leaves the arena as it was.
 *
 * The cold part of a tag outside the treaps is clear (I7): new nodes are
 * zeroed, a tag leaves a treap only through tree_remove, which clears
 * them, and the free of a quantum-cache slab clears the cookie the caches
 * keep in them.  So neither tagslab_put nor tagslab_get writes them, and a
 * tag's use never touches a second cache line.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "arena_impl.h"

_Static_assert(sizeof(struct bt) == 32, "a tag is 32 bytes: two to a cache line");
_Static_assert(sizeof(struct bt_node) == 16, "a tag's cold part is 16 bytes");

/* Tags [from, to) are new, fresh from the kernel and so all zero: BT_UNUSED
 * with clear treap fields.  They join the fresh run at the end of the
 * table (from must be where it ends), which tagslab_get hands out in
 * index order once the unused chain is empty: no pass over them now, which
 * would write every line of a new table only for its use to write it
 * again, much later and long evicted. */
static void tagslab_fresh(struct arena *ar, uint32_t from, uint32_t to)
{
	ar->bt_nunused += to - from;
	TAG_NOACCESS(ar, BT(ar, from), (size_t)(to - from) * sizeof(struct bt));
}

/* valgrind knows tags by address: tell it when they all move or go */
static void tagslab_forget(struct arena *ar)
{
	QUIET_BEGIN(ar);
	for (uint32_t i = BT_FIRST; i < ar->bt_cap; i++)
		if (BT(ar, i)->type != BT_UNUSED)
			TAG_DEAD(ar, BT(ar, i));
	QUIET_END(ar);
}

static void tagslab_remember(struct arena *ar)
{
	QUIET_BEGIN(ar);
	for (uint32_t i = BT_FIRST; i < ar->bt_cap; i++) {
		struct bt *b = BT(ar, i);
		if (b->type != BT_UNUSED) {
			struct bt copy = *b;
			TAG_ALIVE(ar, b);
			*b = copy;
		} else {
			TAG_NOACCESS(ar, b, sizeof(*b));
		}
	}
	QUIET_END(ar);
}

/* Bytes of free map for cap tags: a bit each, whole pages. */
static size_t tagslab_freemap_bytes(size_t cap)
{
	return os_round_page((cap + 63) / 64 * sizeof(uint64_t));
}

/* Bytes of cold parts for cap tags, whole pages. */
static size_t tagslab_node_bytes(size_t cap)
{
	return os_round_page(cap * sizeof(struct bt_node));
}

int tagslab_map_nodes(struct arena *ar)
{
	size_t bytes = tagslab_node_bytes(ar->bt_cap);
	struct bt_node *n = os_map(bytes); /* zero: every node clear (I7) */
	if (n == NULL)
		return ENOMEM;
	ar->bt_node = n;
	ar->bt_node_bytes = bytes;
	return 0;
}

void tagslab_unmap_nodes(struct arena *ar)
{
	os_unmap(ar->bt_node, ar->bt_node_bytes);
	ar->bt_node = NULL;
	ar->bt_node_bytes = 0;
}

int tagslab_init(struct arena *ar)
{
	ar->valgrind = ON_VALGRIND();
	size_t bytes = os_pagesize();
	ar->bt = os_map(bytes);
	if (ar->bt == NULL)
		return ENOMEM;
	size_t mbytes = tagslab_freemap_bytes(bytes / sizeof(struct bt));
	ar->bt_freemap = os_map(mbytes); /* zero: no tag is free yet (I13) */
	if (ar->bt_freemap == NULL) {
		os_unmap(ar->bt, bytes);
		ar->bt = NULL;
		return ENOMEM;
	}
	ar->bt_freemap_bytes = mbytes;
	ar->bt_bytes = bytes;
	ar->bt_cap = (uint32_t)(bytes / sizeof(struct bt));
	ar->bt_unused = BT_NIL;
	ar->bt_nunused = 0;
	memset(ar->bt, 0, bytes);
	ar->bt_fresh = BT_FIRST;
	BT(ar, BT_NIL)->type = BT_SENTINEL;
	struct bt *h = BT(ar, BT_HEAD);
	h->type = BT_SENTINEL;
	h->prev = h->next = BT_HEAD;
	h->lnext = BT_HEAD;
	h->lprev = BT_HEAD;
	tagslab_fresh(ar, BT_FIRST, ar->bt_cap);
	return 0;
}

void tagslab_fini(struct arena *ar)
{
	if (ar->valgrind)
		tagslab_forget(ar);
	os_unmap(ar->bt, ar->bt_bytes);
	ar->bt = NULL;
	ar->bt_bytes = 0;
	if (ar->bt_freemap != NULL)
		os_unmap(ar->bt_freemap, ar->bt_freemap_bytes);
	ar->bt_freemap = NULL;
	ar->bt_freemap_bytes = 0;
	if (ar->bt_node != NULL)
		tagslab_unmap_nodes(ar);
	ar->bt_cap = 0;
	ar->bt_nunused = 0;
}

/* A growth that failed gives back what the free map and the cold parts
 * had grown by: their new pages hold nothing yet. */
static void tagslab_shrink_back(struct arena *ar, size_t mold, size_t nold)
{
	os_shrink(ar->bt_freemap, ar->bt_freemap_bytes, mold);
	ar->bt_freemap_bytes = mold;
	if (ar->bt_node != NULL) {
		os_shrink(ar->bt_node, ar->bt_node_bytes, nold);
		ar->bt_node_bytes = nold;
	}
}

int tagslab_grow(struct arena *ar, uint32_t n)
{
	/* grow by an eighth: the slack bounds memory per segment (W8) */
	size_t want = (size_t)ar->bt_cap + n - ar->bt_nunused;
	size_t grow = ar->bt_cap / 8;
	size_t cap = ar->bt_cap + (grow > want - ar->bt_cap ? grow : want - ar->bt_cap);
	if (cap > BT_IDX_MAX)
		cap = BT_IDX_MAX;
	if (cap < want)
		return ENOMEM;
	size_t bytes = os_round_page(cap * sizeof(struct bt));
	/* the free map and the cold parts first; if the next step cannot
	 * grow, they shrink back, so that a failure changes nothing (I12) */
	size_t mold = ar->bt_freemap_bytes, nold = ar->bt_node_bytes;
	size_t mbytes = tagslab_freemap_bytes(bytes / sizeof(struct bt));
	if (mbytes > mold) {
		uint64_t *m = os_remap(ar->bt_freemap, mold, mbytes);
		if (m == NULL)
			return ENOMEM;
		ar->bt_freemap = m;
		ar->bt_freemap_bytes = mbytes;
	}
	size_t nbytes = tagslab_node_bytes(bytes / sizeof(struct bt));
	if (ar->bt_node != NULL && nbytes > nold) {
		struct bt_node *nodes = os_remap(ar->bt_node, nold, nbytes);
		if (nodes == NULL) {
			tagslab_shrink_back(ar, mold, nold);
			return ENOMEM;
		}
		ar->bt_node = nodes;
		ar->bt_node_bytes = nbytes;
	}
	bool vg = ar->valgrind;
	if (vg)
		tagslab_forget(ar);
	struct bt *p = os_remap(ar->bt, ar->bt_bytes, bytes);
	if (p == NULL) {
		if (vg)
			tagslab_remember(ar);
		tagslab_shrink_back(ar, mold, nold);
		return ENOMEM;
	}
	uint32_t old = ar->bt_cap;
	ar->bt = p;
	ar->bt_bytes = bytes;
	ar->bt_cap = (uint32_t)(bytes / sizeof(struct bt));
	if (ar->bt_cap > BT_IDX_MAX)
		ar->bt_cap = BT_IDX_MAX;
	if (vg) {
		uint32_t cap_now = ar->bt_cap;
		ar->bt_cap = old;
		tagslab_remember(ar);
		ar->bt_cap = cap_now;
	}
	tagslab_fresh(ar, old, ar->bt_cap);
	return 0;
}

HOT_INLINE int tagslab_reserve(struct arena *ar, uint32_t n)
{
	return likely(ar->bt_nunused >= n) ? 0 : tagslab_grow(ar, n);
}

HOT_INLINE bt_idx tagslab_get(struct arena *ar)
{
	bt_idx i = ar->bt_unused;
	struct bt *b;
	if (likely(i != BT_NIL)) {
		b = BT(ar, i);
		QUIET_BEGIN(ar);
		ar->bt_unused = b->lnext;
		QUIET_END(ar);
	} else {
		i = ar->bt_fresh++; /* the reserve says there is one */
		b = BT(ar, i);
	}
	ar->bt_nunused--;
	TAG_ALIVE(ar, b);
	/* every field starts known: BT_NIL links; the cold part is clear */
	memset(b, 0, sizeof(*b));
	return i;
}

HOT_INLINE void tagslab_put(struct arena *ar, bt_idx i)
{
	struct bt *b = BT(ar, i);
	b->type = BT_UNUSED;
	b->lnext = ar->bt_unused;
	ar->bt_unused = i;
	ar->bt_nunused++;
	TAG_DEAD(ar, b);
}
