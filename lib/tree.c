/*
 * tree.c - every free segment is also a node of a treap ordered by start
 * address, where each node knows the largest free size in its subtree (I5).
 * That turns "lowest-addressed free segment that fits" into a descent that
 * skips whole subtrees, so first fit, next fit and constrained searches are
 * logarithmic instead of a walk over every segment.
 *
 * The treap is built the first time a search needs address order (first
 * fit, next fit past its short walk, constrained or fallback searches) and
 * kept from then on: an arena used only with instant and best fit, like an
 * ID allocator, never pays for it.
 *
 * Priorities are a hash of the tag index: no storage, no RNG state, and
 * random enough that the expected depth is O(log n).  Recursion depth is
 * the tree depth.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "vmem_impl.h"

static inline uint32_t tree_prio(const vmem_t *vm, bt_idx i)
{
	uint64_t x = (uint64_t)i ^ vm->tree_seed;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (uint32_t)x;
}

static inline void tree_pull(vmem_t *vm, bt_idx i)
{
	struct bt *b = BT(vm, i);
	vmem_size_t m = b->size;
	vmem_size_t l = BT(vm, b->left)->max, r = BT(vm, b->right)->max;
	if (l > m)
		m = l;
	if (r > m)
		m = r;
	b->max = m;
}

/* Nodes with start < key go to *l, the rest to *r. */
static void tree_split(vmem_t *vm, bt_idx t, vmem_addr_t key, bt_idx *l, bt_idx *r)
{
	if (t == BT_NIL) {
		*l = *r = BT_NIL;
		return;
	}
	struct bt *b = BT(vm, t);
	if (b->start < key) {
		tree_split(vm, b->right, key, &b->right, r);
		*l = t;
	} else {
		tree_split(vm, b->left, key, l, &b->left);
		*r = t;
	}
	tree_pull(vm, t);
}

static bt_idx tree_merge(vmem_t *vm, bt_idx l, bt_idx r)
{
	if (l == BT_NIL)
		return r;
	if (r == BT_NIL)
		return l;
	if (tree_prio(vm, l) > tree_prio(vm, r)) {
		struct bt *b = BT(vm, l);
		b->right = tree_merge(vm, b->right, r);
		tree_pull(vm, l);
		return l;
	}
	struct bt *b = BT(vm, r);
	b->left = tree_merge(vm, l, b->left);
	tree_pull(vm, r);
	return r;
}

static bt_idx tree_insert_at(vmem_t *vm, bt_idx t, bt_idx x)
{
	struct bt *n = BT(vm, x);
	if (t == BT_NIL) {
		n->left = n->right = BT_NIL;
		n->max = n->size;
		return x;
	}
	if (tree_prio(vm, x) > tree_prio(vm, t)) {
		tree_split(vm, t, n->start, &n->left, &n->right);
		tree_pull(vm, x);
		return x;
	}
	struct bt *b = BT(vm, t);
	if (n->start < b->start)
		b->left = tree_insert_at(vm, b->left, x);
	else
		b->right = tree_insert_at(vm, b->right, x);
	tree_pull(vm, t);
	return t;
}

void tree_insert(vmem_t *vm, bt_idx i)
{
	if (vm->tree_on)
		vm->tree_root = tree_insert_at(vm, vm->tree_root, i);
}

static bt_idx tree_remove_at(vmem_t *vm, bt_idx t, bt_idx x, vmem_addr_t key)
{
	if (t == BT_NIL)
		return BT_NIL; /* not reached while I5 holds */
	struct bt *b = BT(vm, t);
	if (t == x)
		return tree_merge(vm, b->left, b->right);
	if (key < b->start)
		b->left = tree_remove_at(vm, b->left, x, key);
	else
		b->right = tree_remove_at(vm, b->right, x, key);
	tree_pull(vm, t);
	return t;
}

static void tree_remove_node(vmem_t *vm, bt_idx i)
{
	vm->tree_root = tree_remove_at(vm, vm->tree_root, i, BT(vm, i)->start);
	struct bt *b = BT(vm, i);
	b->left = b->right = BT_NIL;
	b->max = 0;
}

void tree_remove(vmem_t *vm, bt_idx i)
{
	if (vm->tree_on)
		tree_remove_node(vm, i);
}

static void tree_update_at(vmem_t *vm, bt_idx t, bt_idx x, vmem_addr_t key)
{
	if (t == BT_NIL)
		return;
	if (t != x) {
		struct bt *b = BT(vm, t);
		tree_update_at(vm, key < b->start ? b->left : b->right, x, key);
	}
	tree_pull(vm, t);
}

void tree_update(vmem_t *vm, bt_idx i)
{
	if (vm->tree_on)
		tree_update_at(vm, vm->tree_root, i, BT(vm, i)->start);
}

static bt_idx tree_fit_from(const vmem_t *vm, bt_idx t, const struct fitreq *req,
			    vmem_addr_t *addrp)
{
	/* in-order descent; the right spine is a loop, the left a recursion */
	while (t != BT_NIL) {
		const struct bt *b = BT(vm, t);
		if (b->max < req->size)
			return BT_NIL;
		/* everything left of t ends before t->start */
		if (b->start > req->minaddr) {
			bt_idx r = tree_fit_from(vm, b->left, req, addrp);
			if (r != BT_NIL)
				return r;
		}
		if (b->start > req->maxaddr)
			return BT_NIL;
		if (b->size >= req->size && fit(b->start, b->size, req, addrp))
			return t;
		t = b->right;
	}
	return BT_NIL;
}

static void tree_build(vmem_t *vm)
{
	vm->tree_on = true;
	/* in address order each insert walks the hot right spine */
	for (bt_idx i = BT(vm, BT_HEAD)->next; i != BT_HEAD; i = BT(vm, i)->next)
		if (BT(vm, i)->type == BT_FREE)
			tree_insert(vm, i);
}

bt_idx tree_first_fit(vmem_t *vm, const struct fitreq *req, vmem_addr_t *addrp)
{
	if (unlikely(!vm->tree_on))
		tree_build(vm);
	return tree_fit_from(vm, vm->tree_root, req, addrp);
}

/* ---- the span treap ----------------------------------------------------
 * Span markers sit in a second treap of the same kind, ordered by start,
 * so adding a span and vmem_contains find their neighbours in O(log n)
 * even for an arena that has imported many spans. */

void tree_span_insert(vmem_t *vm, bt_idx si)
{
	vm->span_root = tree_insert_at(vm, vm->span_root, si);
}

void tree_span_remove(vmem_t *vm, bt_idx si)
{
	vm->span_root = tree_remove_at(vm, vm->span_root, si, BT(vm, si)->start);
	struct bt *b = BT(vm, si);
	b->left = b->right = BT_NIL;
	b->max = 0;
}

bt_idx tree_span_floor(const vmem_t *vm, vmem_addr_t addr)
{
	bt_idx t = vm->span_root, best = BT_NIL;
	while (t != BT_NIL) {
		const struct bt *b = BT(vm, t);
		if (b->start <= addr) {
			best = t;
			t = b->right;
		} else {
			t = b->left;
		}
	}
	return best;
}
