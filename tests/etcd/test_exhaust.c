/*
 * test_exhaust - a full pool, against one real etcd member:
 *   nosleep_enomem  with every block held by one connection, VM_NOSLEEP
 *                   allocations from another fail with ENOMEM at once, and
 *                   nothing is written to etcd
 *   sleep_waits     a VM_SLEEP allocation in another process waits (it has
 *                   not returned a second later) and succeeds with an ID of
 *                   the block the first process released, soon after it did
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd_impl.h"
#include "harness.h"

#define BLOCK 8
#define NBLOCKS 4
#define BASE 100


struct waiter {
	atomic_int go, started, done;
	atomic_uint_least64_t id, waited_ms, done_at;
	int err;
};
static struct waiter *w;

/* Create pool and open it n times (1 or 2), each with an arena. */
static void create_open(const char *pool, int n, vmem_etcd_t **src, vmem_t **vm)
{
	vmem_etcd_opts_t o = h_opts(&h_main);
	assert_int_equal(vmem_etcd_pool_create(&o, pool, BASE, BLOCK * NBLOCKS, BLOCK), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(h_open_arena(&o, pool, &src[i], &vm[i]), 0);
}

/* Take every ID of the pool; returns them in order of allocation. */
static void take_all(vmem_t *vm, vmem_addr_t *ids)
{
	for (int i = 0; i < BLOCK * NBLOCKS; i++)
		assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &ids[i]), 0);
	vmem_addr_t x;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &x), ENOMEM);
}

static void nosleep_enomem(void **state)
{
	(void)state;
	vmem_etcd_t *src[2];
	vmem_t *vm[2];
	create_open("full", 2, src, vm);
	vmem_etcd_t *a = src[0], *b = src[1];
	vmem_t *va = vm[0], *vb = vm[1];
	vmem_addr_t ids[BLOCK * NBLOCKS];
	take_all(va, ids);
	uint64_t t0 = h_now_ms();
	vmem_addr_t x;
	assert_int_equal(vmem_alloc(vb, 1, VM_NOSLEEP, &x), ENOMEM);
	assert_int_equal(vmem_alloc(vb, BLOCK * 2, VM_NOSLEEP, &x), ENOMEM);
	assert_true(h_now_ms() - t0 < 1000);
	vmem_etcd_stats_t st = H_STATS(b);
	assert_int_equal(st.blocks_held, 0);
	assert_int_equal(st.claims, 0);
	assert_int_equal(st.errors, 0); /* a full pool is not a failed request */
	assert_int_equal(h_count(&h_main, "/vmem/full/blocks/"), NBLOCKS);
	for (int i = 0; i < BLOCK * NBLOCKS; i++)
		vmem_free(va, ids[i], 1);
	/* the blocks came back: b can have them */
	assert_true(H_WAIT_FOR(h_count(&h_main, "/vmem/full/blocks/") == 0, 5000));
	assert_int_equal(vmem_alloc(vb, 1, VM_NOSLEEP, &x), 0);
	vmem_free(vb, x, 1);
	assert_int_equal(h_close_arena(a, va), 0);
	assert_int_equal(h_close_arena(b, vb), 0);
	assert_int_equal(h_count(&h_main, "/vmem/full/blocks/"), 0);
}

static int sleeper(void *arg)
{
	(void)arg;
	while (!atomic_load(&w->go))
		h_sleep_ms(10);
	vmem_etcd_opts_t o = h_opts(&h_main);
	vmem_etcd_t *src;
	vmem_t *vm;
	if (h_open_arena(&o, "wait", &src, &vm) != 0)
		return 10;
	vmem_addr_t x;
	if (vmem_alloc(vm, 1, VM_NOSLEEP, &x) != ENOMEM)
		return 12;
	atomic_store(&w->started, 1);
	uint64_t t0 = h_now_ms();
	w->err = vmem_alloc(vm, 1, VM_SLEEP, &x);
	atomic_store(&w->waited_ms, h_now_ms() - t0);
	atomic_store(&w->done_at, h_now_ms());
	atomic_store(&w->id, x);
	atomic_store(&w->done, 1);
	if (w->err == 0)
		vmem_free(vm, x, 1);
	return h_close_arena(src, vm) == 0 ? 0 : 13;
}

static void sleep_waits(void **state)
{
	(void)state;
	w = h_share(sizeof(*w));
	assert_non_null(w);
	/* forked while this process runs no thread of a connection (TSan and
	 * fork), started once the pool is full */
	pid_t pid = h_fork(sleeper, NULL);
	vmem_etcd_t *a;
	vmem_t *va;
	create_open("wait", 1, &a, &va);
	vmem_addr_t ids[BLOCK * NBLOCKS];
	take_all(va, ids);

	atomic_store(&w->go, 1);
	assert_true(H_WAIT_FOR(atomic_load(&w->started), 10000));
	h_sleep_ms(1000);
	assert_int_equal(atomic_load(&w->done), 0); /* still waiting */

	/* free one whole block: its release lets the sleeper in */
	vmem_addr_t blk = ids[0] - (ids[0] - BASE) % BLOCK;
	int freed = 0;
	uint64_t t_free = h_now_ms();
	for (int i = 0; i < BLOCK * NBLOCKS; i++)
		if (ids[i] >= blk && ids[i] < blk + BLOCK) {
			vmem_free(va, ids[i], 1);
			freed++;
		}
	assert_int_equal(freed, BLOCK);
	assert_true(H_WAIT_FOR(atomic_load(&w->done), 10000));
	assert_int_equal(h_wait(pid), 0);
	assert_int_equal(w->err, 0);
	vmem_addr_t got = atomic_load(&w->id);
	assert_true(got >= blk && got < blk + BLOCK);
	assert_true(atomic_load(&w->waited_ms) >= 1000);
	print_message("the sleeper waited %llu ms, got its ID %llu ms after the free\n",
		      (unsigned long long)atomic_load(&w->waited_ms),
		      (unsigned long long)(atomic_load(&w->done_at) - t_free));
	assert_true(atomic_load(&w->done_at) - t_free < 5000);

	for (int i = 0; i < BLOCK * NBLOCKS; i++)
		if (ids[i] < blk || ids[i] >= blk + BLOCK)
			vmem_free(va, ids[i], 1);
	assert_int_equal(h_close_arena(a, va), 0);
	assert_int_equal(h_count(&h_main, "/vmem/wait/blocks/"), 0);
	h_unshare(w, sizeof(*w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(nosleep_enomem),
		cmocka_unit_test(sleep_waits),
	};
	return cmocka_run_group_tests_name("etcd_exhaust", tests, h_setup_one, h_teardown_main);
}
