/*
 * hash.c - allocated segments by start address (I6), so a free finds its
 * tag in O(1).  Buckets are 32-bit tag indices chained through lnext.  The
 * table doubles when the load passes 1 and halves when it falls below 1/8,
 * inline in the operation that crossed the line; if the new table cannot be
 * mapped the old one simply stays, so resizing never fails an operation.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>

#include "arena_impl.h"

#define HASH_MIN_BITS 10u
#define HASH_MAX_BITS 40u

/* Units are hashed in blocks of 16, and a block's units fill one aligned
 * group of 16 buckets (one cache line), each unit at its own place in it:
 * allocations that move upward one by one (next fit) keep landing in the
 * same line of the table instead of a random one each.  Groups are picked
 * by Fibonacci hashing of the block number, so dense IDs still spread
 * evenly, and the place in the group is turned by the hash too, so keys
 * with a stride of 16 are not all put at one place of their groups. */
static inline uint64_t hash_bucket(const struct arena *ar, vmem_addr_t start)
{
	uint64_t u = start >> ar->qshift;
	uint64_t h = ((u >> 4) * 0x9e3779b97f4a7c15ull) >> ar->hash_shift;
	return h ^ (u & 15); /* the group is h's high bits; the place, h's low ones turned */
}

/* The load bounds of a table of 2^bits buckets; a bound the table cannot
 * move past (its minimum or maximum size) is never crossed. */
static void hash_bounds(struct arena *ar, unsigned int bits)
{
	uint64_t n = (uint64_t)1 << bits;
	ar->hash_grow = bits < HASH_MAX_BITS ? n : UINT64_MAX;
	ar->hash_shrink = bits > HASH_MIN_BITS ? n / 8 : 0;
}

int hash_init(struct arena *ar)
{
	size_t n = (size_t)1 << HASH_MIN_BITS;
	ar->hash = os_map(n * sizeof(bt_idx));
	if (ar->hash == NULL)
		return ENOMEM;
	ar->hash_bytes = n * sizeof(bt_idx);
	ar->hash_mask = n - 1;
	ar->hash_shift = 64 - HASH_MIN_BITS;
	hash_bounds(ar, HASH_MIN_BITS);
	return 0; /* fresh anonymous pages are zero: every bucket is BT_NIL */
}

void hash_fini(struct arena *ar)
{
	os_unmap(ar->hash, ar->hash_bytes);
	ar->hash = NULL;
	ar->hash_bytes = 0;
}

static void hash_rebuild(struct arena *ar, unsigned int bits)
{
	size_t n = (size_t)1 << bits;
	bt_idx *t = os_map(n * sizeof(bt_idx));
	if (t == NULL)
		return;
	bt_idx *old = ar->hash;
	size_t oldn = ar->hash_mask + 1;
	ar->hash = t;
	ar->hash_mask = n - 1;
	ar->hash_shift = 64 - bits;
	for (size_t k = 0; k < oldn; k++) {
		bt_idx i = old[k];
		while (i != BT_NIL) {
			struct bt *b = BT(ar, i);
			bt_idx next = b->lnext;
			uint64_t h = hash_bucket(ar, b->start);
			b->lnext = t[h];
			t[h] = i;
			i = next;
		}
	}
	os_unmap(old, oldn * sizeof(bt_idx));
	ar->hash_bytes = n * sizeof(bt_idx);
	hash_bounds(ar, bits);
}

/* The bounds already stop at the table's minimum and maximum size. */
void hash_resize(struct arena *ar)
{
	unsigned int bits = 64 - ar->hash_shift;
	if (ar->nalloc > ar->hash_grow)
		hash_rebuild(ar, bits + 1);
	else if (ar->nalloc < ar->hash_shrink)
		hash_rebuild(ar, bits - 1);
}

HOT_INLINE void hash_insert(struct arena *ar, bt_idx i)
{
	struct bt *b = BT(ar, i);
	uint64_t h = hash_bucket(ar, b->start);
	b->lnext = ar->hash[h];
	ar->hash[h] = i;
	if (unlikely(++ar->nalloc > ar->hash_grow))
		hash_resize(ar);
}

bt_idx hash_lookup(const struct arena *ar, vmem_addr_t start)
{
	bt_idx i = ar->hash[hash_bucket(ar, start)];
	while (i != BT_NIL && BT(ar, i)->start != start)
		i = BT(ar, i)->lnext;
	return i;
}

HOT_INLINE bt_idx hash_find(struct arena *ar, vmem_addr_t start, bt_idx **linkp)
{
	bt_idx *link = &ar->hash[hash_bucket(ar, start)];
	bt_idx i;
	while ((i = *link) != BT_NIL) {
		struct bt *b = BT(ar, i);
		if (b->start == start)
			break;
		link = &b->lnext;
	}
	*linkp = link;
	return i;
}

/* It does not shrink the table: the free that calls it does (hash_resize),
 * once it has done with the tag, so that the tag and the link are not
 * kept across that call, which takes registers on every free. */
HOT_INLINE void hash_unlink(struct arena *ar, bt_idx *link, bt_idx i)
{
	*link = BT(ar, i)->lnext;
	BT(ar, i)->lnext = BT_NIL;
	ar->nalloc--;
}
