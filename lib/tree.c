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
 * keeps a tag's cold part (struct bt_node: links and max) at 16 bytes; a
 * saturated max only means a subtree is searched rather than skipped.  The
 * cold parts are mapped only when the first treap is needed
 * (tree_need_nodes), so an ID arena served by instant fit never pays their
 * memory.
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
#include <errno.h>

#include "arena_impl.h"

uint32_t tree_prio(const struct arena *ar, bt_idx i)
{
	uint64_t x = (uint64_t)i ^ ar->tree_seed;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (uint32_t)x;
}

uint32_t tree_units(const struct arena *ar, vmem_size_t size)
{
	vmem_size_t u = size >> ar->qshift;
	return u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
}

/* Recompute i's max from its children; true if it changed. */
static inline bool tree_pull(struct arena *ar, bt_idx i)
{
	struct bt_node *n = BN(ar, i);
	uint32_t m = tree_units(ar, BT(ar, i)->size);
	uint32_t l = BN(ar, n->left)->max, r = BN(ar, n->right)->max;
	m = l > m ? l : m;
	m = r > m ? r : m;
	bool changed = n->max != m;
	n->max = m;
	return changed;
}

/* Climb from i while maxes change. */
static void tree_fix_up(struct arena *ar, bt_idx i)
{
	while (i != BT_NIL && tree_pull(ar, i))
		i = BN(ar, i)->parent;
}

/* Put c where p was under p's parent (or at the root). */
static inline void tree_replace(struct arena *ar, bt_idx *rootp, bt_idx p, bt_idx c)
{
	bt_idx g = BN(ar, p)->parent;
	if (c != BT_NIL)
		BN(ar, c)->parent = g;
	if (g == BT_NIL)
		*rootp = c;
	else if (BN(ar, g)->left == p)
		BN(ar, g)->left = c;
	else
		BN(ar, g)->right = c;
}

/* Rotate x above its parent; the subtree's max is unchanged. */
static void tree_rotate_up(struct arena *ar, bt_idx *rootp, bt_idx x)
{
	struct bt_node *n = BN(ar, x);
	bt_idx p = n->parent;
	struct bt_node *pb = BN(ar, p);
	tree_replace(ar, rootp, p, x);
	if (pb->left == x) {
		pb->left = n->right;
		if (n->right != BT_NIL)
			BN(ar, n->right)->parent = p;
		n->right = p;
	} else {
		pb->right = n->left;
		if (n->left != BT_NIL)
			BN(ar, n->left)->parent = p;
		n->left = p;
	}
	pb->parent = x;
	/* x now tops the same set of nodes that p did */
	uint32_t top = pb->max;
	tree_pull(ar, p);
	n->max = top;
}

static void tree_insert_into(struct arena *ar, bt_idx *rootp, bt_idx x)
{
	struct bt_node *n = BN(ar, x);
	vmem_addr_t start = BT(ar, x)->start;
	n->left = n->right = BT_NIL;
	n->max = tree_units(ar, BT(ar, x)->size);
	bt_idx t = *rootp, p = BT_NIL;
	bt_idx *link = rootp;
	while (t != BT_NIL) {
		struct bt_node *b = BN(ar, t);
		p = t;
		if (b->max < n->max)
			b->max = n->max; /* x will be below */
		link = start < BT(ar, t)->start ? &b->left : &b->right;
		t = *link;
	}
	*link = x;
	n->parent = p;
	uint32_t px = tree_prio(ar, x);
	while (n->parent != BT_NIL && px > tree_prio(ar, n->parent))
		tree_rotate_up(ar, rootp, x);
}

static void tree_remove_from(struct arena *ar, bt_idx *rootp, bt_idx x)
{
	struct bt_node *n = BN(ar, x);
	/* rotate x down below its higher-priority child until it has one child */
	while (n->left != BT_NIL && n->right != BT_NIL) {
		bt_idx c = tree_prio(ar, n->left) > tree_prio(ar, n->right) ? n->left : n->right;
		tree_rotate_up(ar, rootp, c);
	}
	bt_idx p = n->parent;
	tree_replace(ar, rootp, x, n->left != BT_NIL ? n->left : n->right);
	n->left = n->right = n->parent = BT_NIL;
	n->max = 0;
	tree_fix_up(ar, p);
}

/* The newest free segment waits beside the treap (tree_pending) until the
 * next one comes: a segment freed and then taken again at once, as a
 * first-fit arena's churn does, never enters the treap, which spares its
 * node's cache line and two treap walks.  Every search also looks at it. */
void tree_insert(struct arena *ar, bt_idx i)
{
	if (!ar->tree_on)
		return;
	if (ar->tree_pending != BT_NIL)
		tree_insert_into(ar, &ar->tree_root, ar->tree_pending);
	ar->tree_pending = i;
}

void tree_remove(struct arena *ar, bt_idx i)
{
	if (!ar->tree_on)
		return;
	if (i == ar->tree_pending)
		ar->tree_pending = BT_NIL;
	else
		tree_remove_from(ar, &ar->tree_root, i);
}

void tree_update(struct arena *ar, bt_idx i)
{
	if (ar->tree_on && i != ar->tree_pending)
		tree_fix_up(ar, i);
}

static bt_idx tree_fit_from(const struct arena *ar, bt_idx t, const struct fitreq *req, uint32_t units,
			    vmem_addr_t *addrp)
{
	/* in-order descent; the right spine is a loop, the left a recursion */
	while (t != BT_NIL) {
		const struct bt_node *n = BN(ar, t);
		if (n->max < units)
			return BT_NIL;
		const struct bt *b = BT(ar, t);
		/* everything left of t ends before t->start */
		if (b->start > req->minaddr) {
			bt_idx r = tree_fit_from(ar, n->left, req, units, addrp);
			if (r != BT_NIL)
				return r;
		}
		if (b->start > req->maxaddr)
			return BT_NIL;
		if (b->size >= req->size && fit(b->start, b->size, req, addrp))
			return t;
		t = n->right;
	}
	return BT_NIL;
}

static void tree_build(struct arena *ar)
{
	ar->tree_on = true;
	ar->tree_pending = BT_NIL;
	/* in address order each insert walks the hot right spine */
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next)
		if (BT(ar, i)->type == BT_FREE)
			tree_insert_into(ar, &ar->tree_root, i);
}

/* A plain request (no constraint) fits any free segment at least its size,
 * at the segment's start, so the lowest fit is one descent with no
 * backtracking: left while the left subtree has room, else this node if it
 * is big enough, else right.  Only valid while units < UINT32_MAX: then a
 * subtree max >= units (saturated or not) proves a segment of that size. */
static bt_idx tree_fit_plain(const struct arena *ar, vmem_size_t size, uint32_t units,
			     vmem_addr_t *addrp)
{
	bt_idx t = ar->tree_root;
	if (BN(ar, t)->max < units)
		return BT_NIL; /* also an empty treap: BT_NIL's max is 0 */
	while (t != BT_NIL) { /* only a broken I5 could reach BT_NIL */
		const struct bt_node *n = BN(ar, t);
		if (BN(ar, n->left)->max >= units) {
			t = n->left;
		} else if (BT(ar, t)->size >= size) {
			*addrp = BT(ar, t)->start;
			return t;
		} else {
			t = n->right; /* t's max >= units and neither t nor its left has it */
		}
	}
	return BT_NIL;
}

/* The pending segment, if it fits req and lies below found (BT_NIL: none). */
static bt_idx tree_pending_below(const struct arena *ar, const struct fitreq *req, bt_idx found,
				 vmem_addr_t *addrp)
{
	bt_idx p = ar->tree_pending;
	if (p == BT_NIL)
		return found;
	const struct bt *b = BT(ar, p);
	vmem_addr_t a;
	if ((found != BT_NIL && b->start > BT(ar, found)->start) || b->size < req->size ||
	    !fit(b->start, b->size, req, &a))
		return found;
	*addrp = a;
	return p;
}

bt_idx tree_first_fit(struct arena *ar, const struct fitreq *req, vmem_addr_t *addrp)
{
	if (unlikely(!ar->tree_on)) {
		if (ar->nfree == 0 || tree_need_nodes(ar) != 0)
			return BT_NIL; /* nothing to find (build the treap later), or no memory */
		tree_build(ar);
	}
	uint32_t units = tree_units(ar, req->size);
	bt_idx found;
	if (fitreq_plain(req, ar->quantum) && units < UINT32_MAX)
		found = tree_fit_plain(ar, req->size, units, addrp);
	else
		found = tree_fit_from(ar, ar->tree_root, req, units, addrp);
	return tree_pending_below(ar, req, found, addrp);
}

/* ---- the span treap ----------------------------------------------------
 * Span markers sit in a second treap of the same kind, ordered by start,
 * so adding a span and vmem_contains find their neighbours in O(log n)
 * even for an arena that has imported many spans. */

int tree_need_nodes(struct arena *ar)
{
	if (ar->bt_node != NULL)
		return 0;
	if (tagslab_map_nodes(ar) != 0)
		return ENOMEM;
	ar->bt_node_new = true;
	for (bt_idx si = BT(ar, BT_HEAD)->lnext; si != BT_HEAD; si = BT(ar, si)->lnext)
		tree_insert_into(ar, &ar->span_root, si);
	return 0;
}

void tree_failed_locked(struct arena *ar)
{
	/* only a success adds a second span or a slab's cookie, and keeps them */
	if (ar->bt_node_new && ar->nspans <= 1) {
		tagslab_unmap_nodes(ar);
		ar->tree_on = false;
		ar->tree_root = ar->tree_pending = BT_NIL;
		ar->span_root = BT_NIL;
	}
	ar->bt_node_new = false;
}

void tree_span_insert(struct arena *ar, bt_idx si)
{
	if (ar->bt_node != NULL)
		tree_insert_into(ar, &ar->span_root, si);
}

void tree_span_remove(struct arena *ar, bt_idx si)
{
	if (ar->bt_node != NULL)
		tree_remove_from(ar, &ar->span_root, si);
}

bt_idx tree_span_floor(const struct arena *ar, vmem_addr_t addr)
{
	if (ar->bt_node == NULL) {
		/* one span at most: the span list's first */
		bt_idx si = BT(ar, BT_HEAD)->lnext;
		return si != BT_HEAD && BT(ar, si)->start <= addr ? si : BT_NIL;
	}
	bt_idx t = ar->span_root, best = BT_NIL;
	while (t != BT_NIL) {
		const struct bt_node *n = BN(ar, t);
		if (BT(ar, t)->start <= addr) {
			best = t;
			t = n->right;
		} else {
			t = n->left;
		}
	}
	return best;
}
