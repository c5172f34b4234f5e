/*
 * Unit test of tree.c: the treap of free segments against a sorted array,
 * with random inserts, removes, in-place reshapes and first-fit queries.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "vmem_impl.h"

#define NSLOT 512 /* segment k may live in [k * 1024, k * 1024 + 1024) */

struct ref {
	bt_idx tag[NSLOT]; /* BT_NIL: slot empty */
};

static void tree_verify(vmem_t *vm, bt_idx t, vmem_addr_t *last, bool *first, unsigned *n,
			vmem_size_t *maxp)
{
	if (t == BT_NIL) {
		*maxp = 0;
		return;
	}
	const struct bt *b = BT(&vm->arena, t);
	const struct bt_node *nd = BN(&vm->arena, t);
	vmem_size_t lm, rm;
	tree_verify(vm, nd->left, last, first, n, &lm);
	assert_true(*first || b->start > *last);
	*first = false;
	*last = b->start;
	(*n)++;
	tree_verify(vm, nd->right, last, first, n, &rm);
	vmem_size_t m = b->size;
	m = lm > m ? lm : m;
	m = rm > m ? rm : m;
	assert_int_equal(nd->max, m);
	*maxp = m;
}

static void check_against(vmem_t *vm, const struct ref *r)
{
	unsigned want = 0, got = 0;
	for (int k = 0; k < NSLOT; k++)
		want += r->tag[k] != BT_NIL;
	vmem_addr_t last = 0;
	bool first = true;
	vmem_size_t m;
	tree_verify(vm, vm->arena.tree_root, &last, &first, &got, &m);
	/* the newest insert may wait beside the treap: one of the reference's */
	bt_idx p = vm->arena.tree_pending;
	if (p != BT_NIL) {
		bool known = false;
		for (int k = 0; k < NSLOT; k++)
			known = known || r->tag[k] == p;
		assert_true(known);
		got++;
	}
	assert_int_equal(got, want);
}

/* Lowest fit by brute force over the reference. */
static bt_idx brute_fit(vmem_t *vm, const struct ref *r, const struct fitreq *q, vmem_addr_t *ap)
{
	for (int k = 0; k < NSLOT; k++) {
		if (r->tag[k] == BT_NIL)
			continue;
		const struct bt *b = BT(&vm->arena, r->tag[k]);
		if (fit(b->start, b->size, q, ap))
			return r->tag[k];
	}
	return BT_NIL;
}

TEST(test_tree_random)
{
	uint64_t seed = test_seed(42);
	vmem_t *vm = vmem_create("tree", 0, 0, 1, 0, 0);
	assert_non_null(vm);
	struct ref r;
	memset(&r, 0, sizeof(r));
	pthread_mutex_lock(&vm->arena.lock);
	assert_int_equal(tree_need_nodes(&vm->arena), 0);
	vm->arena.tree_on = true;
	uint64_t rounds = test_scale(20000);
	for (uint64_t i = 0; i < rounds; i++) {
		int k = (int)(rand_next(&seed) % NSLOT);
		unsigned op = (unsigned)(rand_next(&seed) % 4);
		if (r.tag[k] == BT_NIL && op < 2) {
			assert_int_equal(tagslab_reserve(&vm->arena, 1), 0);
			bt_idx t = tagslab_get(&vm->arena);
			struct bt *b = BT(&vm->arena, t);
			b->type = BT_FREE;
			b->start = (vmem_addr_t)k * 1024 + rand_next(&seed) % 512;
			b->size = 1 + rand_next(&seed) % 512;
			tree_insert(&vm->arena, t);
			r.tag[k] = t;
		} else if (r.tag[k] != BT_NIL && op == 2) {
			tree_remove(&vm->arena, r.tag[k]);
			tagslab_put(&vm->arena, r.tag[k]);
			r.tag[k] = BT_NIL;
		} else if (r.tag[k] != BT_NIL) {
			/* reshape within the slot: order is kept, max must follow */
			struct bt *b = BT(&vm->arena, r.tag[k]);
			b->start = (vmem_addr_t)k * 1024 + rand_next(&seed) % 512;
			b->size = 1 + rand_next(&seed) % 512;
			tree_update(&vm->arena, r.tag[k]);
		}
		if (i % 16 == 0)
			check_against(vm, &r);
		struct fitreq q = {
			.size = 1 + rand_next(&seed) % 600,
			.align = 1ull << (rand_next(&seed) % 8),
			.nocross = 0,
			.minaddr = rand_next(&seed) % (NSLOT * 1024),
			.maxaddr = VMEM_ADDR_MAX,
		};
		q.phase = rand_next(&seed) % q.align;
		if (rand_next(&seed) % 2)
			q.maxaddr = q.minaddr + rand_next(&seed) % (NSLOT * 1024);
		if (rand_next(&seed) % 4 == 0)
			q.minaddr = 0;
		vmem_addr_t a1 = 0, a2 = 0;
		bt_idx want = brute_fit(vm, &r, &q, &a1);
		bt_idx got = tree_first_fit(&vm->arena, &q, &a2);
		assert_int_equal(got, want);
		if (got != BT_NIL)
			assert_int_equal(a1, a2);
	}
	check_against(vm, &r);
	for (int k = 0; k < NSLOT; k++) {
		if (r.tag[k] != BT_NIL) {
			tree_remove(&vm->arena, r.tag[k]);
			tagslab_put(&vm->arena, r.tag[k]);
			r.tag[k] = BT_NIL;
		}
	}
	assert_int_equal(vm->arena.tree_root, BT_NIL);
	assert_int_equal(vm->arena.tree_pending, BT_NIL);
	assert_int_equal(BN(&vm->arena, BT_NIL)->max, 0);
	pthread_mutex_unlock(&vm->arena.lock);
	CHECK_AND_DESTROY(vm);
}

/* The treap is built lazily: an instant-fit arena never builds it, nor
 * maps the tags' cold parts it lives in (they are not counted in its
 * memory); the first first-fit request does both, and from then on the
 * treap is kept exact. */
TEST(test_tree_lazy)
{
	vmem_t *vm = vmem_create("lazy", 0, 1 << 20, 1, 0, 0);
	vmem_addr_t a[64];
	alloc_each(vm, a, 64, 8, 1, VM_INSTANTFIT);
	free_each(vm, a, 64, 8, 1, 0, 2);
	assert_false(vm->arena.tree_on);
	assert_null(vm->arena.bt_node);
	vmem_stats_t before = stats_of(vm);
	CHECK_ARENA(vm);
	vmem_addr_t f;
	assert_int_equal(vmem_alloc(vm, 8, VM_FIRSTFIT, &f), 0);
	assert_true(vm->arena.tree_on);
	assert_non_null(vm->arena.bt_node);
	vmem_stats_t after = stats_of(vm);
	assert_true(after.tag_bytes >= before.tag_bytes + vm->arena.bt_cap * sizeof(struct bt_node));
	assert_int_equal(a[0], 0); /* instant fit carves from the front */
	assert_int_equal(f, 0);
	CHECK_AND_DESTROY(vm);
}

/* A full arena answers ENOMEM without building the treap: instant fit
 * when no list from the size's class up has a member (for a plain and a
 * constrained request), first and next fit when nothing is free.  The
 * complete fallback still finds a fit that only the treap can find. */
TEST(test_tree_not_built_when_full)
{
	vmem_t *vm = vmem_create("full", 0, 64, 1, 0, 0);
	vmem_addr_t a[64], f;
	alloc_each(vm, a, 64, 1, 1, VM_INSTANTFIT);
	assert_int_equal(vmem_alloc(vm, 1, VM_INSTANTFIT, &f), ENOMEM);
	assert_int_equal(vmem_xalloc(vm, 1, 4, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, 0, &f), ENOMEM);
	assert_int_equal(vmem_alloc(vm, 1, VM_FIRSTFIT, &f), ENOMEM);
	assert_int_equal(vmem_alloc(vm, 1, VM_NEXTFIT, &f), ENOMEM);
	assert_false(vm->arena.tree_on);
	assert_null(vm->arena.bt_node);
	/* three units free at 5..7: a request of 3 units has no list that
	 * surely fits (class 1 holds sizes 2 and 3), nor one of size 3 at 8
	 * aligned; the first is found by the fallback, which builds the treap */
	for (int k = 5; k < 8; k++)
		assert_int_equal(vmem_free(vm, a[k], 1), 0);
	assert_int_equal(vmem_alloc(vm, 8, VM_INSTANTFIT, &f), ENOMEM);
	assert_false(vm->arena.tree_on);
	assert_int_equal(vmem_alloc(vm, 3, VM_INSTANTFIT, &f), 0);
	assert_int_equal(f, 5);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_free(vm, f, 3), 0);
	for (int k = 0; k < 64; k++)
		if (k < 5 || k >= 8)
			assert_int_equal(vmem_free(vm, a[k], 1), 0);
	CHECK_AND_DESTROY(vm);
}

/* The freelists are built lazily too: a next-fit arena keeps none, the
 * first instant-fit or best-fit search builds them from every free
 * segment, and from then on they are kept exact. */
TEST(test_freelist_lazy)
{
	for (int pol = 0; pol < 2; pol++) {
		vmem_t *vm = vmem_create("lazyfl", 0, 1 << 20, 1, 0, 0);
		vmem_addr_t a[64];
		alloc_each(vm, a, 64, 1, 5, VM_NEXTFIT);
		free_each(vm, a, 64, 1, 5, 0, 3);
		assert_false(vm->arena.fl_on);
		assert_int_equal(vm->arena.fl_bitmap, 0);
		CHECK_ARENA(vm);
		uint64_t nfree = vm->arena.nfree;
		vmem_addr_t f;
		assert_int_equal(vmem_alloc(vm, 1, pol == 0 ? VM_INSTANTFIT : VM_BESTFIT, &f), 0);
		assert_true(vm->arena.fl_on);
		assert_true(vm->arena.nfree == nfree || vm->arena.nfree == nfree - 1);
		CHECK_ARENA(vm);
		/* kept exact from now on, next fit included */
		free_each(vm, a, 64, 1, 5, 1, 3);
		assert_int_equal(vmem_alloc(vm, 2, VM_NEXTFIT, &a[1]), 0);
		assert_int_equal(vmem_free(vm, f, 1), 0);
		CHECK_AND_DESTROY(vm);
	}
}

/* Next fit never needs the treap while it can start from a tag near the
 * rotor.  Freeing the previous next-fit allocation when the segment before
 * it is free merges away the tag that follows it, which was the hint the
 * next search starts from; the hint must move to the merged segment, not
 * leave the search to walk from the start of the arena, give up and build
 * the treap (which every later allocation and free then pays for). */
TEST(test_nextfit_hint_merged)
{
	vmem_t *vm = vmem_create("hint", 0, 1 << 20, 1, 0, 0);
	vmem_addr_t a[100];
	alloc_each(vm, a, 100, 1, 1, VM_NEXTFIT);
	assert_int_equal(a[99], 99);
	/* a[98] is free when a[99], the latest, goes: all three merge */
	assert_int_equal(vmem_free(vm, a[98], 1), 0);
	assert_int_equal(vmem_free(vm, a[99], 1), 0);
	CHECK_ARENA(vm);
	vmem_addr_t f;
	assert_int_equal(vmem_alloc(vm, 1, VM_NEXTFIT, &f), 0);
	assert_int_equal(f, 100); /* the rotor stays at the end of a[99] */
	assert_false(vm->arena.tree_on);
	/* again and again: the free run before the latest allocation grows,
	 * and IDs still move on */
	for (vmem_addr_t k = 100; k < 1000; k++) {
		vmem_addr_t g = f;
		if (k > 100)
			assert_int_equal(vmem_alloc(vm, 1, VM_NEXTFIT, &g), 0);
		assert_int_equal(g, k);
		assert_int_equal(vmem_free(vm, g, 1), 0);
	}
	assert_false(vm->arena.tree_on);
	CHECK_AND_DESTROY(vm);
}

/* The tags' cold parts are mapped only when the arena needs them: its
 * second span (the span treap), its first slab for the caches (a slab's
 * cookie); and a search that mapped them and still failed gives them
 * back, so that it changes nothing, memory included. */
TEST(test_nodes_mapped_when_needed)
{
	vmem_t *vm = vmem_create("nodes", 0x1000, 8, 1, 0, 0);
	vmem_addr_t a[8], x;
	alloc_each(vm, a, 8, 1, 1, VM_INSTANTFIT);
	assert_null(vm->arena.bt_node);
	/* four units free at 0x1000..0x1003, none of them at or above 0x1004 */
	for (int k = 0; k < 4; k++)
		assert_int_equal(vmem_free(vm, a[k], 1), 0);
	vmem_stats_t before = stats_of(vm);
	assert_int_equal(vmem_xalloc(vm, 1, 0, 0, 0, 0x1004, VMEM_ADDR_MAX, VM_NOSLEEP, &x), ENOMEM);
	assert_null(vm->arena.bt_node);
	assert_false(vm->arena.tree_on);
	vmem_stats_t after = stats_of(vm);
	assert_int_equal(after.tag_bytes, before.tag_bytes);
	assert_int_equal(after.fails, before.fails + 1);
	CHECK_ARENA(vm);
	/* a second span: the span treap, in the cold parts, holds both */
	assert_int_equal(vmem_add(vm, 0x100000, 0x1000, VM_NOSLEEP), 0);
	assert_non_null(vm->arena.bt_node);
	assert_int_not_equal(vm->arena.span_root, BT_NIL);
	CHECK_ARENA(vm);
	assert_true(vmem_contains(vm, 0x100800, 1));
	assert_true(vmem_contains(vm, 0x1007, 1));
	assert_false(vmem_contains(vm, 0x1008, 1));
	assert_int_equal(vmem_xalloc(vm, 1, 0, 0, 0, 0x100000, VMEM_ADDR_MAX, VM_NOSLEEP, &x), 0);
	assert_int_equal(x, 0x100000);
	assert_int_equal(vmem_xfree(vm, x, 1), 0);
	for (int k = 4; k < 8; k++)
		assert_int_equal(vmem_free(vm, a[k], 1), 0);
	CHECK_AND_DESTROY(vm);

	/* a cached arena maps them with its first slab */
	vm = vmem_create("slabs", 0x1000, 1 << 20, 1, 4, 0);
	assert_null(vm->arena.bt_node);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &x), 0);
	assert_non_null(vm->arena.bt_node);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_free(vm, x, 1), 0);
	CHECK_AND_DESTROY(vm);
}

/* First-fit churn: the segment just freed waits beside the treap, the next
 * search finds it there (it is the lowest), and it never enters the treap;
 * a second free puts the first into the treap, and both are found in
 * address order. */
TEST(test_tree_pending)
{
	vmem_addr_t a[64], x;
	vmem_t *vm = vmem_create("pending", 0, 256, 1, 0, 0);
	alloc_each(vm, a, 64, 1, 1, VM_FIRSTFIT);
	/* the treap holds one segment, the tail at 64 */
	bt_idx root = vm->arena.tree_root;
	assert_true(vm->arena.tree_on && root != BT_NIL);
	assert_int_equal(vmem_free(vm, a[40], 1), 0);
	assert_int_not_equal(vm->arena.tree_pending, BT_NIL);
	assert_int_equal(BT(&vm->arena, vm->arena.tree_pending)->start, 40);
	assert_int_equal(vm->arena.tree_root, root);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_alloc(vm, 1, VM_FIRSTFIT, &x), 0);
	assert_int_equal(x, 40);
	assert_int_equal(vm->arena.tree_pending, BT_NIL);
	assert_int_equal(vm->arena.tree_root, root);
	CHECK_ARENA(vm);
	/* 50 then 20: 50 goes into the treap, 20 waits; first fit takes 20,
	 * then 50, then the tail at 64 */
	assert_int_equal(vmem_free(vm, a[50], 1), 0);
	assert_int_equal(vmem_free(vm, a[20], 1), 0);
	CHECK_ARENA(vm);
	vmem_addr_t want[] = { 20, 50, 64 };
	for (int k = 0; k < 3; k++) {
		assert_int_equal(vmem_alloc(vm, 1, VM_FIRSTFIT, &x), 0);
		assert_int_equal(x, want[k]);
		CHECK_ARENA(vm);
	}
	/* a pending segment that does not fit is passed over: 30 waits, a
	 * request for 2 units goes to the tail */
	assert_int_equal(vmem_free(vm, a[30], 1), 0);
	vmem_addr_t y;
	assert_int_equal(vmem_alloc(vm, 2, VM_FIRSTFIT, &y), 0);
	assert_int_equal(y, 65);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_free(vm, y, 2), 0);
	assert_int_equal(vmem_free(vm, 20, 1), 0);
	assert_int_equal(vmem_free(vm, 50, 1), 0);
	assert_int_equal(vmem_free(vm, 64, 1), 0);
	for (int k = 0; k < 64; k++)
		if (k != 20 && k != 30 && k != 40 && k != 50)
			assert_int_equal(vmem_free(vm, a[k], 1), 0);
	assert_int_equal(vmem_free(vm, 40, 1), 0);
	CHECK_AND_DESTROY(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_random), cmocka_unit_test(test_tree_lazy),
		cmocka_unit_test(test_tree_not_built_when_full),
		cmocka_unit_test(test_freelist_lazy), cmocka_unit_test(test_nextfit_hint_merged),
		cmocka_unit_test(test_nodes_mapped_when_needed), cmocka_unit_test(test_tree_pending),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
