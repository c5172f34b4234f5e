/*
 * test_sleep.c - VM_SLEEP waiters and the events that must wake them.
 *
 * A sleeper thread makes a VM_SLEEP request that cannot be met; the main
 * thread waits until the arena reports it as waiting, then makes the event
 * (a free, a vmem_add, a release into a source) and joins the sleeper with
 * a deadline.  A lost wake-up turns into a failed timed join, never into a
 * hung test; alarm() is the last line of defence.
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
#include <unistd.h>

#include "helpers.h"

#define JOIN_SECONDS 20
#define WAIT_SECONDS 10

static uint64_t waits(vmem_t *vm)
{
	return stats_of(vm).waits;
}

/* Wait until n threads sleep in vm (or in vm2): the arena's waiter count,
 * or its waits counter, says so.  Returns 0 if that never happened. */
static int wait_sleeping(vmem_t *vm, vmem_t *vm2, unsigned int n, uint64_t waits0)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		unsigned int k = vmem_seam_nwaiters(vm) + (vm2 ? vmem_seam_nwaiters(vm2) : 0);
		if (k >= n)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > WAIT_SECONDS) {
			/* no waiter count: fall back on the counter */
			uint64_t w = waits(vm) + (vm2 ? waits(vm2) : 0);
			return w - waits0 >= n;
		}
		usleep(1000);
	}
}

/* One thread, one VM_SLEEP request. */
struct waiter {
	pthread_t tid;
	vmem_t *vm;
	vmem_size_t size;
	int x; /* vmem_xalloc with these constraints */
	vmem_size_t align, phase;
	vmem_addr_t minaddr;
	int policy;
	vmem_addr_t addr;
	int rc;
	atomic_int done;
};

static void *waiter_main(void *arg)
{
	struct waiter *s = arg;
	if (s->x)
		s->rc = vmem_xalloc(s->vm, s->size, s->align, s->phase, 0, s->minaddr,
				    VMEM_ADDR_MAX, VM_SLEEP | s->policy, &s->addr);
	else
		s->rc = vmem_alloc(s->vm, s->size, VM_SLEEP | s->policy, &s->addr);
	atomic_store(&s->done, 1);
	return NULL;
}

static void start(struct waiter *s)
{
	atomic_store(&s->done, 0);
	s->rc = -1;
	assert_int_equal(pthread_create(&s->tid, NULL, waiter_main, s), 0);
}

/* Start s, and wait until it sleeps in vm (or in vm2). */
static void start_asleep(struct waiter *s, vmem_t *vm, vmem_t *vm2)
{
	uint64_t w0 = waits(vm) + (vm2 ? waits(vm2) : 0);
	start(s);
	assert_true(wait_sleeping(vm, vm2, 1, w0));
}

static void join(struct waiter *s, const char *what)
{
	int rc = join_within(s->tid, JOIN_SECONDS);
	if (rc == ETIMEDOUT)
		fail_msg("%s: the sleeper was never woken (lost wake-up)", what);
	assert_int_equal(rc, 0);
	if (s->rc != 0)
		fail_msg("%s: the VM_SLEEP request returned %d", what, s->rc);
}

/* ---- one sleeper, one event --------------------------------------------- */

TEST(test_wake_by_free)
{
	vmem_t *vm = arena_new("sleep-free", 0, 16, 1, 0, 0);
	vmem_addr_t u[16];
	for (int i = 0; i < 16; i++) {
		assert_int_equal(vmem_alloc(vm, 1, VM_FIRSTFIT, &u[i]), 0);
		assert_int_equal(u[i], i);
	}
	/* wants 2 units: a single free unit is not enough */
	struct waiter s = { .vm = vm, .size = 2 };
	start_asleep(&s, vm, NULL);
	assert_int_equal(vmem_free(vm, u[5], 1), 0);
	usleep(50000);
	if (atomic_load(&s.done))
		fail_msg("a 2-unit VM_SLEEP request returned %d with one unit free", s.rc);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_free(vm, u[6], 1), 0);
	join(&s, "free");
	assert_int_equal(s.addr, 5);
	CHECK_ARENA(vm);
	vmem_stats_t st = stats_of(vm);
	assert_true(st.waits >= 1);
	assert_int_equal(st.fails, 0);
	assert_int_equal(vmem_free(vm, s.addr, 2), 0);

	/* a constrained sleeper: only 8..11 will do */
	s = (struct waiter){ .vm = vm, .size = 4, .x = 1, .align = 8, .minaddr = 8 };
	uint64_t w0 = waits(vm);
	start_asleep(&s, vm, NULL);
	assert_int_equal(vmem_free(vm, u[0], 1), 0); /* 0, 5, 6 free: no use */
	free_each(vm, u, 11, 1, 1, 8, 1);
	usleep(50000);
	if (atomic_load(&s.done))
		fail_msg("constrained VM_SLEEP request returned %d too early (addr %" PRIu64 ")",
			 s.rc, s.addr);
	assert_int_equal(vmem_free(vm, u[11], 1), 0);
	join(&s, "constrained free");
	assert_int_equal(s.addr, 8);
	CHECK_ARENA(vm);
	assert_true(waits(vm) > w0);
	vmem_destroy(vm);
}

struct rcount {
	atomic_int calls;
};

static void count_reclaim(vmem_t *vm, void *arg, int flags)
{
	(void)vm;
	(void)flags;
	struct rcount *r = arg;
	atomic_fetch_add(&r->calls, 1);
}

TEST(test_wake_by_add)
{
	vmem_t *vm = arena_new("sleep-add", 0, 0, 16, 0, 0);
	struct rcount rc = { 0 };
	assert_int_equal(vmem_set_reclaim(vm, count_reclaim, &rc), 0);
	struct waiter s = { .vm = vm, .size = 128, .policy = VM_BESTFIT };
	start_asleep(&s, vm, NULL);
	/* the reclaim callback runs before an allocation sleeps */
	assert_true(atomic_load(&rc.calls) >= 1);
	assert_int_equal(vmem_add(vm, 0x1000, 64, VM_NOSLEEP), 0); /* too small */
	usleep(50000);
	assert_false(atomic_load(&s.done));
	assert_int_equal(vmem_add(vm, 0x2000, 256, VM_NOSLEEP), 0);
	join(&s, "add");
	assert_true(s.addr >= 0x2000 && s.addr + 128 <= 0x2100);
	CHECK_ARENA(vm);
	assert_true(waits(vm) >= 1);
	assert_int_equal(vmem_free(vm, s.addr, 128), 0);
	vmem_destroy(vm);
}

/* A free into a quantum cache must wake a sleeper too. */
TEST(test_wake_by_cached_free)
{
	vmem_t *vm = arena_new("sleep-qc", 0, 8, 1, 4, 0);
	vmem_addr_t u[8];
	alloc_each(vm, u, 8, 1, 1, VM_NOSLEEP);
	vmem_addr_t extra;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &extra), ENOMEM);
	struct waiter s = { .vm = vm, .size = 1 };
	start_asleep(&s, vm, NULL);
	assert_int_equal(vmem_free(vm, u[3], 1), 0);
	join(&s, "cached free");
	assert_int_equal(s.addr, u[3]);
	for (int i = 0; i < 8; i++)
		if (i != 3)
			assert_int_equal(vmem_free(vm, u[i], 1), 0);
	assert_int_equal(vmem_free(vm, s.addr, 1), 0);
	expect_empty(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

/* A span released by a child into its source wakes a sleeper there. */
TEST(test_wake_by_release)
{
	vmem_t *p = arena_new("sleep-parent", 0, 16, 1, 0, 0);
	vmem_t *c = arena_child("sleep-child", p, 1, 0, 16);
	struct waiter s = { .vm = p, .size = 8 };
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(c, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_size(p, VMEM_FREE), 0);
	start_asleep(&s, p, NULL);
	assert_int_equal(vmem_free(c, a, 1), 0); /* span released to p */
	join(&s, "release");
	CHECK_ARENA(p);
	CHECK_AND_DESTROY(c);
	assert_int_equal(vmem_free(p, s.addr, 8), 0);
	CHECK_AND_DESTROY(p);
}

/* A child whose import has to wait for its source: a free in the source
 * must reach it. */
TEST(test_sleep_in_source)
{
	vmem_t *p = arena_new("src-parent", 0, 16, 1, 0, 0);
	vmem_t *c = arena_child("src-child", p, 1, 0, 0);
	vmem_addr_t all;
	assert_int_equal(vmem_alloc(p, 16, VM_NOSLEEP, &all), 0);
	struct waiter s = { .vm = c, .size = 4 };
	start_asleep(&s, p, c);
	assert_int_equal(vmem_free(p, all, 16), 0);
	join(&s, "sleep in source");
	assert_true(s.addr < 16);
	CHECK_ARENA(p);
	CHECK_ARENA(c);
	assert_int_equal(vmem_free(c, s.addr, 4), 0);
	CHECK_ARENA(c);
	assert_int_equal(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(p);
}

/* ---- many sleepers ------------------------------------------------------ */

#define NSLEEP 8

static void many_sleepers(vmem_size_t qmax)
{
	vmem_t *vm = arena_new("many", 100, NSLEEP, 1, qmax, 0);
	vmem_addr_t u[NSLEEP];
	alloc_each(vm, u, NSLEEP, 1, 1, VM_NOSLEEP);
	struct waiter s[NSLEEP];
	uint64_t w0 = waits(vm);
	for (int i = 0; i < NSLEEP; i++) {
		s[i] = (struct waiter){ .vm = vm, .size = 1 };
		start(&s[i]);
	}
	assert_true(wait_sleeping(vm, NULL, NSLEEP, w0));
	/* frees trickle in, one at a time */
	for (int i = 0; i < NSLEEP; i++) {
		assert_int_equal(vmem_free(vm, u[i], 1), 0);
		usleep(2000);
	}
	int seen[NSLEEP] = { 0 };
	for (int i = 0; i < NSLEEP; i++) {
		join(&s[i], "many sleepers");
		assert_true(s[i].addr >= 100 && s[i].addr < 100 + NSLEEP);
		if (seen[s[i].addr - 100]++)
			fail_msg("unit %" PRIu64 " given to two sleepers", s[i].addr);
	}
	assert_true(waits(vm) - w0 >= NSLEEP);
	for (int i = 0; i < NSLEEP; i++)
		assert_int_equal(vmem_free(vm, s[i].addr, 1), 0);
	vmem_reap(vm);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

TEST(test_many_sleepers)
{
	many_sleepers(0);
}

TEST(test_many_sleepers_qcache)
{
	many_sleepers(4);
}

/* Eight threads loop over a tiny arena with VM_SLEEP: each holds at most
 * one allocation, so everybody always finishes unless a wake-up is lost. */
#define CHURN_UNITS 16

static void churn(vmem_size_t qmax, uint64_t seed)
{
	vmem_t *vm = arena_new("churn", 0, CHURN_UNITS, 1, qmax, 0);
	struct shadow own;
	shadow_init(&own, CHURN_UNITS);
	report_reset();
	/* of up to 3 units, a quarter vmem_xalloc, a quarter napping */
	struct sleeper c[NSLEEP];
	pthread_t tids[NSLEEP];
	for (int i = 0; i < NSLEEP; i++)
		c[i] = (struct sleeper){.vm = vm, .units = CHURN_UNITS, .own = &own, .max_size = 3,
					.xalloc_pct = 25, .nap_pct = 25, .nap_us = 100,
					.seed = seed + (uint64_t)i, .rounds = test_scale(2000)};
	threads_start(tids, NSLEEP, sleeper_main, c, sizeof(*c));
	for (int i = 0; i < NSLEEP; i++) {
		int rc = join_within(tids[i], 60);
		if (rc == ETIMEDOUT)
			fail_msg("churn thread %d never finished: lost wake-up", i);
		assert_int_equal(rc, 0);
	}
	report_check();
	shadow_check_clean(&own);
	shadow_fini(&own);
	vmem_stats_t st = expect_empty(vm);
	assert_int_equal(st.fails, 0);
	assert_int_equal(st.allocs, st.frees);
	assert_int_equal(st.allocs, NSLEEP * test_scale(2000));
	print_message("# %" PRIu64 " waits\n", st.waits);
	vmem_destroy(vm);
}

TEST(test_churn)
{
	churn(0, test_seed(11));
}

TEST(test_churn_qcache)
{
	churn(2, test_seed(12));
}

int main(void)
{
	/* last line of defence against a hang: the default action kills us */
	alarm((unsigned int)test_scale(110));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wake_by_free),
		cmocka_unit_test(test_wake_by_add),
		cmocka_unit_test(test_wake_by_cached_free),
		cmocka_unit_test(test_wake_by_release),
		cmocka_unit_test(test_sleep_in_source),
		cmocka_unit_test(test_many_sleepers),
		cmocka_unit_test(test_many_sleepers_qcache),
		cmocka_unit_test(test_churn),
		cmocka_unit_test(test_churn_qcache),
	};
	return cmocka_run_group_tests_name("sleep", tests, NULL, NULL);
}
