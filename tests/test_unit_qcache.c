/*
 * Unit test of qcache.c: the slab, magazine and depot layers seen through
 * qcache_info().
 *
 *  - slabs: 64 objects imported as one segment aligned to the power of two
 *    at or above its size; address 0 is an ordinary object; a reap gives
 *    wholly free slabs back and keeps the others;
 *  - magazines: LIFO on one CPU, hits counted exactly, the loaded and the
 *    previous magazine before the depot;
 *  - depot: full magazines in, full magazines out;
 *  - a randomized run against a model of the objects held, checking after
 *    every step that objects are conserved (slab + magazines + depot +
 *    callers = 64 per slab), that no object is handed out twice, and the
 *    arena invariants.
 *
 * The thread pins itself to one CPU so that "this CPU's magazines" means
 * something; meson runs the file twice, with the rseq CPU layer and with
 * GLIBC_TUNABLES=glibc.pthread.rseq=0 (spinlocks), which must agree.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "vmem_impl.h"

static bool pinned;

static int pin_setup(void **state)
{
	(void)state;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET((int)os_cpu(), &set);
	pinned = sched_setaffinity(0, sizeof(set), &set) == 0;
	if (!pinned)
		print_message("# cannot pin to one CPU: LIFO checks skipped\n");
	print_message("# CPU layer: %s\n", os_rseq_enabled() ? "rseq" : "spinlocks");
	return 0;
}

static struct qcache_info info(vmem_t *vm, vmem_size_t size)
{
	struct qcache_info qi;
	assert_int_equal(qcache_info(&vm->qc, size, &qi), 0);
	return qi;
}

/* Objects are conserved: every object of every slab is somewhere. */
static void check_conserved(vmem_t *vm, vmem_size_t size, uint64_t held)
{
	struct qcache_info qi = info(vm, size);
	uint64_t where = qi.slab_free + qi.cpu_rounds + qi.depot_rounds + held;
	if (qi.nslabs * QCACHE_SLAB_OBJS != where)
		fail_msg("size %" PRIu64 ": %" PRIu64 " slabs of 64, but %" PRIu64 " free in slabs + %" PRIu64
			 " on CPUs + %" PRIu64 " in the depot + %" PRIu64 " held",
			 size, qi.nslabs, qi.slab_free, qi.cpu_rounds, qi.depot_rounds, held);
	assert_int_equal(qi.allocs - qi.frees, held);
	assert_int_equal(qi.cached, (qi.nslabs * QCACHE_SLAB_OBJS - held) * size);
}

TEST(test_slab_layout)
{
	vmem_t *vm = vmem_create("slabs", 0, 1 << 20, 1, 5, 0);
	assert_non_null(vm);
	assert_int_equal(qcache_info(&vm->qc, 6, &(struct qcache_info){0}), EINVAL);
	assert_int_equal(qcache_info(&vm->qc, 0, &(struct qcache_info){0}), EINVAL);
	for (vmem_size_t size = 1; size <= 5; size++) {
		vmem_addr_t a;
		assert_int_equal(vmem_alloc(vm, size, VM_NOSLEEP, &a), 0);
		struct qcache_info qi = info(vm, size);
		assert_int_equal(qi.slabsize, 64 * size);
		assert_true(qi.slabalign >= qi.slabsize && qi.slabalign < 2 * qi.slabsize);
		assert_int_equal(qi.slabalign & (qi.slabalign - 1), 0);
		assert_int_equal(qi.nslabs, 1);
		assert_int_equal(qi.misses, 1); /* from the slab, not a magazine */
		assert_int_equal(qi.hits, 0);
		/* the object lies in a slab-aligned segment of the arena */
		vmem_addr_t base = a & ~(qi.slabalign - 1);
		assert_int_equal((a - base) % size, 0);
		assert_true(a - base < qi.slabsize);
		if (size == 1)
			assert_int_equal(a, 0); /* the first slab starts at 0: an object */
		assert_int_equal(vmem_free(vm, a, size), 0);
		check_conserved(vm, size, 0);
		CHECK_ARENA(vm);
	}
	vmem_stats_t st = {.size = sizeof(st)};
	assert_int_equal(vmem_get_stats(vm, &st), 0);
	assert_int_equal(st.nalloc, 5); /* one slab per cache, as segments */
	vmem_reap(vm);
	assert_int_equal(vmem_get_stats(vm, &st), 0);
	assert_int_equal(st.nalloc, 0);
	assert_int_equal(st.cached_total, 0);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	CHECK_AND_DESTROY(vm);
}

/* A reap returns the slabs with nothing held and keeps the others. */
TEST(test_slab_reap_partial)
{
	vmem_t *vm = vmem_create("partial", 0, 1 << 20, 1, 1, 0);
	vmem_addr_t a[130];
	alloc_each(vm, a, 130, 1, 1, VM_NOSLEEP); /* three slabs */
	assert_int_equal(info(vm, 1).nslabs, 3);
	check_conserved(vm, 1, 130);
	/* keep one object of the first slab; free everything else */
	vmem_addr_t keep = a[0];
	free_each(vm, a, 130, 1, 1, 1, 1);
	check_conserved(vm, 1, 1);
	vmem_reap(vm);
	struct qcache_info qi = info(vm, 1);
	assert_int_equal(qi.nslabs, 1);
	assert_int_equal(qi.cpu_rounds + qi.depot_rounds, 0); /* magazines emptied */
	assert_int_equal(qi.slab_free, 63);
	check_conserved(vm, 1, 1);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 64);
	assert_int_equal(vmem_contains(vm, keep, 1), 1);
	assert_int_equal(vmem_free(vm, keep, 1), 0);
	vmem_reap(vm);
	assert_int_equal(info(vm, 1).nslabs, 0);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	CHECK_AND_DESTROY(vm);
}

/* Slab records and magazines are small records packed into pages: many
 * slabs cost a few pages, not a page each. */
TEST(test_record_memory)
{
	vmem_t *vm = vmem_create("records", 0, 1 << 24, 1, 1, 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	/* records only: the state map (a byte per unit) is counted apart */
	size_t before = qcache_bytes(&vm->qc) - vm->qc.state.bytes;
	for (int i = 0; i < 64 * 200; i++) /* 200 more slabs */
		assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(info(vm, 1).nslabs, 201);
	size_t grew = qcache_bytes(&vm->qc) - vm->qc.state.bytes - before;
	if (grew > 200 * 64)
		fail_msg("200 slabs took %zu bytes of records (%zu a slab)", grew, grew / 200);
	vmem_destroy(vm);
}

/* On one CPU the magazines are stacks, and every pop is a hit. */
TEST(test_magazine_lifo)
{
	if (!pinned)
		skip();
	vmem_t *vm = vmem_create("lifo", 0x1000, 1 << 20, 16, 32, 0);
	vmem_addr_t a[6], b;
	alloc_each(vm, a, 6, 32, 1, VM_NOSLEEP);
	struct qcache_info q0 = info(vm, 32);
	assert_int_equal(q0.misses, 6);
	free_each(vm, a, 6, 32, 1, 0, 1);
	assert_int_equal(info(vm, 32).cpu_rounds, 6);
	for (int i = 5; i >= 0; i--) {
		assert_int_equal(vmem_alloc(vm, 32, VM_NOSLEEP, &b), 0);
		assert_int_equal(b, a[i]);
	}
	struct qcache_info q1 = info(vm, 32);
	assert_int_equal(q1.hits, 6);
	assert_int_equal(q1.misses, 6);
	assert_int_equal(q1.cpu_rounds, 0);
	check_conserved(vm, 32, 6);
	/* the other cache was never touched */
	assert_int_equal(info(vm, 16).nslabs, 0);
	free_each(vm, a, 6, 32, 1, 0, 1);
	CHECK_AND_DESTROY(vm);
}

/* vmem_alloc and vmem_free reach the caches by one compare (qcache.c):
 * unrounded sizes find their cache, best fit reaches it the longer way,
 * first and next fit bypass it, and vmem_free's common path closes while
 * the arena holds a segment of a cached size and opens again after. */
TEST(test_entry_routing)
{
	vmem_t *vm = vmem_create("routing", 0x1000, 1 << 20, 16, 64, 0);
	vmem_addr_t a, b, c, d;
	bool fast = os_rseq_enabled() && !os_debug_env();

	assert_int_equal(vm->qc.alloc_max, fast ? 64u : 0u);
	assert_int_equal(vm->arena.free_gate, vm->qc.alloc_max);
	assert_int_equal(vmem_alloc(vm, 17, VM_SLEEP, &a), 0); /* the 32 cache */
	assert_int_equal(info(vm, 32).misses, 1);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP | VM_BESTFIT, &b), 0);
	assert_int_equal(info(vm, 16).misses, 1);
	assert_int_equal(vmem_alloc(vm, 32, VM_NOSLEEP | VM_FIRSTFIT, &c), 0);
	assert_int_equal(info(vm, 32).misses, 1); /* the arena's own */
	assert_int_equal(vm->arena.free_gate, 0u);
	assert_int_equal(vmem_alloc(vm, 48, VM_NOSLEEP | VM_NEXTFIT, &d), 0);
	assert_int_equal(info(vm, 48).misses, 0);
	/* bad flags on a cached size: EINVAL, nothing taken */
	vmem_addr_t x = 7;
	assert_int_equal(vmem_alloc(vm, 16, VM_SLEEP | VM_NOSLEEP, &x), EINVAL);
	assert_int_equal(vmem_alloc(vm, 16, VM_INSTANTFIT | VM_BESTFIT, &x), EINVAL);
	assert_int_equal(vmem_alloc(vm, 16, 0x10, &x), EINVAL);
	assert_int_equal(x, 7);
	/* a cache object freed while the gate is closed still goes home */
	assert_int_equal(vmem_free(vm, a, 17), 0);
	assert_int_equal(info(vm, 32).cpu_rounds, 1);
	assert_int_equal(vmem_free(vm, c, 32), 0);
	assert_int_equal(vm->arena.free_gate, 0u); /* d is still out */
	assert_int_equal(vmem_free(vm, d, 48), 0);
	assert_int_equal(vm->arena.free_gate, vm->qc.alloc_max);
	assert_int_equal(vmem_free(vm, b, 16), 0);
	assert_int_equal(info(vm, 16).cpu_rounds, 1);
	CHECK_AND_DESTROY(vm);
}

/* Loaded, then previous, then the depot: frees beyond two magazines'
 * worth send full magazines to the depot, and allocations take them back
 * before touching a slab. */
TEST(test_depot_round_trip)
{
	if (!pinned)
		skip();
	vmem_t *vm = vmem_create("depot", 0, 1 << 20, 1, 1, 0);
	uint32_t mag = info(vm, 1).magsize;
	uint32_t n = 5 * mag + 3;
	vmem_addr_t *a = calloc(n, sizeof(*a));
	assert_non_null(a);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a[i]), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(vmem_free(vm, a[i], 1), 0);
	struct qcache_info qi = info(vm, 1);
	assert_int_equal(qi.magsize, mag); /* one thread: no contention, no growth */
	assert_true(qi.nfull >= 3);
	assert_int_equal(qi.depot_rounds, qi.nfull * mag);
	assert_int_equal(qi.cpu_rounds + qi.depot_rounds, n);
	check_conserved(vm, 1, 0);
	uint64_t misses = qi.misses;
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a[i]), 0);
	qi = info(vm, 1);
	assert_int_equal(qi.misses, misses); /* all from magazines */
	assert_int_equal(qi.nfull, 0);
	assert_true(qi.nempty >= 3);
	check_conserved(vm, 1, n);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(vmem_free(vm, a[i], 1), 0);
	free(a);
	CHECK_AND_DESTROY(vm);
}

/* Paper 3.4: when depot exchanges have to wait for the depot lock, the
 * magazines grow.  A second thread holds the lock in short bursts while
 * this one keeps exchanging magazines. */
struct holder {
	vmem_t *vm;
	atomic_bool stop;
};

static void *hold_depot(void *p)
{
	struct holder *h = p;
	while (!atomic_load(&h->stop)) {
		qcache_depot_hold(&h->vm->qc, 1, true);
		struct timespec ts = {0, 200 * 1000};
		nanosleep(&ts, NULL);
		qcache_depot_hold(&h->vm->qc, 1, false);
		sched_yield();
	}
	return NULL;
}

TEST(test_magazines_grow)
{
	if (!pinned)
		skip();
	vmem_t *vm = vmem_create("grow", 0, 1 << 20, 1, 1, 0);
	uint32_t mag0 = info(vm, 1).magsize;
	enum { N = 200 };
	vmem_addr_t a[N];
	alloc_each(vm, a, N, 1, 1, VM_NOSLEEP); /* slabs exist before the lock games */
	free_each(vm, a, N, 1, 1, 0, 1);
	struct holder h = {vm, false};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, hold_depot, &h), 0);
	uint32_t mag = mag0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (mag == mag0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 20)
			break;
		/* more than two magazines each way: depot exchanges */
		int n = (int)(3 * mag0 + 1);
		alloc_each(vm, a, n, 1, 1, VM_NOSLEEP);
		free_each(vm, a, n, 1, 1, 0, 1);
		mag = info(vm, 1).magsize;
	}
	atomic_store(&h.stop, true);
	pthread_join(t, NULL);
	if (mag <= mag0)
		fail_msg("magazines stayed at %u rounds under a contended depot", mag);
	check_conserved(vm, 1, 0);
	CHECK_AND_DESTROY(vm);
}

/* Random allocations and frees of every cached size against a model. */
TEST(test_random_model)
{
	enum { SIZES = 8, MAXHELD = 3000 };
	uint64_t rng = test_seed(0x9cac4e);
	vmem_t *vm = vmem_create("model", 0, 1 << 24, 4, SIZES * 4, 0);
	static vmem_addr_t held[MAXHELD];
	static vmem_size_t hsize[MAXHELD];
	uint64_t nheld = 0, count[SIZES + 1] = {0};
	uint64_t steps = test_scale(20000);
	for (uint64_t step = 0; step < steps; step++) {
		uint64_t r = rand_next(&rng);
		bool grow = nheld == 0 || (nheld < MAXHELD && r % 100 < (step / 2000 % 2 ? 70 : 35));
		if (r % 997 == 0) {
			vmem_reap(vm);
		} else if (grow) {
			vmem_size_t size = 4 * (1 + (r >> 8) % SIZES);
			vmem_addr_t a;
			assert_int_equal(vmem_alloc(vm, size, VM_NOSLEEP, &a), 0);
			assert_int_equal(a % 4, 0);
			for (uint64_t i = 0; i < nheld; i++)
				if (a < held[i] + hsize[i] && held[i] < a + size)
					fail_msg("step %" PRIu64 ": [%#" PRIx64 ", +%" PRIu64
						 ") overlaps the held [%#" PRIx64 ", +%" PRIu64 ")",
						 step, a, size, held[i], hsize[i]);
			held[nheld] = a;
			hsize[nheld++] = size;
			count[size / 4]++;
		} else {
			uint64_t i = (r >> 8) % nheld;
			assert_int_equal(vmem_free(vm, held[i], hsize[i]), 0);
			count[hsize[i] / 4]--;
			held[i] = held[--nheld];
			hsize[i] = hsize[nheld];
		}
		if (step % 64 == 0 || step + 1 == steps) {
			for (unsigned int k = 1; k <= SIZES; k++)
				check_conserved(vm, 4 * k, count[k]);
			CHECK_ARENA(vm);
		}
	}
	while (nheld > 0) {
		nheld--;
		assert_int_equal(vmem_free(vm, held[nheld], hsize[nheld]), 0);
	}
	vmem_reap(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	CHECK_AND_DESTROY(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slab_layout),
		cmocka_unit_test(test_slab_reap_partial),
		cmocka_unit_test(test_record_memory),
		cmocka_unit_test(test_magazine_lifo),
		cmocka_unit_test(test_entry_routing),
		cmocka_unit_test(test_depot_round_trip),
		cmocka_unit_test(test_magazines_grow),
		cmocka_unit_test(test_random_model),
	};
	return cmocka_run_group_tests_name("unit_qcache", tests, pin_setup, NULL);
}
