/*
 * test_stress.c - long concurrent runs (test_threads.c has the short ones).
 *
 *  - mixed: 4 threads x 10^6 operations on one shared arena (every policy,
 *    vmem_xalloc with random constraints, cached sizes), while another
 *    thread adds spans and the main thread checks invariants, walks, reaps;
 *    the same with quantum caches and VMC_DEBUG;
 *  - family: the same on a parent and two children importing from it,
 *    threads allocating from all three;
 *  - sleepers: 16 threads make VM_SLEEP requests (constrained ones too) on
 *    an arena far too small for all of them, others free, add spans and
 *    reap; a watchdog aborts with a dump if progress stops (a lost wake-up);
 *    then sleepers waiting for vmem_add on an empty arena, and sleepers on a
 *    child whose source is full;
 *  - forks: 1000 fork()s while three threads allocate; every child checks
 *    and uses every arena, makes one of its own and exits;
 *  - thread cycles: threads that allocate (cached sizes included) and exit,
 *    over and over: mapped memory and RSS must stay flat.
 *
 * Every unit of the shared ranges has an ownership byte, set with an atomic
 * exchange when a thread gets the unit and cleared before it frees it: a
 * unit handed out twice, at the same moment, is caught when it happens.
 * Only allocations the threads make are marked, not the spans children
 * import, so a parent handing out units a child's span holds is caught too.
 *
 * Worker threads never call cmocka: they record the first problem and the
 * main thread fails the test.  VMEM_TEST_SCALE=N runs N times longer;
 * VMEM_TEST_SANITIZED=1 (set by the sanitizer CI jobs) runs a tenth.
 * Figures for scripts/reliability.sh are printed on "# figure: " lines.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define NTHREADS 4
#define UNITS (1u << 22)

/* Operations per thread for a base count: scaled, and cut under sanitizers. */
static uint64_t ops_for(uint64_t n)
{
	return test_scale(test_sanitized() ? n / 10 : n);
}

static atomic_uchar g_units[UNITS];
static struct shadow g_own = {g_units, UNITS};
static atomic_uint_fast64_t g_ops_total;
static uint64_t g_forks_total;

/* ---- mixed workers -------------------------------------------------------- */

/* The workers' mix (load_main, helpers.c): half the operations frees, 30%
 * of the allocations constrained, one in eight of the others up to 256
 * units; now and then vmem_contains of what came back. */
static const struct load mix = {
	.live = 256, .free_pct = 48, .xalloc_pct = 30, .big_pct = 12, .small = 16, .big = 256,
	.xsize = 48, .align_log = 10, .nocross_fits = true, .window = 1024, .span = UNITS / 4,
	.check_contains = true, .own = &g_own,
};

/* Adds spans to an arena while the workers run. */
struct adder {
	vmem_t *vm;
	vmem_addr_t base;
	vmem_size_t chunk;
	int n, done;
	atomic_int *stop;
};

static void *adder_main(void *arg)
{
	struct adder *ad = arg;
	for (int i = 0; i < ad->n && !atomic_load(ad->stop); i++) {
		int rc = vmem_add(ad->vm, ad->base + (vmem_addr_t)i * ad->chunk, ad->chunk,
				  i % 2 ? VM_NOSLEEP : VM_SLEEP);
		if (rc != 0)
			report("vmem_add returned %d", rc);
		ad->done++;
		usleep(2000);
	}
	return NULL;
}

/* Run w[0..NTHREADS) against arenas; the main thread watches. */
static void run_workers(struct load *w, vmem_t **watch, int nwatch, struct adder *ad)
{
	atomic_int stop = 0;
	pthread_t tids[NTHREADS], adder;
	threads_start(tids, NTHREADS, load_main, w, sizeof(*w));
	if (ad) {
		ad->stop = &stop;
		assert_int_equal(pthread_create(&adder, NULL, adder_main, ad), 0);
	}
	/* concurrent readers: the checker, stats, walks, reaps */
	watch_until_joined(tids, NTHREADS, watch, nwatch, 8, 5000);
	atomic_store(&stop, 1);
	if (ad)
		pthread_join(adder, NULL);
}

static void mixed(vmem_size_t qmax, int flags, uint64_t seed, uint64_t iters)
{
	report_reset();
	shadow_clear(&g_own);
	vmem_t *vm = arena_new("stress", 0, UNITS / 2, 1, qmax, flags);
	struct load w[NTHREADS];
	loads_init(w, NTHREADS, &mix, &vm, 1, seed, 7919, iters);
	struct adder ad = {.vm = vm, .base = UNITS / 2, .chunk = UNITS / 64, .n = 32};
	run_workers(w, &vm, 1, &ad);
	report_check();
	shadow_check_clean(&g_own);
	vmem_stats_t st = expect_empty(vm);
	struct load_total t = expect_counted(vm, w, NTHREADS, 0);
	assert_int_equal(st.nspans, 1 + (uint64_t)ad.done);
	assert_int_equal(st.span_total, UNITS / 2 + (uint64_t)ad.done * (UNITS / 64));
	assert_true(t.ok > iters); /* it did work */
	atomic_fetch_add(&g_ops_total, NTHREADS * iters);
	print_message("# shared arena (qcache_max %" PRIu64 "%s): %d x %" PRIu64 " operations, %" PRIu64
		      " allocations, %" PRIu64 " ENOMEM, %d spans added\n",
		      qmax, flags ? ", debug" : "", NTHREADS, iters, t.ok, t.nomem, ad.done);
	vmem_destroy(vm);
}

TEST(test_mixed)
{
	mixed(0, 0, test_seed(101), ops_for(1000000));
}

TEST(test_mixed_qcache_debug)
{
	mixed(16, 0, test_seed(102), ops_for(200000));
	mixed(8, VMC_DEBUG, test_seed(103), ops_for(100000));
}

/* Children made, used and destroyed over and over on a shared parent. */
struct churner {
	pthread_t tid;
	vmem_t *parent;
	atomic_int stop;
	uint64_t seed, cycles;
};

static void *churner_main(void *arg)
{
	struct churner *c = arg;
	uint64_t s = c->seed;
	while (!atomic_load(&c->stop) && !reported()) {
		uint64_t r = rand_next(&s);
		vmem_t *vm = vmem_create("churned", 0, 0, 1, r & 1 ? 8 : 0, 0);
		if (vm == NULL || vmem_set_source(vm, c->parent, (r >> 1) & 1 ? 512 : 0) != 0) {
			report("churner: create/set_source failed");
			vmem_destroy(vm);
			return NULL;
		}
		vmem_addr_t ha[32];
		vmem_size_t hs[32];
		int n = 0;
		for (int i = 0; i < 32; i++) {
			hs[n] = 1 + rand_next(&s) % 40;
			if (vmem_alloc(vm, hs[n], policies[i % 5], &ha[n]) == 0) {
				shadow_mark(&g_own, ha[n], hs[n], "churned child");
				n++;
			}
		}
		/* free half, drop the rest with the arena: its spans go back */
		for (int i = 0; i < n; i++) {
			shadow_unmark(&g_own, ha[i], hs[i]);
			if (i % 2 == 0 && vmem_free(vm, ha[i], hs[i]) != 0)
				report("churner: free failed");
		}
		char msg[600];
		if (!arena_check(vm, msg, sizeof(msg)))
			report("churned child: %s", msg);
		vmem_destroy(vm);
		c->cycles++;
	}
	return NULL;
}

/* A parent and two children importing from it; threads use all three. */
TEST(test_family)
{
	report_reset();
	shadow_clear(&g_own);
	uint64_t seed = test_seed(104), iters = ops_for(1000000);
	vmem_t *p = arena_new("parent", 0, UNITS, 1, 16, 0);
	vmem_t *c1 = arena_child("child1", p, 1, 0, 1024);
	vmem_t *c2 = arena_child("child2", p, 1, 16, 0);
	struct load w[NTHREADS];
	vmem_t *arenas[3] = {c1, c2, p};
	loads_init(w, NTHREADS, &mix, arenas, 3, seed, 104729, iters);
	vmem_t *watch[3] = {p, c1, c2};
	struct churner ch = {.parent = p, .seed = seed ^ 0xc0ffee};
	assert_int_equal(pthread_create(&ch.tid, NULL, churner_main, &ch), 0);
	run_workers(w, watch, 3, NULL);
	atomic_store(&ch.stop, 1);
	pthread_join(ch.tid, NULL);
	report_check();
	shadow_check_clean(&g_own);
	/* every imported span went back when it became free */
	vmem_stats_t s1 = expect_child_empty(c1), s2 = expect_child_empty(c2);
	assert_true(s1.imports > 0 && s2.imports > 0);
	vmem_stats_t sp = expect_empty(p);
	expect_counted(c1, w, NTHREADS, 0);
	expect_counted(c2, w, NTHREADS, 1);
	struct load_total tp = load_total(w, NTHREADS, 2);
	/* the children's imports are the parent's allocations (the churned
	 * children's too: they are all back) */
	assert_true(sp.allocs >= tp.ok + s1.imports + s2.imports);
	assert_int_equal(sp.allocs - sp.frees, 0);
	assert_int_equal(sp.allocs - (tp.ok + s1.imports + s2.imports),
			 sp.frees - (tp.frees + s1.releases + s2.releases));
	assert_true(ch.cycles > 0);
	atomic_fetch_add(&g_ops_total, NTHREADS * iters);
	print_message("# family: %d x %" PRIu64 " operations; imports %" PRIu64 " + %" PRIu64
		      "; %" PRIu64 " children made and destroyed meanwhile\n",
		      NTHREADS, iters, s1.imports, s2.imports, ch.cycles);
	vmem_destroy(c1);
	vmem_destroy(c2);
	vmem_destroy(p);
}

/* ---- sleepers -------------------------------------------------------------- */

#define NSLEEP 16
#define WATCHDOG_SECONDS 30

static atomic_uint_fast64_t g_progress;
static atomic_int g_sleep_done;
static vmem_t *g_dump[3];

static void *watchdog_main(void *arg)
{
	(void)arg;
	uint64_t last = atomic_load(&g_progress);
	int still = 0;
	while (!atomic_load(&g_sleep_done)) {
		sleep(1);
		uint64_t now = atomic_load(&g_progress);
		if (now != last) {
			last = now;
			still = 0;
			continue;
		}
		if (++still < WATCHDOG_SECONDS)
			continue;
		fprintf(stderr, "watchdog: no progress for %d s with sleepers waiting: a lost "
				"wake-up.  The arenas:\n",
			WATCHDOG_SECONDS);
		for (int i = 0; i < 3; i++)
			if (g_dump[i])
				vmem_dump(g_dump[i], stderr);
		fflush(stderr);
		abort();
	}
	return NULL;
}

/* Sleepers (sleeper_main, helpers.c) of up to 6 units: a third of them
 * constrained, one in eight napping. */
static const struct sleeper sleepy = {
	.own = &g_own, .max_size = 6, .xalloc_pct = 33, .constrain = true, .nap_pct = 12,
	.nap_us = 50, .progress = &g_progress,
};

/* n sleepers on vm, whose units are [base, base + units). */
static void sleepers_init(struct sleeper *z, int n, vmem_t *vm, vmem_addr_t base,
			  vmem_size_t units, uint64_t seed, uint64_t rounds)
{
	for (int i = 0; i < n; i++) {
		z[i] = sleepy;
		z[i].vm = vm;
		z[i].base = base;
		z[i].units = units;
		z[i].seed = seed + (uint64_t)i;
		z[i].rounds = rounds;
	}
}

/* Reaps and VM_NOSLEEP requests while the sleepers run. */
static void *poker_main(void *arg)
{
	vmem_t *vm = arg;
	uint64_t s = 99;
	while (!atomic_load(&g_sleep_done)) {
		vmem_addr_t a;
		vmem_size_t n = 1 + rand_next(&s) % 3;
		if (vmem_alloc(vm, n, VM_NOSLEEP, &a) == 0) {
			/* not marked: the sleepers' shadow is theirs; just give it back */
			if (vmem_free(vm, a, n) != 0)
				report("poker free failed");
		}
		vmem_reap(vm);
		usleep(100);
	}
	return NULL;
}

TEST(test_sleepers)
{
	report_reset();
	shadow_clear(&g_own);
	uint64_t seed = test_seed(105), rounds = ops_for(20000);
	atomic_store(&g_sleep_done, 0);
	pthread_t wd, pk;
	assert_int_equal(pthread_create(&wd, NULL, watchdog_main, NULL), 0);

	/* 1: sixteen sleepers on 24 units, with quantum caches */
	vmem_t *vm = arena_new("sleepers", 1000, 24, 1, 4, 0);
	g_dump[0] = vm;
	struct sleeper z[NSLEEP];
	pthread_t zt[NSLEEP];
	sleepers_init(z, NSLEEP, vm, 1000, 24, seed, rounds);
	assert_int_equal(pthread_create(&pk, NULL, poker_main, vm), 0);
	threads_start(zt, NSLEEP, sleeper_main, z, sizeof(*z));
	threads_join(zt, NSLEEP);
	report_check();
	uint64_t waits1 = stats_of(vm).waits;

	/* 2: sleepers on an empty arena, woken by vmem_add */
	vmem_t *e = arena_new("sleepers-add", 0, 0, 1, 0, 0);
	g_dump[1] = e;
	struct sleeper y[NSLEEP / 2];
	sleepers_init(y, NSLEEP / 2, e, 1 << 20, 64 * 16, seed + 100, rounds / 8);
	threads_start(zt, NSLEEP / 2, sleeper_main, y, sizeof(*y));
	for (int k = 0; k < 16; k++) {
		usleep(k < 2 ? 20000 : 1000);
		assert_int_equal(vmem_add(e, (1 << 20) + 64 * (vmem_addr_t)k, 64, VM_NOSLEEP), 0);
	}
	threads_join(zt, NSLEEP / 2);
	report_check();
	uint64_t waits2 = stats_of(e).waits;

	/* 3: sleepers on a child whose parent is nearly full */
	vmem_t *p = arena_new("sleepers-parent", 5000, 32, 1, 0, 0);
	vmem_t *c = arena_child("sleepers-child", p, 1, 0, 0);
	g_dump[2] = c;
	struct sleeper x[NSLEEP / 2];
	sleepers_init(x, NSLEEP / 2, c, 5000, 32, seed + 200, rounds / 8);
	threads_start(zt, NSLEEP / 2, sleeper_main, x, sizeof(*x));
	threads_join(zt, NSLEEP / 2);
	report_check();
	uint64_t waits3 = stats_of(c).waits;

	atomic_store(&g_sleep_done, 1);
	pthread_join(pk, NULL);
	pthread_join(wd, NULL);
	memset(g_dump, 0, sizeof(g_dump));
	shadow_check_clean(&g_own);
	expect_empty(vm);
	expect_empty(e);
	CHECK_ARENA(c);
	expect_empty(p);
	uint64_t total = 0;
	for (int i = 0; i < NSLEEP; i++)
		total += z[i].done;
	for (int i = 0; i < NSLEEP / 2; i++)
		total += y[i].done + x[i].done;
	assert_int_equal(total, NSLEEP * rounds + NSLEEP / 2 * (rounds / 8) * 2);
	assert_true(waits1 > 0 && waits2 > 0);
	print_message("# sleepers: %" PRIu64 " VM_SLEEP requests, %" PRIu64 " + %" PRIu64 " + %" PRIu64
		      " waits\n",
		      total, waits1, waits2, waits3);
	atomic_fetch_add(&g_ops_total, total);
	vmem_destroy(vm);
	vmem_destroy(e);
	vmem_destroy(c);
	vmem_destroy(p);
}

/* ---- forks ------------------------------------------------------------------ */

#define NFORKLOAD 3
static struct fork_arenas g_fa;

/* In the child: exit codes only. */
static int fork_child(void *arg)
{
	uint64_t seed = *(const uint64_t *)arg;
	alarm(20); /* a lock left taken at fork time kills us by SIGALRM */
	char why[600];
	for (int i = 0; i < FORK_ARENAS; i++) {
		vmem_t *vm = g_fa.vm[i];
		vmem_size_t q = g_fa.q[i];
		if (!arena_check(vm, why, sizeof(why))) {
			fprintf(stderr, "fork child: %s: %s\n", vmem_name(vm), why);
			return 10 + i;
		}
		vmem_addr_t a[8];
		vmem_size_t sz[8];
		for (int k = 0; k < 8; k++) {
			sz[k] = q * (1 + (seed + (uint64_t)k) % 7);
			int rc = k % 2 ? vmem_alloc(vm, sz[k], policies[k % 5], &a[k])
				       : vmem_xalloc(vm, sz[k], 4 * q, q, 0, 0, VMEM_ADDR_MAX,
						     policies[k % 5], &a[k]);
			if (rc != 0)
				return 20 + i;
			if (k % 2 == 0 && a[k] % (4 * q) != q)
				return 30 + i;
		}
		for (int k = 0; k < 8; k++) {
			int rc = k % 2 ? vmem_free(vm, a[k], sz[k]) : vmem_xfree(vm, a[k], sz[k]);
			if (rc != 0)
				return 40 + i;
		}
		if (!arena_check(vm, why, sizeof(why)))
			return 50 + i;
	}
	vmem_t *own_vm = vmem_create("in-child", 0, 1 << 16, 1, 8, 0);
	if (own_vm == NULL)
		return 60;
	vmem_addr_t a;
	if (vmem_alloc(own_vm, 100, VM_NOSLEEP, &a) != 0 || vmem_free(own_vm, a, 100) != 0)
		return 61;
	vmem_destroy(own_vm);
	fork_arenas_destroy(&g_fa);
	return 0;
}

TEST(test_forks)
{
	report_reset();
	fork_arenas_create(&g_fa);
	uint64_t seed = test_seed(106);
	atomic_int stop = 0;
	struct load w[NFORKLOAD];
	pthread_t t[NFORKLOAD];
	fork_loads_start(&g_fa, w, t, NFORKLOAD, seed, &stop);

	uint64_t nfork = test_scale(test_sanitized() ? 100 : 1000);
	char msg[256] = "";
	bool ok = true;
	uint64_t i;
	for (i = 0; i < nfork && ok; i++) {
		uint64_t child_seed = seed + i;
		ok = fork_run(fork_child, &child_seed, msg, sizeof(msg));
	}
	atomic_store(&stop, 1);
	threads_join(t, NFORKLOAD);
	if (!ok)
		fail_msg("fork %" PRIu64 ": %s", i - 1, msg);
	report_check();
	uint64_t ops = load_total(w, NFORKLOAD, 0).ops;
	atomic_fetch_add(&g_ops_total, ops);
	g_forks_total += i;
	print_message("# %" PRIu64 " forks while %d threads made %" PRIu64 " operations\n", i,
		      NFORKLOAD, ops);
	fork_arenas_finish(&g_fa);
}

/* ---- thread create/exit cycles ---------------------------------------------- */

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

struct cyc {
	vmem_t *cached, *plain;
	uint64_t seed;
};

static void *cycle_thread(void *arg)
{
	struct cyc *c = arg;
	uint64_t s = c->seed;
	vmem_addr_t a[32];
	vmem_size_t sz[32];
	for (int k = 0; k < 32; k++) {
		sz[k] = 1 + rand_next(&s) % 24;
		vmem_t *vm = k % 2 ? c->cached : c->plain;
		if (vmem_alloc(vm, sz[k], VM_NOSLEEP, &a[k]) != 0) {
			report("thread cycle: allocation failed");
			return NULL;
		}
	}
	/* give everything back: into the caches, for cached sizes */
	for (int k = 0; k < 32; k++)
		if (vmem_free(k % 2 ? c->cached : c->plain, a[k], sz[k]) != 0)
			report("thread cycle: free failed");
	return NULL;
}

TEST(test_thread_cycles)
{
	report_reset();
	vmem_t *cached = arena_new("cycles-cached", 0, 1 << 20, 1, 16, 0);
	vmem_t *plain = arena_new("cycles-plain", 0, 1 << 20, 1, 0, 0);
	uint64_t cycles = test_scale(test_sanitized() ? 300 : 2000), warm = cycles / 10;
	size_t mapped0 = 0;
	long rss0 = 0;
	for (uint64_t i = 0; i < cycles; i++) {
		if (i == warm) {
			mapped0 = os_mapped_bytes();
			rss0 = rss_kb();
		}
		pthread_t t[2];
		struct cyc c[2] = {{cached, plain, i * 2}, {cached, plain, i * 2 + 1}};
		for (int k = 0; k < 2; k++)
			assert_int_equal(pthread_create(&t[k], NULL, cycle_thread, &c[k]), 0);
		for (int k = 0; k < 2; k++)
			pthread_join(t[k], NULL);
		report_check();
	}
	size_t mapped1 = os_mapped_bytes();
	long rss1 = rss_kb();
	print_message("# %" PRIu64 " thread cycles: mapped %zu -> %zu bytes, RSS %ld -> %ld kB\n",
		      cycles, mapped0, mapped1, rss0, rss1);
	/* after the warm-up nothing may grow with the number of threads */
	if (mapped1 > mapped0 + 64 * 1024)
		fail_msg("mapped memory grew from %zu to %zu bytes over %" PRIu64 " thread cycles",
			 mapped0, mapped1, cycles - warm);
	if (rss0 > 0 && rss1 > rss0 + 4096)
		fail_msg("RSS grew from %ld to %ld kB over %" PRIu64 " thread cycles", rss0, rss1,
			 cycles - warm);
	expect_empty(cached);
	expect_empty(plain);
	atomic_fetch_add(&g_ops_total, cycles * 2 * 64);
	vmem_destroy(cached);
	vmem_destroy(plain);
}

TEST(test_figures)
{
	printf("# figure: operations stressed %" PRIu64 "\n", (uint64_t)atomic_load(&g_ops_total));
	printf("# figure: forks %" PRIu64 "\n", g_forks_total);
	fflush(stdout);
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
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_mixed_qcache_debug),
		cmocka_unit_test(test_family),
		cmocka_unit_test(test_sleepers),
		cmocka_unit_test(test_forks),
		cmocka_unit_test(test_thread_cycles),
		cmocka_unit_test(test_figures),
	};
	return cmocka_run_group_tests_name("stress", tests, setup, teardown);
}
