/*
 * tree.c - every free segment is also a node of a treap ordered by start
 * address, where each node knows the largest free size in its subtree (I5).
 * That turns "lowest-addressed free segment that fits" into a descent that
 * skips whole subtrees, so first fit, next fit and constrained searches are
 * logarithmic instead of a walk over every segment.
 *
 * Nodes know their parent, so a change of size climbs from the node and
 * stops at the first ancestor whose max does not change: usually at once.
 * Sizes in the treap are counted in quanta and saturate at 2^32 - 1, which
 * keeps a tag at 48 bytes; a saturated max only means a subtree is searched
 * rather than skipped.
 *
 * The treap is built the first time a search needs address order (first
 * fit, next fit past its short walk, constrained or fallback searches) and
 * kept from then on: an arena used only with instant and best fit, like an
 * ID allocator, never pays for it.
 *
 * Priorities are a hash of the tag index: no storage, no RNG state, and
 * random enough that the expected depth is O(log n).  The same code keeps
 * the span treap (span markers by start).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "vmem_impl.h"

uint32_t tree_prio(const vmem_t *vm, bt_idx i)
{
	uint64_t x = (uint64_t)i ^ vm->tree_seed;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (uint32_t)x;
}

uint32_t tree_units(const vmem_t *vm, vmem_size_t size)
{
	vmem_size_t u = size >> vm->qshift;
	return u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
}

/* Recompute i's max from its children; true if it changed. */
static inline bool tree_pull(vmem_t *vm, bt_idx i)
{
	struct bt *b = BT(vm, i);
	uint32_t m = tree_units(vm, b->size);
	uint32_t l = BT(vm, b->left)->max, r = BT(vm, b->right)->max;
	m = l > m ? l : m;
	m = r > m ? r : m;
	bool changed = b->max != m;
	b->max = m;
	return changed;
}

/* Climb from i while maxes change. */
static void tree_fix_up(vmem_t *vm, bt_idx i)
{
	while (i != BT_NIL && tree_pull(vm, i))
		i = BT(vm, i)->parent;
}

/* Put c where p was under p's parent (or at the root). */
static inline void tree_replace(vmem_t *vm, bt_idx *rootp, bt_idx p, bt_idx c)
{
	bt_idx g = BT(vm, p)->parent;
	if (c != BT_NIL)
		BT(vm, c)->parent = g;
	if (g == BT_NIL)
		*rootp = c;
	else if (BT(vm, g)->left == p)
		BT(vm, g)->left = c;
	else
		BT(vm, g)->right = c;
}

/* Rotate x above its parent; the subtree's max is unchanged. */
static void tree_rotate_up(vmem_t *vm, bt_idx *rootp, bt_idx x)
{
	struct bt *n = BT(vm, x);
	bt_idx p = n->parent;
	struct bt *pb = BT(vm, p);
	tree_replace(vm, rootp, p, x);
	if (pb->left == x) {
		pb->left = n->right;
		if (n->right != BT_NIL)
			BT(vm, n->right)->parent = p;
		n->right = p;
	} else {
		pb->right = n->left;
		if (n->left != BT_NIL)
			BT(vm, n->left)->parent = p;
		n->left = p;
	}
	pb->parent = x;
	/* x now tops the same set of nodes that p did */
	uint32_t top = pb->max;
	tree_pull(vm, p);
	n->max = top;
}

static void tree_insert_into(vmem_t *vm, bt_idx *rootp, bt_idx x)
{
	struct bt *n = BT(vm, x);
	n->left = n->right = BT_NIL;
	n->max = tree_units(vm, n->size);
	bt_idx t = *rootp, p = BT_NIL;
	bt_idx *link = rootp;
	while (t != BT_NIL) {
		struct bt *b = BT(vm, t);
		p = t;
		if (b->max < n->max)
			b->max = n->max; /* x will be below */
		link = n->start < b->start ? &b->left : &b->right;
		t = *link;
	}
	*link = x;
	n->parent = p;
	uint32_t px = tree_prio(vm, x);
	while (n->parent != BT_NIL && px > tree_prio(vm, n->parent))
		tree_rotate_up(vm, rootp, x);
}

static void tree_remove_from(vmem_t *vm, bt_idx *rootp, bt_idx x)
{
	struct bt *n = BT(vm, x);
	/* rotate x down below its higher-priority child until it has one child */
	while (n->left != BT_NIL && n->right != BT_NIL) {
		bt_idx c = tree_prio(vm, n->left) > tree_prio(vm, n->right) ? n->left : n->right;
		tree_rotate_up(vm, rootp, c);
	}
	bt_idx p = n->parent;
	tree_replace(vm, rootp, x, n->left != BT_NIL ? n->left : n->right);
	n->left = n->right = n->parent = BT_NIL;
	n->max = 0;
	tree_fix_up(vm, p);
}

void tree_insert(vmem_t *vm, bt_idx i)
{
	if (vm->tree_on)
		tree_insert_into(vm, &vm->tree_root, i);
}

void tree_remove(vmem_t *vm, bt_idx i)
{
	if (vm->tree_on)
		tree_remove_from(vm, &vm->tree_root, i);
}

void tree_update(vmem_t *vm, bt_idx i)
{
	if (vm->tree_on)
		tree_fix_up(vm, i);
}

static bt_idx tree_fit_from(const vmem_t *vm, bt_idx t, const struct fitreq *req, uint32_t units,
			    vmem_addr_t *addrp)
{
	/* in-order descent; the right spine is a loop, the left a recursion */
	while (t != BT_NIL) {
		const struct bt *b = BT(vm, t);
		if (b->max < units)
			return BT_NIL;
		/* everything left of t ends before t->start */
		if (b->start > req->minaddr) {
			bt_idx r = tree_fit_from(vm, b->left, req, units, addrp);
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

/* A plain request (no constraint) fits any free segment at least its size,
 * at the segment's start, so the lowest fit is one descent with no
 * backtracking: left while the left subtree has room, else this node if it
 * is big enough, else right.  Only valid while units < UINT32_MAX: then a
 * subtree max >= units (saturated or not) proves a segment of that size. */
static bt_idx tree_fit_plain(const vmem_t *vm, vmem_size_t size, uint32_t units,
			     vmem_addr_t *addrp)
{
	bt_idx t = vm->tree_root;
	if (BT(vm, t)->max < units)
		return BT_NIL; /* also an empty treap: BT_NIL's max is 0 */
	while (t != BT_NIL) { /* only a broken I5 could reach BT_NIL */
		const struct bt *b = BT(vm, t);
		if (BT(vm, b->left)->max >= units) {
			t = b->left;
		} else if (b->size >= size) {
			*addrp = b->start;
			return t;
		} else {
			t = b->right; /* t's max >= units and neither t nor its left has it */
		}
	}
	return BT_NIL;
}

bt_idx tree_first_fit(vmem_t *vm, const struct fitreq *req, vmem_addr_t *addrp)
{
	if (unlikely(!vm->tree_on))
		tree_build(vm);
	uint32_t units = tree_units(vm, req->size);
	if (fitreq_plain(req, vm->quantum) && units < UINT32_MAX)
		return tree_fit_plain(vm, req->size, units, addrp);
	return tree_fit_from(vm, vm->tree_root, req, units, addrp);
}

/* ---- the span treap ----------------------------------------------------
 * Span markers sit in a second treap of the same kind, ordered by start,
 * so adding a span and vmem_contains find their neighbours in O(log n)
 * even for an arena that has imported many spans. */

void tree_span_insert(vmem_t *vm, bt_idx si)
{
	tree_insert_into(vm, &vm->span_root, si);
}

void tree_span_remove(vmem_t *vm, bt_idx si)
{
	tree_remove_from(vm, &vm->span_root, si);
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
