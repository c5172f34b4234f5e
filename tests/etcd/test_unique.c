/*
 * test_unique - uniqueness across processes, against one real etcd member:
 *   hammer_small_pool  8 processes (each with prefetch and a lease) allocate
 *                      and free random IDs from a pool of 24 blocks of 4 IDs,
 *                      marking each ID they hold in a shared bitmap with an
 *                      atomic test-and-set: a mark already set is a duplicate
 *                      and fails the test.  The pool is small enough that
 *                      blocks move between owners all the time (conflicts and
 *                      exhaustion happen); after every connection closes, no
 *                      block key is left.
 *   crowd_with_room    8 processes claim 100 blocks each, as fast as they
 *                      can, from a pool with room for twice that: every
 *                      VM_NOSLEEP allocation succeeds, and few claims are
 *                      lost to another owner (a claimer that followed the
 *                      winner's cursor lost round after round, and gave up
 *                      with ENOMEM while half the pool was free).
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

#define PROCS 8
#define BLOCK 4
#define NBLOCKS 24
#define NIDS (BLOCK * NBLOCKS)
#define BASE 5000
#define OPS 400
#define HOLD_MAX 6

struct shared {
	atomic_uchar owner_of[NIDS]; /* 0 free, else the holder's number + 1 */
	atomic_int duplicates;
	atomic_int wrong_range;
	uint64_t allocs[PROCS], claims[PROCS], conflicts[PROCS], releases[PROCS];
	int close_err[PROCS];
	int crowd_err[PROCS];
};

static struct shared *sh;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A process's connection figures, for the parent to add up; then close. */
static int report_and_close(int me, vmem_etcd_t *src, vmem_t *vm)
{
	vmem_etcd_stats_t st = {.size = sizeof(st)};
	vmem_etcd_get_stats(src, &st);
	sh->claims[me] = st.claims;
	sh->conflicts[me] = st.conflicts;
	sh->releases[me] = st.releases;
	sh->close_err[me] = h_close_arena(src, vm);
	return 0;
}

/* PROCS processes run fn(p) at once; each must exit 0. */
static void run_processes(int (*fn)(void *))
{
	pid_t pids[PROCS];
	for (int p = 0; p < PROCS; p++)
		pids[p] = h_fork(fn, (void *)(intptr_t)p);
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(h_wait(pids[p]), 0);
}

static int hammer(void *arg)
{
	int me = (int)(intptr_t)arg;
	vmem_etcd_opts_t o = h_opts_owner(&h_main, NULL, 10);
	o.prefetch = 1;
	vmem_etcd_t *src;
	vmem_t *vm;
	if (h_open_arena(&o, "u", &src, &vm) != 0)
		return 10;
	uint64_t seed = 0x1234 + (uint64_t)me * 7919;
	vmem_addr_t held[HOLD_MAX];
	int n = 0;
	for (int op = 0; op < OPS; op++) {
		if (n < HOLD_MAX && (n == 0 || rnd(&seed) % 3 != 0)) {
			vmem_addr_t id;
			if (vmem_alloc(vm, 1, VM_NOSLEEP, &id) != 0)
				continue; /* the pool is full for now */
			if (id < BASE || id >= BASE + NIDS) {
				atomic_fetch_add(&sh->wrong_range, 1);
				continue;
			}
			unsigned char was = 0;
			if (!atomic_compare_exchange_strong(&sh->owner_of[id - BASE], &was,
							    (unsigned char)(me + 1))) {
				fprintf(stderr, "process %d: ID %llu is also held by process %d\n", me,
					(unsigned long long)id, was - 1);
				atomic_fetch_add(&sh->duplicates, 1);
			}
			held[n++] = id;
			sh->allocs[me]++;
		} else if (n > 0) {
			int k = (int)(rnd(&seed) % (uint64_t)n);
			vmem_addr_t id = held[k];
			held[k] = held[--n];
			atomic_store(&sh->owner_of[id - BASE], 0); /* before it can go to another */
			vmem_free(vm, id, 1);
		}
	}
	while (n > 0) {
		vmem_addr_t id = held[--n];
		atomic_store(&sh->owner_of[id - BASE], 0);
		vmem_free(vm, id, 1);
	}
	return report_and_close(me, src, vm);
}

static void hammer_small_pool(void **state)
{
	(void)state;
	sh = h_share(sizeof(*sh));
	assert_non_null(sh);
	vmem_etcd_opts_t o = h_opts(&h_main);
	assert_int_equal(vmem_etcd_pool_create(&o, "u", BASE, NIDS, BLOCK), 0);
	run_processes(hammer);
	uint64_t allocs = 0, claims = 0, conflicts = 0, releases = 0;
	for (int p = 0; p < PROCS; p++) {
		allocs += sh->allocs[p];
		claims += sh->claims[p];
		conflicts += sh->conflicts[p];
		releases += sh->releases[p];
		assert_int_equal(sh->close_err[p], 0);
		assert_true(sh->allocs[p] > 0);
	}
	print_message("%d processes: %llu allocations, %llu claims, %llu conflicts, %llu releases\n",
		      PROCS, (unsigned long long)allocs, (unsigned long long)claims,
		      (unsigned long long)conflicts, (unsigned long long)releases);
	assert_int_equal(atomic_load(&sh->duplicates), 0);
	assert_int_equal(atomic_load(&sh->wrong_range), 0);
	/* blocks went round: far more claims than the pool has blocks */
	assert_true(claims > 2 * NBLOCKS);
	/* every connection closed: no block key is left */
	assert_int_equal(h_count(&h_main, "/vmem/u/blocks/"), 0);
	h_unshare(sh, sizeof(*sh));
}

#define CROWD_CLAIMS 100
#define CROWD_BLOCK 16

static int crowd(void *arg)
{
	int me = (int)(intptr_t)arg;
	vmem_etcd_opts_t o = h_opts_owner(&h_main, NULL, 10);
	vmem_etcd_t *src;
	vmem_t *vm;
	if (h_open_arena(&o, "crowd", &src, &vm) != 0)
		return 10;
	vmem_addr_t ids[CROWD_CLAIMS];
	int n = 0, err = 0;
	while (n < CROWD_CLAIMS && (err = vmem_alloc(vm, CROWD_BLOCK, VM_NOSLEEP, &ids[n])) == 0)
		n++; /* a whole block each: one claim each */
	sh->crowd_err[me] = err;
	while (n > 0)
		vmem_free(vm, ids[--n], CROWD_BLOCK);
	return report_and_close(me, src, vm); /* the claims were made before the frees */
}

static void crowd_with_room(void **state)
{
	(void)state;
	sh = h_share(sizeof(*sh));
	assert_non_null(sh);
	vmem_etcd_opts_t o = h_opts(&h_main);
	uint64_t nblocks = 2 * PROCS * CROWD_CLAIMS;
	assert_int_equal(vmem_etcd_pool_create(&o, "crowd", 0, nblocks * CROWD_BLOCK, CROWD_BLOCK),
			 0);
	run_processes(crowd);
	uint64_t claims = 0, conflicts = 0;
	for (int p = 0; p < PROCS; p++) {
		claims += sh->claims[p];
		conflicts += sh->conflicts[p];
	}
	print_message("%d processes: %llu claims, %llu conflicts\n", PROCS,
		      (unsigned long long)claims, (unsigned long long)conflicts);
	for (int p = 0; p < PROCS; p++) {
		assert_int_equal(sh->crowd_err[p], 0);
		assert_int_equal(sh->close_err[p], 0);
	}
	assert_int_equal(claims, PROCS * CROWD_CLAIMS);
	assert_true(conflicts * 10 <= claims); /* at most one conflict in ten claims */
	assert_int_equal(vmem_etcd_pool_destroy(&o, "crowd"), 0); /* EBUSY if a key were left */
	h_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hammer_small_pool),
		cmocka_unit_test(crowd_with_room),
	};
	return cmocka_run_group_tests_name("etcd_unique", tests, h_setup_one, h_teardown_main);
}
