/*
 * test_threads.c - threads hammering shared arenas.
 *
 * Every unit of a quantum-1 arena has an ownership byte.  A thread that
 * gets [a, a + n) sets the bytes with an atomic exchange and fails if one
 * was already set: a unit handed out twice is caught the moment it happens.
 * Before a free the thread clears them again (and fails if one was clear).
 * Allocations mix vmem_alloc with every policy (cached sizes included) and
 * vmem_xalloc with random constraints, whose results are checked too.
 *
 * Worker threads never call cmocka: the first problem is recorded and the
 * main thread fails the test after joining them.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define NTHREADS 4
#define UNITS (1u << 20)
#define LIVE 128

static struct shadow g_own;

struct live {
	vmem_addr_t addr;
	vmem_size_t size;
	int x;  /* from vmem_xalloc */
	int ar; /* which arena */
};

struct worker {
	vmem_t *arena[2];
	int narena;
	uint64_t seed;
	uint64_t iters;
	uint64_t ok[2], enomem[2], frees[2];
};

static void do_free(struct worker *w, struct live *l)
{
	shadow_unmark(&g_own, l->addr, l->size);
	int rc = l->x ? vmem_xfree(w->arena[l->ar], l->addr, l->size)
		      : vmem_free(w->arena[l->ar], l->addr, l->size);
	if (rc != 0)
		report("free of [%#" PRIx64 ", +%" PRIu64 ") (x=%d) returned %d", l->addr, l->size,
		       l->x, rc);
	w->frees[l->ar]++;
}

static void *hammer(void *arg)
{
	struct worker *w = arg;
	struct live live[LIVE];
	int n = 0;
	uint64_t s = w->seed;

	for (uint64_t it = 0; it < w->iters && !reported(); it++) {
		uint64_t r = rand_next(&s);
		if (n == LIVE || (n > 0 && r % 100 < 45)) {
			int k = (int)((r >> 8) % (uint64_t)n);
			do_free(w, &live[k]);
			live[k] = live[--n];
			continue;
		}
		int ar = w->narena == 2 ? (int)((r >> 16) & 1) : 0;
		vmem_t *vm = w->arena[ar];
		int pol = policies[(r >> 20) % 5];
		vmem_addr_t a = 0;
		vmem_size_t size;
		int rc, x = (r >> 24) % 10 < 4;
		if (!x) {
			/* mostly small (cached) sizes, some larger */
			size = (r >> 32) % 4 == 0 ? 1 + (r >> 40) % 200 : 1 + (r >> 40) % 16;
			rc = vmem_alloc(vm, size, pol | VM_NOSLEEP, &a);
			if (rc == 0)
				shadow_mark(&g_own, a, size, "vmem_alloc");
		} else {
			uint64_t r2 = rand_next(&s);
			size = 1 + r2 % 64;
			vmem_size_t align = (r2 >> 8) % 3 == 0 ? 0 : 1ull << ((r2 >> 12) % 9);
			vmem_size_t phase = align > 1 ? (r2 >> 16) % align : 0;
			vmem_size_t nocross = 0;
			if ((r2 >> 24) % 3 == 0) {
				nocross = 1;
				while (nocross < size)
					nocross <<= 1;
				nocross <<= (r2 >> 28) % 4;
			}
			vmem_addr_t lo = 0, hi = VMEM_ADDR_MAX;
			if ((r2 >> 32) % 4 == 0) {
				lo = (r2 >> 36) % UNITS;
				hi = lo + 64 + (r2 >> 44) % (UNITS / 8);
			}
			rc = vmem_xalloc(vm, size, align, phase, nocross, lo, hi, pol | VM_NOSLEEP,
					 &a);
			if (rc == 0) {
				report_unless_meets(a, size, align, phase, nocross, lo, hi);
				shadow_mark(&g_own, a, size, "vmem_xalloc");
			}
		}
		if (rc == 0) {
			w->ok[ar]++;
			live[n].addr = a;
			live[n].size = size;
			live[n].x = x;
			live[n].ar = ar;
			n++;
		} else if (rc == ENOMEM) {
			w->enomem[ar]++;
		} else {
			report("allocation returned %d", rc);
		}
	}
	while (n > 0)
		do_free(w, &live[--n]);
	return NULL;
}

/* Run the workers; meanwhile the main thread looks at the arenas. */
static void run(vmem_t *a, vmem_t *b, struct worker *w, uint64_t seed)
{
	report_reset();
	shadow_clear(&g_own);
	uint64_t iters = test_scale(150000);
	for (int i = 0; i < NTHREADS; i++)
		w[i] = (struct worker){.arena = {a, b}, .narena = b ? 2 : 1,
				       .seed = seed + (uint64_t)i * 0x1234567, .iters = iters};
	pthread_t tids[NTHREADS];
	threads_start(tids, NTHREADS, hammer, w, sizeof(*w));
	/* concurrent readers: the checker, stats and walks must be safe */
	vmem_t *watch[2] = {a, b};
	watch_until_joined(tids, NTHREADS, watch, b ? 2 : 1, 10, 2000);
	report_check();
	shadow_check_clean(&g_own);
}

static void check_clean(vmem_t *vm, vmem_size_t span)
{
	vmem_reap(vm);
	CHECK_ARENA(vm);
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.alloc_total, 0);
	assert_int_equal(st.cached_total, 0);
	assert_int_equal(st.nalloc, 0);
	assert_int_equal(st.span_total, span);
	assert_int_equal(st.free_total, span);
	assert_true(st.qcache_hits + st.qcache_misses <= st.allocs);
}

static void one_arena(vmem_size_t qmax, int flags, uint64_t seed)
{
	vmem_t *vm = arena_new("shared", 0, UNITS, 1, qmax, flags);
	struct worker w[NTHREADS];
	run(vm, NULL, w, seed);
	check_clean(vm, UNITS);
	uint64_t ok = 0, fr = 0, nm = 0;
	for (int i = 0; i < NTHREADS; i++) {
		ok += w[i].ok[0];
		fr += w[i].frees[0];
		nm += w[i].enomem[0];
	}
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.allocs, ok);
	assert_int_equal(st.frees, fr);
	assert_int_equal(st.fails, nm);
	assert_true(ok > 0);
	print_message("# %" PRIu64 " allocations, %" PRIu64 " ENOMEM\n", ok, nm);
	vmem_destroy(vm);
}

static void test_shared_qcache(void **state)
{
	(void)state;
	one_arena(16, 0, test_seed(1));
}

static void test_shared_noqcache(void **state)
{
	(void)state;
	one_arena(0, 0, test_seed(2));
}

static void test_shared_debug(void **state)
{
	(void)state;
	one_arena(8, VMC_DEBUG, test_seed(3));
}

static void test_parent_child(void **state)
{
	(void)state;
	uint64_t seed = test_seed(4);
	vmem_t *p = arena_new("parent", 0, UNITS, 1, 16, 0);
	vmem_t *c = arena_child("child", p, 1, 8, 256);
	struct worker w[NTHREADS];
	run(c, p, w, seed);

	vmem_reap(c);
	CHECK_ARENA(c);
	vmem_stats_t cs = stats_of(c);
	assert_int_equal(cs.alloc_total, 0);
	assert_int_equal(cs.import_total, 0);
	assert_int_equal(cs.span_total, 0);
	assert_int_equal(cs.imports, cs.releases);
	check_clean(p, UNITS);
	vmem_stats_t ps = stats_of(p);

	uint64_t ok[2] = { 0, 0 }, fr[2] = { 0, 0 }, nm[2] = { 0, 0 };
	for (int i = 0; i < NTHREADS; i++)
		for (int k = 0; k < 2; k++) {
			ok[k] += w[i].ok[k];
			fr[k] += w[i].frees[k];
			nm[k] += w[i].enomem[k];
		}
	assert_int_equal(cs.allocs, ok[0]);
	assert_int_equal(cs.frees, fr[0]);
	assert_int_equal(cs.fails, nm[0]);
	assert_true(cs.imports > 0);
	/* the child's imports are allocations of the parent */
	assert_int_equal(ps.allocs, ok[1] + cs.imports);
	assert_int_equal(ps.frees, fr[1] + cs.releases);
	assert_true(ps.fails >= nm[1]);
	vmem_destroy(c);
	CHECK_ARENA(p);
	vmem_destroy(p);
}

static int setup(void **state)
{
	(void)state;
	shadow_init(&g_own, UNITS);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shadow_fini(&g_own);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_qcache),
		cmocka_unit_test(test_shared_noqcache),
		cmocka_unit_test(test_shared_debug),
		cmocka_unit_test(test_parent_child),
	};
	return cmocka_run_group_tests_name("threads", tests, setup, teardown);
}
