/*
 * test_faults.c - failed mappings and memory accounting.
 *
 * Every mmap/mremap of the library goes through lib/os.c, where
 * os_fault_after(n) makes the nth mapping from now fail.  The sweep runs a
 * scripted workload once to count its mappings (N), then N more times,
 * failing mapping 1, 2, ..., N.  The workload covers vmem_create, vmem_add,
 * vmem_alloc and vmem_xalloc (every policy, constraints), a child importing
 * from a parent (vmem_set_source), enough allocations to grow the tag table
 * and the hash table several times, and enough frees to shrink the hash.
 * For every n:
 *  - every call succeeds or returns ENOMEM (vmem_create: NULL, errno ENOMEM);
 *  - a call that returned ENOMEM changed nothing but the fails counter;
 *  - at every checkpoint each arena passes vmem_check and its vmem_walk is
 *    exactly the model's (spans, allocations, free segments in between);
 *    arenas with quantum caches hold every allocation in an allocated
 *    segment, and their totals match;
 *  - after destroying everything os_mapped_bytes() is back at its baseline.
 *
 * The leak tests: many create/destroy cycles of every kind of arena come
 * back to the baseline each time, and a long churn (10^6 operations, times
 * VMEM_TEST_SCALE) never maps more than a small multiple of what its peak
 * number of segments needs.
 *
 * Figures for scripts/reliability.sh are printed on "# figure: " lines.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- what the workload holds in an arena --------------------------------- */

struct fa {
	vmem_addr_t a;
	vmem_size_t s; /* rounded */
	vmem_size_t asked;
	int x;
};

struct fsp {
	vmem_addr_t a;
	vmem_size_t s;
};

struct fm {
	const char *name;
	vmem_t *vm;
	vmem_size_t q, qmax;
	bool loose;        /* it holds cached sizes: slabs may hide segments */
	struct fsp sp[16]; /* spans it was given (create, add) */
	int nsp;
	struct fa *al;     /* outstanding allocations, unordered */
	size_t nal, cap;
	uint64_t enomem;
};

static void fm_push(struct fm *m, vmem_addr_t a, vmem_size_t s, vmem_size_t asked, int x)
{
	if (m->nal == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 1024;
		m->al = realloc(m->al, m->cap * sizeof(*m->al));
		assert_non_null(m->al);
	}
	m->al[m->nal++] = (struct fa){a, s, asked, x};
}

static void fm_drop(struct fm *m, size_t i)
{
	m->al[i] = m->al[--m->nal];
}

static int fa_cmp(const void *x, const void *y)
{
	const struct fa *a = x, *b = y;
	return a->a < b->a ? -1 : a->a > b->a;
}

/* ---- checking an arena against it ---------------------------------------- */

static struct model g_check; /* the reference model, rebuilt for every check */
static const char *g_where;
static struct seglist g_imp;

static void failed_at_checkpoint(const struct model *m, const char *msg)
{
	if (m != NULL)
		model_print(m, stderr);
	fail_msg("%s: %s", g_where, msg);
}

/* Check one arena: the spans it was given, the ones it imported, and
 * besides its own allocations those it holds for a child (held: spans the
 * child imported from it).  With quantum caches (loose) slabs may hide the
 * segments: every allocation must lie in an allocated segment. */
static void fm_verify(struct fm *m, const struct seglist *imported, const struct seglist *held,
		      const char *where)
{
	char why[600];
	g_where = where;
	if (!arena_check(m->vm, why, sizeof(why)))
		fail_msg("%s: %s: %s", where, m->name, why);
	struct model *c = &g_check;
	model_reset(c, m->name, m->vm, m->q);
	for (int i = 0; i < m->nsp; i++)
		model_add_span(c, m->sp[i].a, m->sp[i].s, false);
	for (size_t i = 0; imported && i < imported->n; i++)
		model_add_span(c, imported->v[i].addr, imported->v[i].size, true);
	/* in address order, each insertion appends (the workload's own order
	 * stays: it picks what to free by index) */
	struct fa *sorted = malloc((m->nal ? m->nal : 1) * sizeof(*sorted));
	assert_non_null(sorted);
	if (m->nal)
		memcpy(sorted, m->al, m->nal * sizeof(*sorted));
	qsort(sorted, m->nal, sizeof(*sorted), fa_cmp);
	for (size_t i = 0; i < m->nal; i++)
		model_insert_alloc(c, sorted[i].a, sorted[i].s, sorted[i].asked,
				   sorted[i].x ? MA_XALLOC : MA_ALLOC);
	free(sorted);
	for (size_t i = 0; held && i < held->n; i++)
		model_insert_alloc(c, held->v[i].addr, held->v[i].size, held->v[i].size, MA_IMPORT);
	model_read_walk(c);
	model_expect(c);
	if (m->loose)
		model_walk_loose(c, &c->walk);
	else if (!model_walk_exact(c, &c->walk, why, sizeof(why)))
		fail_msg("%s: %s: %s", where, m->name, why);

	vmem_stats_t st = stats_of(m->vm);
	if (st.span_total != c->span_total || st.import_total != c->import_total ||
	    st.alloc_total - st.cached_total != c->alloc_total ||
	    st.free_total != c->span_total - st.alloc_total || st.nspans != c->nsp)
		fail_msg("%s: %s: totals disagree with the model (span %" PRIu64 "/%" PRIu64
			 ", alloc %" PRIu64 "-%" PRIu64 "/%" PRIu64 ")",
			 where, m->name, st.span_total, c->span_total, st.alloc_total, st.cached_total,
			 c->alloc_total);
	if (!m->loose && st.nalloc != c->nal)
		fail_msg("%s: %s: nalloc %" PRIu64 ", model %zu", where, m->name, st.nalloc, c->nal);
}

/* ---- the scripted workload --------------------------------------------------- */

struct world {
	struct fm A; /* ids: quantum 1, no caches: exact */
	struct fm B; /* quantum 8, quantum caches up to 64 */
	struct fm P; /* parent: quantum 16, caches on (only uncached sizes used) */
	struct fm C; /* child of P: quantum 16, imports in 256-unit steps */
	uint64_t rng;
	uint64_t enomem;  /* calls that returned ENOMEM (or NULL) */
	uint64_t calls;
	const char *phase;
	bool faulting; /* a fault is armed: ENOMEM may come */
};

static void verify_world(struct world *w)
{
	/* the child was given no span: all of its spans are imports, which
	 * the parent holds as allocations */
	assert_int_equal(w->C.nsp, 0);
	walk_into(w->C.vm, VMEM_SPAN, &g_imp);
	fm_verify(&w->C, &g_imp, NULL, w->phase);
	fm_verify(&w->P, NULL, &g_imp, w->phase);
	fm_verify(&w->A, NULL, NULL, w->phase);
	fm_verify(&w->B, NULL, NULL, w->phase);
}

/* Stats that must not move when a call fails with ENOMEM (fails aside). */
static void expect_stats_same(const vmem_stats_t *a, const vmem_stats_t *b, uint64_t dfails,
			      const char *what)
{
	char why[200];
	if (!stats_same(a, b, dfails, why, sizeof(why)))
		fail_msg("%s: a call that failed with ENOMEM changed %s", what, why);
}

static vmem_t *create_retry(struct world *w, const char *name, vmem_addr_t base, vmem_size_t size,
			    vmem_size_t q, vmem_size_t qmax, int flags)
{
	for (int tries = 0; tries < 2; tries++) {
		size_t before = os_mapped_bytes();
		errno = 0;
		w->calls++;
		vmem_t *vm = vmem_create(name, base, size, q, qmax, flags);
		if (vm != NULL)
			return vm;
		if (errno != ENOMEM)
			fail_msg("vmem_create(%s) failed with errno %d", name, errno);
		if (os_mapped_bytes() != before)
			fail_msg("a failed vmem_create(%s) left %zu bytes mapped", name,
				 os_mapped_bytes() - before);
		w->enomem++;
	}
	fail_msg("vmem_create(%s) failed twice", name);
	return NULL;
}

static void fm_init(struct fm *m, const char *name, vmem_t *vm, vmem_size_t q, vmem_size_t qmax)
{
	free(m->al);
	memset(m, 0, sizeof(*m));
	m->name = name;
	m->vm = vm;
	m->q = q;
	m->qmax = qmax;
}

static void add_retry(struct world *w, struct fm *m, vmem_addr_t a, vmem_size_t s)
{
	for (int tries = 0; tries < 2; tries++) {
		vmem_stats_t b = stats_of(m->vm);
		w->calls++;
		int rc = vmem_add(m->vm, a, s, VM_NOSLEEP);
		if (rc == 0) {
			m->sp[m->nsp++] = (struct fsp){a, s};
			return;
		}
		if (rc != ENOMEM)
			fail_msg("vmem_add(%s, %#" PRIx64 ") returned %d", m->name, a, rc);
		vmem_stats_t c = stats_of(m->vm);
		expect_stats_same(&b, &c, 0, "vmem_add");
		w->enomem++;
		verify_world(w);
	}
	fail_msg("vmem_add failed twice");
}

/* One allocation on m (plain or constrained, random policy); true if it worked. */
static bool wl_alloc(struct world *w, struct fm *m, vmem_size_t size, bool x)
{
	uint64_t r = rand_next(&w->rng);
	int flags = policies[r % 5] | ((r >> 8) & 1 ? VM_NOSLEEP : 0);
	vmem_size_t align = 0, phase = 0, nocross = 0;
	vmem_addr_t lo = 0, hi = VMEM_ADDR_MAX;
	if (x) {
		align = m->q << ((r >> 12) % 6);
		phase = align > m->q ? m->q * ((r >> 20) % (align / m->q)) : 0;
		if ((r >> 28) % 3 == 0) {
			/* a block must have room for the size at the phase */
			nocross = m->q;
			while (nocross < size || phase % nocross + size > nocross)
				nocross <<= 1;
			nocross <<= (r >> 32) % 3;
		}
		if ((r >> 36) % 4 == 0 && m->nsp > 0) {
			lo = m->sp[0].a + m->q * ((r >> 40) % 64);
			hi = lo + m->sp[0].s / 2;
		}
	}
	vmem_stats_t b = stats_of(m->vm);
	vmem_addr_t a = 0;
	w->calls++;
	int rc = x ? vmem_xalloc(m->vm, size, align, phase, nocross, lo, hi, flags, &a)
		   : vmem_alloc(m->vm, size, flags, &a);
	if (rc == 0) {
		vmem_size_t rs = vmem_roundup_size(m->vm, size);
		struct fitq req = {rs, align ? align : m->q, phase, nocross, lo, hi};
		if (x && !fitq_holds(&req, a))
			fail_msg("%s: %s: xalloc result %#" PRIx64 " breaks its constraints", w->phase,
				 m->name, a);
		fm_push(m, a, rs, size, x);
		return true;
	}
	if (rc != ENOMEM)
		fail_msg("%s: %s: allocation returned %d", w->phase, m->name, rc);
	if (!w->faulting)
		fail_msg("%s: %s: ENOMEM without a fault: %s(%#" PRIx64 ", align %#" PRIx64
			 ", phase %#" PRIx64 ", nocross %#" PRIx64 ", [%#" PRIx64 ", %#" PRIx64
			 "], flags %#x)",
			 w->phase, m->name, x ? "vmem_xalloc" : "vmem_alloc", size, align, phase,
			 nocross, lo, hi, flags);
	w->enomem++;
	m->enomem++;
	if (m != &w->C) {
		/* the child may import and release on the way; the full check covers it */
		vmem_stats_t c = stats_of(m->vm);
		expect_stats_same(&b, &c, 1, m->name);
	}
	verify_world(w);
	return false;
}

static void wl_free(struct world *w, struct fm *m, size_t i)
{
	struct fa f = m->al[i];
	w->calls++;
	int rc = f.x ? vmem_xfree(m->vm, f.a, f.asked) : vmem_free(m->vm, f.a, f.asked);
	if (rc != 0)
		fail_msg("%s: %s: free of [%#" PRIx64 ", +%#" PRIx64 ") returned %d", w->phase,
			 m->name, f.a, f.s, rc);
	fm_drop(m, i);
}

/* n allocations of A: grows its tag table (remaps) and its hash (doublings). */
static void wl_fill(struct world *w, struct fm *m, unsigned int n, vmem_size_t maxsize, bool cached)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t r = rand_next(&w->rng);
		vmem_size_t size = 1 + r % maxsize;
		if (!cached && m->qmax != 0 && size <= m->qmax)
			size += m->qmax;
		wl_alloc(w, m, size, (r >> 60) == 0);
	}
}

static void wl_free_some(struct world *w, struct fm *m, unsigned int pct)
{
	size_t target = m->nal * (100 - pct) / 100;
	while (m->nal > target)
		wl_free(w, m, rand_next(&w->rng) % m->nal);
}

/* The whole script.  Returns with everything destroyed. */
static void workload(struct world *w, uint64_t seed, unsigned int scale)
{
	w->rng = seed;
	w->phase = "create";
	vmem_t *a = create_retry(w, "faults-A", 0, 1 << 20, 1, 0, 0);
	fm_init(&w->A, "A", a, 1, 0);
	w->A.sp[w->A.nsp++] = (struct fsp){0, 1 << 20};
	vmem_t *b = create_retry(w, "faults-B", 0x1000, 1 << 20, 8, 64, 0);
	fm_init(&w->B, "B", b, 8, 64);
	w->B.loose = true;
	w->B.sp[w->B.nsp++] = (struct fsp){0x1000, 1 << 20};
	vmem_t *p = create_retry(w, "faults-P", 0x100000, 1 << 28, 16, 64, VMC_DEBUG);
	fm_init(&w->P, "P", p, 16, 64);
	w->P.sp[w->P.nsp++] = (struct fsp){0x100000, 1 << 28};
	vmem_t *c = create_retry(w, "faults-C", 0, 0, 16, 0, 0);
	fm_init(&w->C, "C", c, 16, 0);
	assert_int_equal(vmem_set_source(c, p, 256), 0);
	verify_world(w);

	w->phase = "add";
	add_retry(w, &w->A, (vmem_addr_t)(TOP_END - (1 << 20)), 1 << 20); /* ends at 2^64 */
	add_retry(w, &w->A, 1 << 21, 1 << 20);
	add_retry(w, &w->A, 1 << 20, 1 << 20); /* adjacent to the first: not merged */
	add_retry(w, &w->B, 0x10000000, 1 << 16);
	verify_world(w);

	w->phase = "fill";
	wl_fill(w, &w->A, 10000 * scale, 4, false); /* the hash doubles 3 times */
	wl_fill(w, &w->B, 2000 * scale, 64, true);  /* cached sizes */
	wl_fill(w, &w->B, 200, 600, false);
	verify_world(w);

	w->phase = "import";
	for (unsigned int i = 0; i < 400 * scale; i++) {
		uint64_t r = rand_next(&w->rng);
		wl_alloc(w, &w->C, 16 * (1 + r % 40), (r >> 40) % 3 == 0);
		if (i % 4 == 0)
			wl_alloc(w, &w->P, 16 * (65 + r % 100), (r >> 50) % 2 == 0);
	}
	verify_world(w);

	w->phase = "free";
	wl_free_some(w, &w->A, 90); /* the hash shrinks */
	wl_free_some(w, &w->B, 100);
	wl_free_some(w, &w->C, 60); /* spans go back to P */
	wl_free_some(w, &w->P, 50);
	vmem_reap(w->B.vm);
	vmem_reap(w->C.vm);
	verify_world(w);

	w->phase = "refill";
	wl_fill(w, &w->A, 2000, 8, false);
	wl_fill(w, &w->C, 100, 64, false);
	verify_world(w);

	w->phase = "destroy";
	vmem_destroy(w->C.vm);
	fm_init(&w->C, "C", NULL, 16, 0);
	/* the child's imports all came back */
	fm_verify(&w->P, NULL, NULL, "after the child's destroy");
	vmem_destroy(w->B.vm);
	vmem_destroy(w->A.vm);
	/* P is VMC_DEBUG: its outstanding allocations are reported; keep quiet */
	struct redirect quiet;
	redirect_begin(&quiet, 2);
	vmem_destroy(w->P.vm);
	redirect_end(&quiet);
	fm_init(&w->A, "A", NULL, 1, 0);
	fm_init(&w->B, "B", NULL, 8, 64);
	fm_init(&w->P, "P", NULL, 16, 64);
	fm_init(&w->C, "C", NULL, 16, 0);
}

static uint64_t g_leaked;

TEST(test_fault_sweep)
{
	uint64_t seed = test_seed(0xfa17);
	unsigned int scale = 1;
	static struct world w;
	size_t baseline = os_mapped_bytes();
	/* a CPU migration would change which per-CPU magazines fill, and so
	 * how many mappings a run makes: the sweep must see the same count in
	 * every run of one seed (CI once saw fewer faults fire than counted) */
	pin_to_one_cpu(true);

	/* a clean run counts the mappings */
	uint64_t m0 = os_map_calls();
	workload(&w, seed, scale);
	uint64_t nmaps = os_map_calls() - m0;
	assert_int_equal(w.enomem, 0);
	assert_int_equal(os_mapped_bytes(), baseline);
	assert_true(nmaps > 20); /* tags and hash grew several times */
	print_message("# the workload makes %" PRIu64 " mappings in %" PRIu64 " calls\n", nmaps,
		      w.calls);

	uint64_t rounds = test_scale(1);
	uint64_t injected = 0, survived = 0, surfaced = 0;
	for (uint64_t round = 0; round < rounds; round++) {
		uint64_t s = seed + round;
		if (round > 0) {
			/* another seed: count its mappings again */
			m0 = os_map_calls();
			memset(&w, 0, sizeof(w));
			workload(&w, s, scale);
			nmaps = os_map_calls() - m0;
		}
		for (uint64_t n = 1; n <= nmaps + 2; n++) {
			memset(&w, 0, sizeof(w));
			w.faulting = true;
			size_t base = os_mapped_bytes();
			uint64_t at = os_map_calls() + n;
			os_fault_after(n);
			workload(&w, s, scale);
			bool fired = os_map_calls() >= at;
			os_fault_after(0);
			if (os_mapped_bytes() != base) {
				g_leaked += os_mapped_bytes() - base;
				fail_msg("fault at mapping %" PRIu64 ": %zu bytes still mapped after "
					 "destroying everything",
					 n, os_mapped_bytes() - base);
			}
			if (!fired)
				continue;
			injected++;
			survived++;
			if (w.enomem > 0)
				surfaced++;
		}
	}
	pin_to_one_cpu(false);
	assert_true(injected >= nmaps);
	print_message("# %" PRIu64 " faults surfaced as ENOMEM, %" PRIu64
		      " absorbed (best-effort hash resizes)\n",
		      surfaced, injected - surfaced);
	printf("# figure: faults injected %" PRIu64 "\n", injected);
	printf("# figure: faults survived %" PRIu64 "\n", survived);
	fflush(stdout);
}

/* ---- leaks -------------------------------------------------------------------- */

TEST(test_create_destroy_cycles)
{
	uint64_t rng = test_seed(0xc1c1e);
	uint64_t cycles = test_scale(test_sanitized() ? 300 : 1000);
	size_t baseline = os_mapped_bytes();
	for (uint64_t i = 0; i < cycles; i++) {
		uint64_t r = rand_next(&rng);
		vmem_size_t q = (vmem_size_t)1 << (r % 13);
		vmem_size_t qmax = (r >> 8) % 2 ? q * ((r >> 12) % 20) : 0;
		int flags = (r >> 16) % 8 == 0 ? VMC_DEBUG : 0;
		vmem_addr_t base = (r >> 20) % 2 ? (vmem_addr_t)(TOP_END - q * 4096) : q * 16;
		vmem_t *vm = vmem_create("cycle", base, q * 4096, q, qmax, flags);
		assert_non_null(vm);
		vmem_t *child = NULL, *pool = NULL;
		switch ((r >> 24) % 3) {
		case 1:
			child = vmem_create("cycle-child", 0, 0, q, qmax, 0);
			assert_non_null(child);
			assert_int_equal(vmem_set_source(child, vm, q * 8), 0);
			break;
		case 2:
			pool = vmem_create("cycle-pool", 1ull << 40, 1ull << 30, 1, 0, 0);
			child = vmem_create("cycle-cb", 0, 0, q, qmax, 0);
			assert_non_null(pool);
			assert_non_null(child);
			assert_int_equal(vmem_set_import(child, import_from_pool, release_to_pool, pool, 0), 0);
			break;
		default:
			break;
		}
		/* some use, a few allocations left outstanding on purpose */
		vmem_addr_t held[64];
		vmem_size_t hsize[64];
		int n = 0;
		unsigned int k = (unsigned int)(r >> 32) % 64;
		for (unsigned int j = 0; j < k; j++) {
			vmem_t *t = child && (j & 1) ? child : vm;
			vmem_addr_t a;
			if (vmem_alloc(t, q * (1 + j % 5), VM_NOSLEEP, &a) == 0 && t == vm && n < 64) {
				hsize[n] = q * (1 + j % 5);
				held[n++] = a;
			}
		}
		for (int j = 0; j < n; j += 2)
			assert_int_equal(vmem_free(vm, held[j], hsize[j]), 0);
		CHECK_ARENA(vm);
		if (child != NULL) {
			CHECK_AND_DESTROY(child);
		}
		if (pool != NULL)
			vmem_destroy(pool);
		if (flags & VMC_DEBUG) {
			/* leak reports go to stderr: not into the test log */
			struct redirect quiet;
			redirect_begin(&quiet, 2);
			vmem_destroy(vm);
			redirect_end(&quiet);
		} else {
			vmem_destroy(vm);
		}
		if (os_mapped_bytes() != baseline) {
			g_leaked += os_mapped_bytes() - baseline;
			fail_msg("cycle %" PRIu64 ": %zu bytes still mapped after destroy", i,
				 os_mapped_bytes() - baseline);
		}
	}
	print_message("# %" PRIu64 " create/destroy cycles, nothing left mapped\n", cycles);
}

/* A long churn: the live set wanders between empty and LIVE allocations;
 * memory must follow the peak number of segments, not the number of calls. */
#define LIVE 4096

static void churn(vmem_size_t qmax, uint64_t seed, uint64_t ops, uint64_t *done)
{
	size_t baseline = os_mapped_bytes();
	vmem_t *vm = vmem_create("churn", 0, 1 << 24, 1, qmax, 0);
	assert_non_null(vm);
	assert_int_equal(vmem_add(vm, (vmem_addr_t)(TOP_END - (1 << 20)), 1 << 20, 0), 0);
	/* what the arena maps before any allocation (caches included) is fixed */
	size_t fixed = os_mapped_bytes() - baseline;
	struct fa *live = calloc(LIVE, sizeof(*live));
	assert_non_null(live);
	size_t n = 0, target = LIVE / 2;
	uint64_t rng = seed, peak_segs = 0, peak_nalloc = 0;
	size_t peak_mapped = 0;
	for (uint64_t i = 0; i < ops; i++) {
		uint64_t r = rand_next(&rng);
		if (i % 65536 == 0)
			target = 1 + (size_t)(r >> 40) % LIVE; /* the live set wanders */
		if (n > 0 && (n >= target || (r & 3) == 0)) {
			size_t k = (size_t)(r >> 8) % n;
			int rc = live[k].x ? vmem_xfree(vm, live[k].a, live[k].asked)
					   : vmem_free(vm, live[k].a, live[k].asked);
			if (rc != 0)
				fail_msg("churn: free returned %d", rc);
			live[k] = live[--n];
			continue;
		}
		vmem_size_t size = 1 + (r >> 8) % ((r >> 16) % 8 == 0 ? 256 : 16);
		vmem_addr_t a;
		int x = (r >> 24) % 8 == 0, rc;
		if (x)
			rc = vmem_xalloc(vm, size, (vmem_size_t)1 << ((r >> 28) % 5), 0, 0, 0, VMEM_ADDR_MAX,
					 policies[(r >> 32) % 5], &a);
		else
			rc = vmem_alloc(vm, size, policies[(r >> 32) % 5], &a);
		if (rc != 0)
			fail_msg("churn: allocation returned %d", rc);
		live[n++] = (struct fa){a, size, size, x};
		if ((i & 15) == 0) {
			vmem_stats_t st = stats_of(vm);
			uint64_t segs = st.nalloc + st.nfree + st.nspans;
			if (segs > peak_segs)
				peak_segs = segs;
			if (st.nalloc > peak_nalloc)
				peak_nalloc = st.nalloc;
			size_t mapped = os_mapped_bytes() - baseline;
			if (mapped > peak_mapped)
				peak_mapped = mapped;
		}
	}
	*done += ops;
	CHECK_ARENA(vm);
	vmem_stats_t st = stats_of(vm);
	/* between two samples: at most 16 more allocations, two segments each */
	peak_segs += 32;
	peak_nalloc += 16;
	/* need: a 32-byte tag and its 16-byte cold part per segment, a 4-byte bucket per allocation;
	 * allow the fixed part plus 4x that (caches keep magazines and slabs
	 * besides) plus a few pages */
	size_t need = (size_t)peak_segs * 48 + (size_t)peak_nalloc * 4 + 4096;
	size_t limit = fixed + 4 * need + 32 * 4096;
	size_t mapped = os_mapped_bytes() - baseline;
	print_message("# churn (qcache_max %" PRIu64 "): %" PRIu64 " operations, peak %" PRIu64
		      " segments, %zu bytes mapped at the end (peak %zu, %zu at creation, bound %zu)\n",
		      qmax, ops, peak_segs, mapped, peak_mapped, fixed, limit);
	if (mapped > limit || peak_mapped > limit)
		fail_msg("churn: %zu bytes mapped (peak %zu) for at most %" PRIu64
			 " segments: more than %zu",
			 mapped, peak_mapped, peak_segs, limit);
	assert_true(st.tag_bytes + st.hash_bytes <= limit);
	while (n > 0) {
		n--;
		int rc = live[n].x ? vmem_xfree(vm, live[n].a, live[n].asked)
				   : vmem_free(vm, live[n].a, live[n].asked);
		assert_int_equal(rc, 0);
	}
	vmem_reap(vm);
	CHECK_ARENA(vm);
	st = stats_of(vm);
	assert_int_equal(st.alloc_total, 0);
	vmem_destroy(vm);
	free(live);
	if (os_mapped_bytes() != baseline) {
		g_leaked += os_mapped_bytes() - baseline;
		fail_msg("churn: %zu bytes still mapped after destroy", os_mapped_bytes() - baseline);
	}
}

static uint64_t g_churn_ops;

TEST(test_churn_bounded)
{
	uint64_t ops = test_scale(test_sanitized() ? 200000 : 1000000);
	churn(0, test_seed(0xc4u), ops / 2, &g_churn_ops);
	churn(16, test_seed(0xc5u), ops / 2, &g_churn_ops);
}

TEST(test_figures)
{
	printf("# figure: churn operations %" PRIu64 "\n", g_churn_ops);
	printf("# figure: leaked bytes %" PRIu64 "\n", g_leaked);
	fflush(stdout);
	assert_int_equal(g_leaked, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fault_sweep),
		cmocka_unit_test(test_create_destroy_cycles),
		cmocka_unit_test(test_churn_bounded),
		cmocka_unit_test(test_figures),
	};
	model_failure = failed_at_checkpoint;
	int rc = cmocka_run_group_tests_name("faults", tests, NULL, NULL);
	model_fini(&g_check);
	seglist_free(&g_imp);
	return rc;
}
