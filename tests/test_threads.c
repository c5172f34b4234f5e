/*
 * test_threads.c - threads hammering shared arenas.
 *
 * Every unit of a quantum-1 arena has an ownership byte (the shadow of
 * helpers.h).  A thread that gets [a, a + n) sets the bytes with an atomic
 * exchange and fails if one was already set: a unit handed out twice is
 * caught the moment it happens.  Before a free the thread clears them again
 * (and fails if one was clear).  Allocations mix vmem_alloc with every
 * policy (cached sizes included) and vmem_xalloc with random constraints,
 * whose results are checked too (load_main, helpers.c).
 *
 * Worker threads never call cmocka: the first problem is recorded and the
 * main thread fails the test after joining them.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <inttypes.h>
#include <stdatomic.h>

#include "helpers.h"

#define NTHREADS 4
#define UNITS (1u << 20)

static atomic_uchar g_units[UNITS];
static struct shadow g_own = {g_units, UNITS};

/* The workers' mix: half the operations frees, 40% of the allocations
 * constrained, a quarter of the others up to 200 units. */
static const struct load mix = {
	.live = 128, .free_pct = 45, .xalloc_pct = 40, .big_pct = 25, .small = 16, .big = 200,
	.xsize = 64, .align_log = 9, .window = 64, .span = UNITS / 8, .own = &g_own,
};

/* Run the workers on a (and b); meanwhile the main thread looks at the
 * arenas. */
static void run(vmem_t *a, vmem_t *b, struct load *w, uint64_t seed)
{
	report_reset();
	shadow_clear(&g_own);
	vmem_t *arenas[2] = {a, b};
	loads_init(w, NTHREADS, &mix, arenas, b ? 2 : 1, seed, 0x1234567, test_scale(150000));
	pthread_t tids[NTHREADS];
	threads_start(tids, NTHREADS, load_main, w, sizeof(*w));
	/* concurrent readers: the checker, stats and walks must be safe */
	watch_until_joined(tids, NTHREADS, arenas, b ? 2 : 1, 10, 2000);
	report_check();
	shadow_check_clean(&g_own);
}

/* Every unit of the span free again, after a reap. */
static vmem_stats_t check_clean(vmem_t *vm, vmem_size_t span)
{
	vmem_stats_t st = expect_empty(vm);
	assert_int_equal(st.span_total, span);
	assert_int_equal(st.free_total, span);
	assert_true(st.qcache_hits + st.qcache_misses <= st.allocs);
	return st;
}

static void one_arena(vmem_size_t qmax, int flags, uint64_t seed)
{
	vmem_t *vm = arena_new("shared", 0, UNITS, 1, qmax, flags);
	struct load w[NTHREADS];
	run(vm, NULL, w, seed);
	check_clean(vm, UNITS);
	struct load_total t = expect_counted(vm, w, NTHREADS, 0);
	assert_true(t.ok > 0);
	print_message("# %" PRIu64 " allocations, %" PRIu64 " ENOMEM\n", t.ok, t.nomem);
	vmem_destroy(vm);
}

TEST(test_shared_qcache)
{
	one_arena(16, 0, test_seed(1));
}

TEST(test_shared_noqcache)
{
	one_arena(0, 0, test_seed(2));
}

TEST(test_shared_debug)
{
	one_arena(8, VMC_DEBUG, test_seed(3));
}

TEST(test_parent_child)
{
	uint64_t seed = test_seed(4);
	vmem_t *p = arena_new("parent", 0, UNITS, 1, 16, 0);
	vmem_t *c = arena_child("child", p, 1, 8, 256);
	struct load w[NTHREADS];
	run(c, p, w, seed);

	vmem_stats_t cs = expect_child_empty(c);
	vmem_stats_t ps = check_clean(p, UNITS);

	expect_counted(c, w, NTHREADS, 0);
	struct load_total tp = load_total(w, NTHREADS, 1);
	assert_true(cs.imports > 0);
	/* the child's imports are allocations of the parent */
	assert_int_equal(ps.allocs, tp.ok + cs.imports);
	assert_int_equal(ps.frees, tp.frees + cs.releases);
	assert_true(ps.fails >= tp.nomem);
	vmem_destroy(c);
	CHECK_AND_DESTROY(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_qcache),
		cmocka_unit_test(test_shared_noqcache),
		cmocka_unit_test(test_shared_debug),
		cmocka_unit_test(test_parent_child),
	};
	return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
