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
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NTHREADS 4
#define UNITS (1u << 20)
#define LIVE 128

static atomic_uchar *own;
static atomic_int g_err;
static atomic_int g_running;
static char g_msg[512];
static pthread_mutex_t g_msg_lock = PTHREAD_MUTEX_INITIALIZER;

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	pthread_mutex_lock(&g_msg_lock);
	if (atomic_fetch_add(&g_err, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(g_msg, sizeof(g_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&g_msg_lock);
}

static void mark(vmem_addr_t a, vmem_size_t n, const char *who)
{
	if (a >= UNITS || n > UNITS - a) {
		report("%s: [%#" PRIx64 ", +%" PRIu64 ") lies outside the arena", who, a, n);
		return;
	}
	for (vmem_size_t i = 0; i < n; i++)
		if (atomic_exchange_explicit(&own[a + i], 1, memory_order_acq_rel) != 0) {
			report("%s: unit %#" PRIx64 " handed out twice (segment [%#" PRIx64
			       ", +%" PRIu64 "))",
			       who, a + i, a, n);
			return;
		}
}

static void unmark(vmem_addr_t a, vmem_size_t n)
{
	for (vmem_size_t i = 0; i < n; i++)
		if (atomic_exchange_explicit(&own[a + i], 0, memory_order_acq_rel) != 1) {
			report("unit %#" PRIx64 " was not marked before its free", a + i);
			return;
		}
}

struct live {
	vmem_addr_t addr;
	vmem_size_t size;
	int x;  /* from vmem_xalloc */
	int ar; /* which arena */
};

struct worker {
	pthread_t tid;
	vmem_t *arena[2];
	int narena;
	uint64_t seed;
	uint64_t iters;
	uint64_t ok[2], enomem[2], frees[2];
};

static const int policies[] = { 0, VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT };

static void do_free(struct worker *w, struct live *l)
{
	unmark(l->addr, l->size);
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

	for (uint64_t it = 0; it < w->iters && atomic_load(&g_err) == 0; it++) {
		uint64_t r = tu_rand(&s);
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
				mark(a, size, "vmem_alloc");
		} else {
			uint64_t r2 = tu_rand(&s);
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
				vmem_size_t al = align ? align : 1;
				if (a % al != phase)
					report("xalloc: %#" PRIx64 " %% %" PRIu64 " != %" PRIu64, a, al,
					       phase);
				if (nocross && a / nocross != (a + size - 1) / nocross)
					report("xalloc: [%#" PRIx64 ", +%" PRIu64
					       ") crosses %" PRIu64,
					       a, size, nocross);
				if (a < lo || a + size - 1 > hi)
					report("xalloc: [%#" PRIx64 ", +%" PRIu64
					       ") outside [%#" PRIx64 ", %#" PRIx64 "]",
					       a, size, lo, hi);
				mark(a, size, "vmem_xalloc");
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
	atomic_fetch_sub(&g_running, 1);
	return NULL;
}

struct order {
	vmem_addr_t last_end;
	int bad;
	int first;
};

static void order_cb(void *arg, vmem_addr_t addr, vmem_size_t size, int type)
{
	struct order *o = arg;
	(void)type;
	if (!o->first && addr < o->last_end)
		o->bad++;
	o->first = 0;
	o->last_end = addr + size;
}

static void get_stats(vmem_t *vm, vmem_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	assert_int_equal(vmem_get_stats(vm, st), 0);
}

/* Run the workers; meanwhile the main thread looks at the arenas. */
static void run(vmem_t *a, vmem_t *b, struct worker *w, uint64_t seed)
{
	atomic_store(&g_err, 0);
	g_msg[0] = '\0';
	memset(own, 0, UNITS);
	uint64_t iters = tu_scale(150000);
	atomic_store(&g_running, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].arena[0] = a;
		w[i].arena[1] = b;
		w[i].narena = b ? 2 : 1;
		w[i].seed = seed + (uint64_t)i * 0x1234567;
		w[i].iters = iters;
		assert_int_equal(pthread_create(&w[i].tid, NULL, hammer, &w[i]), 0);
	}
	/* concurrent readers: the checker, stats and walks must be safe */
	char why[512];
	for (int round = 0; atomic_load(&g_running) > 0 && atomic_load(&g_err) == 0; round++) {
		vmem_t *vm = (b && (round & 1)) ? b : a;
		int inv = vmem_check(vm, why, sizeof(why));
		if (inv != 0)
			report("concurrent vmem_check: I%d %s", inv, why);
		vmem_stats_t st;
		get_stats(vm, &st);
		if (st.span_total != st.alloc_total + st.free_total)
			report("stats torn: span %" PRIu64 " != alloc %" PRIu64 " + free %" PRIu64,
			       st.span_total, st.alloc_total, st.free_total);
		struct order o = { 0, 0, 1 };
		assert_int_equal(vmem_walk(vm, VMEM_ALLOC | VMEM_FREE, order_cb, &o), 0);
		if (o.bad)
			report("walk out of order during the run");
		(void)vmem_size(vm, VMEM_ALLOC);
		if (round % 10 == 0)
			vmem_reap(vm);
		usleep(2000);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(w[i].tid, NULL);
	if (atomic_load(&g_err) != 0)
		fail_msg("%s", g_msg);
	for (vmem_size_t u = 0; u < UNITS; u++)
		if (atomic_load(&own[u]) != 0)
			fail_msg("unit %#" PRIx64 " still marked", (uint64_t)u);
}

static void check_clean(vmem_t *vm, vmem_size_t span)
{
	vmem_reap(vm);
	CHECK_ARENA(vm);
	vmem_stats_t st;
	get_stats(vm, &st);
	assert_int_equal(st.alloc_total, 0);
	assert_int_equal(st.cached_total, 0);
	assert_int_equal(st.nalloc, 0);
	assert_int_equal(st.span_total, span);
	assert_int_equal(st.free_total, span);
	assert_true(st.qcache_hits + st.qcache_misses <= st.allocs);
}

static void one_arena(vmem_size_t qmax, int flags, uint64_t seed)
{
	vmem_t *vm = vmem_create("shared", 0, UNITS, 1, qmax, flags);
	assert_non_null(vm);
	struct worker w[NTHREADS];
	run(vm, NULL, w, seed);
	check_clean(vm, UNITS);
	uint64_t ok = 0, fr = 0, nm = 0;
	for (int i = 0; i < NTHREADS; i++) {
		ok += w[i].ok[0];
		fr += w[i].frees[0];
		nm += w[i].enomem[0];
	}
	vmem_stats_t st;
	get_stats(vm, &st);
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
	one_arena(16, 0, tu_seed(1));
}

static void test_shared_noqcache(void **state)
{
	(void)state;
	one_arena(0, 0, tu_seed(2));
}

static void test_shared_debug(void **state)
{
	(void)state;
	one_arena(8, VMC_DEBUG, tu_seed(3));
}

static void test_parent_child(void **state)
{
	(void)state;
	uint64_t seed = tu_seed(4);
	vmem_t *p = vmem_create("parent", 0, UNITS, 1, 16, 0);
	vmem_t *c = vmem_create("child", 0, 0, 1, 8, 0);
	assert_non_null(p);
	assert_non_null(c);
	assert_int_equal(vmem_set_source(c, p, 256), 0);
	struct worker w[NTHREADS];
	run(c, p, w, seed);

	vmem_reap(c);
	CHECK_ARENA(c);
	vmem_stats_t cs, ps;
	get_stats(c, &cs);
	assert_int_equal(cs.alloc_total, 0);
	assert_int_equal(cs.import_total, 0);
	assert_int_equal(cs.span_total, 0);
	assert_int_equal(cs.imports, cs.releases);
	check_clean(p, UNITS);
	get_stats(p, &ps);

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
	own = calloc(UNITS, sizeof(*own));
	return own ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(own);
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
