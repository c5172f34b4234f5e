/*
 * test_fork.c - fork() while other threads allocate and free.
 *
 * Two worker threads keep allocating and freeing on shared arenas (one with
 * quantum caches, one without, a child arena importing from the first, and
 * a VMC_DEBUG one).  The main thread forks repeatedly.  Each child checks
 * every arena's invariants, allocates and frees on every arena with each
 * kind of call, makes and destroys an arena of its own, starts a thread
 * that does the same, and exits 0.  A child that deadlocks on a lock held
 * at fork time is killed by its alarm; the parent asserts the exit status.
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
#include <unistd.h>

#include "helpers.h"

#define NARENA 4
#define NWORKERS 2
#define LIVE 64

static vmem_t *arenas[NARENA];
static vmem_size_t quanta[NARENA];
static atomic_int stop;
static atomic_int werr;

struct held {
	vmem_addr_t addr;
	vmem_size_t size;
	int ar, x;
};

struct worker {
	uint64_t seed;
	uint64_t ops;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct held h[LIVE];
	int n = 0;
	uint64_t s = w->seed;
	while (!atomic_load(&stop)) {
		uint64_t r = rand_next(&s);
		if (n == LIVE || (n > 0 && r % 2)) {
			int k = (int)((r >> 8) % (uint64_t)n);
			vmem_t *vm = arenas[h[k].ar];
			int rc = h[k].x ? vmem_xfree(vm, h[k].addr, h[k].size)
					: vmem_free(vm, h[k].addr, h[k].size);
			if (rc != 0)
				atomic_store(&werr, 1);
			h[k] = h[--n];
		} else {
			int ar = (int)((r >> 16) % NARENA);
			vmem_size_t size = quanta[ar] * (1 + (r >> 24) % 24);
			int x = (r >> 40) % 4 == 0;
			vmem_addr_t a;
			int rc = x ? vmem_xalloc(arenas[ar], size, 2 * quanta[ar], 0, 0, 0,
						 VMEM_ADDR_MAX, VM_NOSLEEP, &a)
				   : vmem_alloc(arenas[ar], size, VM_NOSLEEP, &a);
			if (rc == 0)
				h[n++] = (struct held){ a, size, ar, x };
			else if (rc != ENOMEM)
				atomic_store(&werr, 2);
		}
		w->ops++;
	}
	while (n > 0) {
		n--;
		vmem_t *vm = arenas[h[n].ar];
		int rc = h[n].x ? vmem_xfree(vm, h[n].addr, h[n].size)
				: vmem_free(vm, h[n].addr, h[n].size);
		if (rc != 0)
			atomic_store(&werr, 3);
	}
	return NULL;
}

/* ---- in the child: no cmocka, exit codes only --------------------------- */

static int child_use(vmem_t *vm, vmem_size_t q)
{
	char why[600];
	if (!arena_check(vm, why, sizeof(why))) {
		fprintf(stderr, "# child: arena %s: %s\n", vmem_name(vm), why);
		return 10;
	}
	static const vmem_size_t sizes[] = { 1, 2, 7, 16, 40 };
	static const int pols[] = { 0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t k = 0; k < sizeof(pols) / sizeof(pols[0]); k++) {
			vmem_addr_t a, b;
			vmem_size_t n = sizes[i] * q;
			if (vmem_alloc(vm, n, pols[k] | VM_NOSLEEP, &a) != 0)
				return 11;
			if (vmem_xalloc(vm, n, 4 * q, q, 0, 0, VMEM_ADDR_MAX, pols[k] | VM_NOSLEEP,
					&b) != 0)
				return 12;
			if (b % (4 * q) != q)
				return 13;
			if (vmem_free(vm, a, n) != 0)
				return 14;
			if (vmem_xfree(vm, b, n) != 0)
				return 15;
		}
	}
	vmem_stats_t st;
	if (stats_read(vm, &st) != 0 || st.span_total != st.alloc_total + st.free_total)
		return 16;
	vmem_reap(vm);
	if (!arena_check(vm, why, sizeof(why))) {
		fprintf(stderr, "# child: arena %s after use: %s\n", vmem_name(vm), why);
		return 17;
	}
	return 0;
}

static void *child_thread(void *arg)
{
	(void)arg;
	intptr_t rc = 0;
	for (int i = 0; i < NARENA && rc == 0; i++)
		rc = child_use(arenas[i], quanta[i]);
	return (void *)rc;
}

static int child_work(void)
{
	alarm(20); /* a deadlock kills us with SIGALRM */
	int rc;
	for (int i = 0; i < NARENA; i++)
		if ((rc = child_use(arenas[i], quanta[i])) != 0)
			return rc + 10 * i;
	/* a fresh arena importing from one the workers were using */
	vmem_t *vm = vmem_create("in-child", 0, 0, 1, 8, 0);
	if (vm == NULL || vmem_set_source(vm, arenas[0], 64) != 0)
		return 60;
	if ((rc = child_use(vm, 1)) != 0)
		return 60 + rc % 10;
	vmem_destroy(vm);
	/* and a thread: the locks must work in the child.  Not under ASan
	 * or TSan: ASan's allocator lock may have been held by a parent
	 * thread at the fork, and a new thread in the child then hangs inside
	 * ASan; TSan reuses a dead parent thread's id and aborts. */
#if !SANITIZER_BUILD
	pthread_t t;
	void *res;
	if (pthread_create(&t, NULL, child_thread, NULL) != 0)
		return 70;
	pthread_join(t, &res);
	if (res != NULL)
		return 71;
#else
	if (child_thread(NULL) != NULL)
		return 71;
#endif
	return 0;
}

static int child_main(void *arg)
{
	(void)arg;
	int rc = child_work();
	/* the child's copies go too, children before their source, so that
	 * valgrind sees no tag left behind */
	for (int k = NARENA; k-- > 0;)
		vmem_destroy(arenas[k]);
	return rc;
}

static void test_fork(void **state)
{
	(void)state;
	uint64_t seed = test_seed(7);
	quanta[0] = 1;
	quanta[1] = 4096;
	quanta[2] = 1;
	quanta[3] = 16;
	arenas[0] = arena_new("ids", 0, 1 << 20, 1, 16, 0);
	arenas[1] = arena_new("pages", 0x10000000, 4096ull * 4096, 4096, 0, 0);
	arenas[2] = arena_child("child", arenas[0], 1, 8, 256);
	arenas[3] = arena_new("debug", 0, 1 << 20, 16, 64, VMC_DEBUG);

	atomic_store(&stop, 0);
	atomic_store(&werr, 0);
	struct worker w[NWORKERS];
	pthread_t tids[NWORKERS];
	for (int i = 0; i < NWORKERS; i++)
		w[i] = (struct worker){ .seed = seed + (uint64_t)i * 77 };
	threads_start(tids, NWORKERS, worker_main, w, sizeof(*w));

	uint64_t nfork = test_scale(50);
	char msg[256] = "";
	bool ok = true;
	uint64_t nth;
	for (nth = 0; nth < nfork && ok; nth++) {
		usleep(2000); /* let the workers get going again */
		ok = fork_run(child_main, NULL, msg, sizeof(msg));
	}
	atomic_store(&stop, 1);
	threads_join(tids, NWORKERS);
	uint64_t ops = 0;
	for (int i = 0; i < NWORKERS; i++)
		ops += w[i].ops;
	if (!ok)
		fail_msg("fork %" PRIu64 ": %s", nth - 1, msg);
	assert_int_equal(atomic_load(&werr), 0);
	print_message("# %" PRIu64 " forks, %" PRIu64 " worker operations\n", nfork, ops);

	/* the parent's arenas came through intact */
	for (int i = 0; i < NARENA; i++) {
		vmem_reap(arenas[i]);
		CHECK_ARENA(arenas[i]);
	}
	vmem_reap(arenas[2]);
	for (int i = 0; i < NARENA; i++) {
		vmem_stats_t st = stats_of(arenas[i]);
		assert_int_equal(st.alloc_total, 0);
		assert_int_equal(st.allocs, st.frees);
	}
	vmem_destroy(arenas[2]);
	vmem_destroy(arenas[3]);
	vmem_destroy(arenas[1]);
	vmem_destroy(arenas[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork),
	};
	return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
