/*
 * test_unit_check.c - the invariant checker finds what it claims to find.
 * Each case breaks one of the caches' invariants Q1..Q7, or the arena's
 * free map (I13), fresh tags (I7), the treap's pending segment (I5) or the
 * tags' cold parts (I7, I2), by hand in a quiet
 * arena, expects vmem_check to name exactly that invariant, puts the
 * damage back and expects a clean check again.  A checker that missed a
 * kind of damage would let the tests that call it after every step pass
 * over that bug.
 */
#include "helpers.h"
#include "vmem_impl.h"

#include <string.h>

#define Q(n) (100 + (n))

/* vmem_check names invariant want, then (after undo) nothing. */
static void expect_broken(vmem_t *vm, int want)
{
	char why[512], got_name[16], want_name[16];
	int got = vmem_check(vm, why, sizeof(why));
	if (got != want)
		fail_msg("vmem_check gave %s (%s), want %s", invariant_name(got, got_name, 16), why,
			 invariant_name(want, want_name, 16));
}

/* The damage is put back: a clean check again; the arena goes. */
static void healed(vmem_t *vm)
{
	expect_broken(vm, 0);
	vmem_destroy(vm);
}

#define NHELD 10

/* A cached arena with NHELD objects in use (their addresses into held,
 * when given), others in magazines, in the depot and free in slabs: every
 * structure the Q invariants speak of is populated. */
static vmem_t *populated(int flags, vmem_addr_t *held)
{
	vmem_t *vm = arena_new("check", 0x10000, 1 << 20, 1, 2, flags);
	vmem_addr_t a[200];
	alloc_each(vm, a, 200, 1, 1, VM_NOSLEEP);
	free_each(vm, a, 200, 1, 1, NHELD, 1);
	if (held != NULL)
		memcpy(held, a, NHELD * sizeof(*held));
	CHECK_ARENA(vm);
	return vm;
}

static struct qcache *cache1(vmem_t *vm)
{
	return qcache_of(&vm->qc, 1);
}

/* The CPU slot with at least two rounds in its loaded magazine. */
static struct qc_cpu *busy_slot(vmem_t *vm)
{
	struct qcache *c = cache1(vm);
	for (unsigned int i = 0; i < vm->qc.ncpu; i++) {
		struct qc_cpu *cc = &c->cpu[i];
		if (cc->bias + cc->pushes - cc->pops >= 2)
			return cc;
	}
	fail_msg("no CPU slot holds two rounds");
	return NULL;
}

/* The state byte of the object at addr. */
static uint8_t *state_of(vmem_t *vm, vmem_addr_t addr)
{
	uint8_t *b = qstate_byte(&vm->qc.state, addr >> vm->qc.qshift);
	assert_non_null(b);
	return b;
}

TEST(test_q1_conservation)
{
	vmem_t *vm = populated(0, NULL);
	cache1(vm)->allocs++; /* one more object with callers than there is */
	expect_broken(vm, Q(1));
	cache1(vm)->allocs--;
	healed(vm);
}

TEST(test_q2_gate)
{
	vmem_t *vm = populated(0, NULL);
	vm->arena.arena_small++; /* the arena claims a segment it does not have */
	expect_broken(vm, Q(2));
	vm->arena.arena_small--;
	vmem_size_t gate = vm->arena.free_gate;
	vm->arena.free_gate = gate == 0 ? 1 : 0; /* open when it must be shut, or the reverse */
	expect_broken(vm, Q(2));
	vm->arena.free_gate = gate;
	healed(vm);
}

TEST(test_q3_slabs)
{
	vmem_t *vm = populated(0, NULL);
	cache1(vm)->nslabs++;
	expect_broken(vm, Q(3));
	cache1(vm)->nslabs--;
	struct qc_slab *s = cache1(vm)->partial;
	assert_non_null(s);
	s->base += 64; /* the record no longer names its segment */
	expect_broken(vm, Q(3));
	s->base -= 64;
	healed(vm);
}

TEST(test_q4_slab_records)
{
	vmem_t *vm = populated(0, NULL);
	struct qc_slab *s = cache1(vm)->partial;
	assert_non_null(s);
	s->nfree++;
	expect_broken(vm, Q(4));
	s->nfree--;
	healed(vm);
}

TEST(test_q5_magazines)
{
	vmem_t *vm = populated(0, NULL);
	struct qcache *c = cache1(vm);
	c->nempty++;
	expect_broken(vm, Q(5));
	c->nempty--;
	struct qc_cpu *cc = busy_slot(vm);
	uint32_t cap = cc->cap;
	cc->cap = 1; /* fewer than the loaded magazine holds */
	expect_broken(vm, Q(5));
	cc->cap = cap;
	healed(vm);
}

TEST(test_q6_twins)
{
	vmem_t *vm = populated(0, NULL);
	struct qc_cpu *cc = busy_slot(vm);
	vmem_addr_t keep = cc->loaded->obj[1];
	cc->loaded->obj[1] = cc->loaded->obj[0]; /* one object, two rounds */
	expect_broken(vm, Q(6));
	struct qc_slab *s = cache1(vm)->partial;
	assert_non_null(s);
	cc->loaded->obj[1] = s->base + (vmem_addr_t)__builtin_ctzll(s->freemap); /* free in its slab */
	expect_broken(vm, Q(6));
	cc->loaded->obj[1] = 3; /* no object of any slab */
	expect_broken(vm, Q(6));
	cc->loaded->obj[1] = keep;
	uint8_t *b = state_of(vm, keep);
	*b = 1; /* a round marked as with a caller */
	expect_broken(vm, Q(6));
	*b = 0x80 | 1;
	cc->loaded->obj[1] = keep;
	healed(vm);
}

TEST(test_q7_states)
{
	vmem_addr_t held[NHELD];
	vmem_t *vm = populated(0, held);
	struct qc_slab *s = cache1(vm)->partial;
	assert_non_null(s);
	uint8_t *b = state_of(vm, s->base + (vmem_addr_t)__builtin_ctzll(s->freemap));
	uint8_t keep = *b;
	*b = 1; /* free in its slab, yet with a caller */
	expect_broken(vm, Q(7));
	*b = 2; /* a mark of a cache this arena does not have... */
	expect_broken(vm, Q(7));
	*b = keep;
	/* a caller's object not marked yet (a pop whose mark is still to
	 * come) is no fault */
	uint8_t *h = state_of(vm, held[0]);
	*h = 0;
	expect_broken(vm, 0);
	*h = 1;
	vmem_destroy(vm);
}

/* The first tag in the address list whose free-ness is want. */
static bt_idx tag_where_free(vmem_t *vm, bool want)
{
	const struct arena *ar = &vm->arena;
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next)
		if (!bt_is_span(BT(ar, i)) && (BT(ar, i)->type == BT_FREE) == want)
			return i;
	fail_msg("no %s segment", want ? "free" : "busy");
	return BT_NIL;
}

/* Flip bit i of the free map. */
static void flip(vmem_t *vm, uint64_t i)
{
	vm->arena.bt_freemap[i / 64] ^= 1ull << (i % 64);
}

TEST(test_i13_free_map)
{
	vmem_t *vm = populated(0, NULL);
	struct arena *ar = &vm->arena;
	bt_idx busy = tag_where_free(vm, false), freed = tag_where_free(vm, true);
	flip(vm, busy); /* a busy segment marked free: a free would merge into it */
	expect_broken(vm, 13);
	flip(vm, busy);
	flip(vm, freed); /* a free segment marked busy: it would never merge */
	expect_broken(vm, 13);
	flip(vm, freed);
	flip(vm, BT_HEAD); /* a sentinel marked free */
	expect_broken(vm, 13);
	flip(vm, BT_HEAD);
	uint64_t past = (uint64_t)ar->bt_freemap_bytes * 8 - 1;
	assert_true(past >= ar->bt_cap);
	flip(vm, past); /* a bit past the tags mapped: a new tag would start free */
	expect_broken(vm, 13);
	flip(vm, past);
	size_t bytes = ar->bt_freemap_bytes;
	ar->bt_freemap_bytes = (ar->bt_cap - 1) / 64 * 8; /* a map short of the tags */
	expect_broken(vm, 13);
	ar->bt_freemap_bytes = bytes;
	healed(vm);
}

TEST(test_i7_fresh_tags)
{
	vmem_t *vm = vmem_create("fresh", 0x1000, 1 << 20, 1, 0, 0);
	struct arena *ar = &vm->arena;
	assert_true(ar->bt_fresh + 1 < ar->bt_cap); /* a new arena has fresh tags */
	/* the tag before the run, in use, taken into it (and counted, so that
	 * only its contents can tell): a written tag counted as fresh */
	ar->bt_fresh--;
	ar->bt_nunused++;
	expect_broken(vm, 7);
	ar->bt_fresh++;
	ar->bt_nunused--;
	ar->bt_fresh++; /* a fresh tag lost: neither fresh, chained nor used */
	expect_broken(vm, 7);
	ar->bt_fresh--;
	healed(vm);
}

/* The treap's pending segment (I5), the tags' cold parts (I7) and the
 * span treap kept in them (I2). */
TEST(test_i5_pending_and_cold_parts)
{
	vmem_t *vm = vmem_create("pending", 0x1000, 1 << 20, 1, 0, 0);
	struct arena *ar = &vm->arena;
	vmem_addr_t a[64];
	alloc_each(vm, a, 64, 1, 1, VM_FIRSTFIT);
	assert_int_equal(vmem_free(vm, a[10], 1), 0);
	assert_int_equal(vmem_free(vm, a[20], 1), 0);
	bt_idx p = ar->tree_pending, busy = tag_where_free(vm, false);
	assert_int_not_equal(p, BT_NIL);
	CHECK_ARENA(vm);
	ar->tree_pending = busy; /* a busy segment pending */
	expect_broken(vm, 5);
	ar->tree_pending = BT_NIL; /* a free segment in neither */
	expect_broken(vm, 5);
	ar->tree_pending = ar->tree_root; /* one segment in both */
	expect_broken(vm, 5);
	ar->tree_pending = p;
	BN(ar, p)->max = 1; /* the pending segment's cold part written */
	expect_broken(vm, 5);
	BN(ar, p)->max = 0;
	BN(ar, busy)->parent = busy; /* a busy tag's cold part written */
	expect_broken(vm, 7);
	BN(ar, busy)->parent = BT_NIL;
	size_t bytes = ar->bt_node_bytes;
	ar->bt_node_bytes = (ar->bt_cap - 1) * sizeof(struct bt_node); /* short of the tags */
	expect_broken(vm, 7);
	ar->bt_node_bytes = bytes;
	assert_int_equal(vmem_add(vm, 0x200000, 0x1000, 0), 0);
	bt_idx sr = ar->span_root;
	ar->span_root = BT_NIL; /* two spans, an empty span treap */
	expect_broken(vm, 2);
	ar->span_root = sr;
	healed(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_q1_conservation), cmocka_unit_test(test_q2_gate),
		cmocka_unit_test(test_q3_slabs),        cmocka_unit_test(test_q4_slab_records),
		cmocka_unit_test(test_q5_magazines),    cmocka_unit_test(test_q6_twins),
		cmocka_unit_test(test_q7_states),       cmocka_unit_test(test_i13_free_map),
		cmocka_unit_test(test_i7_fresh_tags),   cmocka_unit_test(test_i5_pending_and_cold_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
