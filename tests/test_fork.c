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
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

#define NWORKERS 2

static struct fork_arenas g_fa;

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
	for (int i = 0; i < FORK_ARENAS && rc == 0; i++)
		rc = child_use(g_fa.vm[i], g_fa.q[i]);
	return (void *)rc;
}

static int child_work(void)
{
	alarm(20); /* a deadlock kills us with SIGALRM */
	int rc;
	for (int i = 0; i < FORK_ARENAS; i++)
		if ((rc = child_use(g_fa.vm[i], g_fa.q[i])) != 0)
			return rc + 10 * i;
	/* a fresh arena importing from one the workers were using */
	vmem_t *vm = vmem_create("in-child", 0, 0, 1, 8, 0);
	if (vm == NULL || vmem_set_source(vm, g_fa.vm[0], 64) != 0)
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
	fork_arenas_destroy(&g_fa);
	return rc;
}

TEST(test_fork)
{
	report_reset();
	fork_arenas_create(&g_fa);
	atomic_int stop = 0;
	struct load w[NWORKERS];
	pthread_t tids[NWORKERS];
	fork_loads_start(&g_fa, w, tids, NWORKERS, test_seed(7), &stop);

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
	if (!ok)
		fail_msg("fork %" PRIu64 ": %s", nth - 1, msg);
	report_check();
	print_message("# %" PRIu64 " forks, %" PRIu64 " worker operations\n", nfork,
		      load_total(w, NWORKERS, 0).ops);
	/* the parent's arenas came through intact */
	fork_arenas_finish(&g_fa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork),
	};
	return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
