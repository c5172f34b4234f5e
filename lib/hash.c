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

#include "vmem_impl.h"

#define HASH_MIN_BITS 10u
#define HASH_MAX_BITS 40u

/* Units are hashed in blocks of 16, and a block's units fill one aligned
 * group of 16 buckets (one cache line), each unit at its own place in it:
 * allocations that move upward one by one (next fit) keep landing in the
 * same line of the table instead of a random one each.  Groups are picked
 * by Fibonacci hashing of the block number, so dense IDs still spread
 * evenly, and the place in the group is turned by the hash too, so keys
 * with a stride of 16 are not all put at one place of their groups. */
static inline uint64_t hash_bucket(const vmem_t *vm, vmem_addr_t start)
{
	uint64_t u = start >> vm->qshift;
	uint64_t h = ((u >> 4) * 0x9e3779b97f4a7c15ull) >> vm->hash_shift;
	return h ^ (u & 15); /* the group is h's high bits; the place, h's low ones turned */
}

/* The load bounds of a table of 2^bits buckets; a bound the table cannot
 * move past (its minimum or maximum size) is never crossed. */
static void hash_bounds(vmem_t *vm, unsigned int bits)
{
	uint64_t n = (uint64_t)1 << bits;
	vm->hash_grow = bits < HASH_MAX_BITS ? n : UINT64_MAX;
	vm->hash_shrink = bits > HASH_MIN_BITS ? n / 8 : 0;
}

int hash_init(vmem_t *vm)
{
	size_t n = (size_t)1 << HASH_MIN_BITS;
	vm->hash = os_map(n * sizeof(bt_idx));
	if (vm->hash == NULL)
		return ENOMEM;
	vm->hash_bytes = n * sizeof(bt_idx);
	vm->hash_mask = n - 1;
	vm->hash_shift = 64 - HASH_MIN_BITS;
	hash_bounds(vm, HASH_MIN_BITS);
	return 0; /* fresh anonymous pages are zero: every bucket is BT_NIL */
}

void hash_fini(vmem_t *vm)
{
	os_unmap(vm->hash, vm->hash_bytes);
	vm->hash = NULL;
	vm->hash_bytes = 0;
}

static void hash_rebuild(vmem_t *vm, unsigned int bits)
{
	size_t n = (size_t)1 << bits;
	bt_idx *t = os_map(n * sizeof(bt_idx));
	if (t == NULL)
		return;
	bt_idx *old = vm->hash;
	size_t oldn = vm->hash_mask + 1;
	vm->hash = t;
	vm->hash_mask = n - 1;
	vm->hash_shift = 64 - bits;
	for (size_t k = 0; k < oldn; k++) {
		bt_idx i = old[k];
		while (i != BT_NIL) {
			struct bt *b = BT(vm, i);
			bt_idx next = b->lnext;
			uint64_t h = hash_bucket(vm, b->start);
			b->lnext = t[h];
			t[h] = i;
			i = next;
		}
	}
	os_unmap(old, oldn * sizeof(bt_idx));
	vm->hash_bytes = n * sizeof(bt_idx);
	hash_bounds(vm, bits);
}

/* The bounds already stop at the table's minimum and maximum size. */
void hash_resize(vmem_t *vm)
{
	unsigned int bits = 64 - vm->hash_shift;
	if (vm->nalloc > vm->hash_grow)
		hash_rebuild(vm, bits + 1);
	else if (vm->nalloc < vm->hash_shrink)
		hash_rebuild(vm, bits - 1);
}

HOT_INLINE void hash_insert(vmem_t *vm, bt_idx i)
{
	struct bt *b = BT(vm, i);
	uint64_t h = hash_bucket(vm, b->start);
	b->lnext = vm->hash[h];
	vm->hash[h] = i;
	if (unlikely(++vm->nalloc > vm->hash_grow))
		hash_resize(vm);
}

bt_idx hash_lookup(const vmem_t *vm, vmem_addr_t start)
{
	bt_idx i = vm->hash[hash_bucket(vm, start)];
	while (i != BT_NIL && BT(vm, i)->start != start)
		i = BT(vm, i)->lnext;
	return i;
}

HOT_INLINE bt_idx hash_find(vmem_t *vm, vmem_addr_t start, bt_idx **linkp)
{
	bt_idx *link = &vm->hash[hash_bucket(vm, start)];
	bt_idx i;
	while ((i = *link) != BT_NIL) {
		struct bt *b = BT(vm, i);
		if (b->start == start)
			break;
		link = &b->lnext;
	}
	*linkp = link;
	return i;
}

HOT_INLINE void hash_unlink(vmem_t *vm, bt_idx *link, bt_idx i)
{
	*link = BT(vm, i)->lnext;
	BT(vm, i)->lnext = BT_NIL;
	if (unlikely(--vm->nalloc < vm->hash_shrink))
		hash_resize(vm);
}
