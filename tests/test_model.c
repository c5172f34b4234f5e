/*
 * test_model.c - randomized differential test of the public API against a
 * simple reference model, with the invariant checker after every operation.
 *
 * The model of an arena is a sorted set of spans (each added or imported)
 * and a set of outstanding allocations (address, rounded size, whether it
 * came from vmem_xalloc).  Its free segments are derived: the maximal free
 * runs inside each span.  After every operation the arena must show exactly
 * the model through vmem_walk (spans, allocated and free segments),
 * vmem_get_stats and vmem_size.
 *
 * Allocation results are checked against the contract:
 *  - every result lies in one free run and meets every constraint;
 *  - VM_FIRSTFIT gives the lowest valid address (computed by the model);
 *  - VM_NEXTFIT gives the first fit at or after the end of the previous
 *    VM_NEXTFIT allocation, wrapping; a failure does not move the cursor;
 *  - VM_BESTFIT picks a free run of the smallest size that can satisfy it;
 *  - ENOMEM only when no free run can hold the request (and, for arenas
 *    with a source, when the source could not meet it either).
 * Bad calls return EINVAL and change nothing at all; ENOMEM changes nothing
 * but the fails counter.
 *
 * Three kinds of runs: a plain arena (quantum 1, 8, 4096, random base,
 * spans added with vmem_add, adjacent ones too); a child importing from a
 * parent arena with vmem_set_source (the parent is modelled as well); and a
 * child importing through vmem_set_import callbacks that allocate from a
 * pool arena and check every release.
 *
 * VMEM_TEST_SEED replays a run; VMEM_TEST_SCALE=N makes runs N times longer.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

#define PUSH(arr, n, cap, val)                                                             \
	do {                                                                               \
		if ((n) == (cap)) {                                                        \
			(cap) = (cap) ? 2 * (cap) : 32;                                    \
			(arr) = realloc((arr), (cap) * sizeof(*(arr)));                    \
			if ((arr) == NULL)                                                 \
				abort();                                                   \
		}                                                                          \
		(arr)[(n)++] = (val);                                                      \
	} while (0)

static const int policies[] = {0, VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};
static const char *policy_name(int flags)
{
	switch (flags & (VM_INSTANTFIT | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT)) {
	case VM_INSTANTFIT: return "INSTANTFIT";
	case VM_BESTFIT: return "BESTFIT";
	case VM_FIRSTFIT: return "FIRSTFIT";
	case VM_NEXTFIT: return "NEXTFIT";
	default: return "default";
	}
}

/* ---- the model ------------------------------------------------------------- */

struct mspan {
	vmem_addr_t start;
	vmem_size_t size;
	bool imported;
};
struct mal {
	vmem_addr_t addr;
	vmem_size_t size;  /* rounded */
	vmem_size_t asked; /* as passed to the allocator */
	bool x;            /* from vmem_xalloc */
	bool bychild;      /* parent only: a span imported by the child */
};
struct run {
	vmem_addr_t start;
	vmem_size_t size;
};
struct ent {
	vmem_addr_t a;
	vmem_size_t s;
	int t;
};

enum kind { K_PLAIN, K_SOURCE, K_CB, K_PARENT };

struct model {
	const char *name;
	enum kind kind;
	vmem_t *vm;
	vmem_size_t q;
	vmem_addr_t create_base;
	vmem_addr_t reg_lo, reg_hi;   /* where vmem_add puts spans */
	vmem_addr_t cons_lo, cons_hi; /* where minaddr/maxaddr are drawn from */
	struct mspan *sp;
	size_t nsp, capsp;
	struct mal *al;
	size_t nal, capal;
	/* derived by model_derive() */
	struct run *runs;
	size_t nruns, capruns;
	struct ent *exp;
	size_t nexp, capexp;
	vmem_size_t span_total, alloc_total, import_total;
	/* counters */
	uint64_t allocs, frees, fails, imports, releases;
	bool cursor_known, cursor_lost;
	vmem_addr_t cursor;
	vmem_size_t limit, iq;
	struct model *parent; /* K_SOURCE */
	struct cbstate *cb;   /* K_CB */
	/* recently freed, for double frees */
	struct mal freed[16];
	unsigned int nfreed;
	/* tallies for the report */
	uint64_t n_ok, n_nomem, n_badcalls, n_imports;
};

static char g_ctx[600];
static uint64_t g_xfree_of_alloc_ok, g_xfree_of_alloc_einval;

static void model_dump(const struct model *m)
{
	fprintf(stderr, "# model %s: q=%#" PRIx64 " %zu spans, %zu allocations\n", m->name, m->q,
		m->nsp, m->nal);
	for (size_t i = 0; i < m->nsp; i++)
		fprintf(stderr, "#   span [%#" PRIx64 ", +%#" PRIx64 ")%s\n", m->sp[i].start,
			m->sp[i].size, m->sp[i].imported ? " imported" : "");
	for (size_t i = 0; i < m->nexp && i < 400; i++)
		fprintf(stderr, "#   %s [%#" PRIx64 ", +%#" PRIx64 ")\n",
			m->exp[i].t == VMEM_ALLOC ? "alloc" : "free ", m->exp[i].a, m->exp[i].s);
	fprintf(stderr, "# the arena:\n");
	vmem_dump(m->vm, stderr);
}

static void model_fail(struct model *m, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void model_fail(struct model *m, int line, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m)
		model_dump(m);
	fail_msg("test_model.c:%d: [%s] %s", line, g_ctx, msg);
}
#define MFAIL(m, ...) model_fail((m), __LINE__, __VA_ARGS__)

static int al_cmp(const void *a, const void *b)
{
	const struct mal *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sort the allocations and derive the free runs and the expected walk. */
static void model_derive(struct model *m)
{
	if (m->nal > 1)
		qsort(m->al, m->nal, sizeof(*m->al), al_cmp);
	m->nruns = m->nexp = 0;
	m->span_total = m->alloc_total = m->import_total = 0;
	size_t j = 0;
	for (size_t i = 0; i < m->nsp; i++) {
		const struct mspan *s = &m->sp[i];
		u128 pos = s->start, end = (u128)s->start + s->size;
		m->span_total += s->size;
		if (s->imported)
			m->import_total += s->size;
		while (j < m->nal && m->al[j].addr < end) {
			const struct mal *a = &m->al[j];
			if (a->addr < pos || (u128)a->addr + a->size > end)
				MFAIL(m, "model inconsistent: allocation %#" PRIx64 " not in a span",
				      a->addr);
			if (a->addr > pos) {
				struct run r = {(vmem_addr_t)pos, (vmem_size_t)(a->addr - pos)};
				PUSH(m->runs, m->nruns, m->capruns, r);
				struct ent e = {r.start, r.size, VMEM_FREE};
				PUSH(m->exp, m->nexp, m->capexp, e);
			}
			struct ent e = {a->addr, a->size, VMEM_ALLOC};
			PUSH(m->exp, m->nexp, m->capexp, e);
			m->alloc_total += a->size;
			pos = (u128)a->addr + a->size;
			j++;
		}
		if (pos < end) {
			struct run r = {(vmem_addr_t)pos, (vmem_size_t)(end - pos)};
			PUSH(m->runs, m->nruns, m->capruns, r);
			struct ent e = {r.start, r.size, VMEM_FREE};
			PUSH(m->exp, m->nexp, m->capexp, e);
		}
	}
	if (j != m->nal)
		MFAIL(m, "model inconsistent: allocation %#" PRIx64 " outside every span",
		      m->al[j].addr);
}

static void model_add_span(struct model *m, vmem_addr_t start, vmem_size_t size, bool imported)
{
	struct mspan s = {start, size, imported};
	PUSH(m->sp, m->nsp, m->capsp, s);
	size_t i = m->nsp - 1;
	while (i > 0 && m->sp[i - 1].start > start) {
		m->sp[i] = m->sp[i - 1];
		i--;
	}
	m->sp[i] = s;
}

static void model_remove_span(struct model *m, size_t i)
{
	memmove(&m->sp[i], &m->sp[i + 1], (m->nsp - i - 1) * sizeof(*m->sp));
	m->nsp--;
}

/* Index of the span that wholly contains [a, a + s), or -1. */
static long model_span_of(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < m->nsp; i++)
		if (a >= m->sp[i].start &&
		    (u128)a + s <= (u128)m->sp[i].start + m->sp[i].size)
			return (long)i;
	return -1;
}

static bool model_overlaps_span(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < m->nsp; i++)
		if ((u128)a < (u128)m->sp[i].start + m->sp[i].size &&
		    (u128)m->sp[i].start < (u128)a + s)
			return true;
	return false;
}

static bool model_span_busy(const struct model *m, const struct mspan *s)
{
	for (size_t j = 0; j < m->nal; j++)
		if (m->al[j].addr >= s->start &&
		    (u128)m->al[j].addr < (u128)s->start + s->size)
			return true;
	return false;
}

static long model_find_alloc(const struct model *m, vmem_addr_t a)
{
	for (size_t j = 0; j < m->nal; j++)
		if (m->al[j].addr == a)
			return (long)j;
	return -1;
}

static void model_remove_alloc(struct model *m, size_t j)
{
	m->al[j] = m->al[--m->nal];
}

/* ---- observing the arena ---------------------------------------------------- */

struct walkbuf {
	struct ent *v;
	size_t n, cap;
};

static void walk_cb(void *arg, vmem_addr_t a, vmem_size_t s, int t)
{
	struct walkbuf *w = arg;
	struct ent e = {a, s, t};
	PUSH(w->v, w->n, w->cap, e);
}

static void walk(vmem_t *vm, int mask, struct walkbuf *w)
{
	w->n = 0;
	int e = vmem_walk(vm, mask, walk_cb, w);
	if (e != 0)
		MFAIL(NULL, "vmem_walk returned %d", e);
}

static void get_stats(vmem_t *vm, vmem_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	int e = vmem_get_stats(vm, st);
	if (e != 0)
		MFAIL(NULL, "vmem_get_stats returned %d", e);
}

/* The whole observable state, for calls that must change nothing. */
struct snap {
	vmem_stats_t st;
	struct walkbuf w;
};

static void snap_take(vmem_t *vm, struct snap *s)
{
	get_stats(vm, &s->st);
	walk(vm, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, &s->w);
}

static void snap_free(struct snap *s)
{
	free(s->w.v);
	memset(s, 0, sizeof(*s));
}

/* Nothing may have changed but `fails` (by extra_fails). */
static void snap_same(struct model *m, struct snap *b, uint64_t extra_fails, const char *what)
{
	struct snap now = {0};
	snap_take(m->vm, &now);
	b->st.fails += extra_fails;
	if (memcmp(&b->st, &now.st, sizeof(now.st)) != 0) {
		uint64_t x[19], y[19];
		_Static_assert(sizeof(vmem_stats_t) == 8 + sizeof(x), "vmem_stats_t layout");
		memcpy(x, (const char *)&b->st + 8, sizeof(x));
		memcpy(y, (const char *)&now.st + 8, sizeof(y));
		static const char *names[] = {"span_total", "alloc_total", "free_total",
					      "cached_total", "import_total", "nspans", "nalloc",
					      "nfree", "allocs", "frees", "fails", "imports",
					      "releases", "waits", "tag_bytes", "qcache_hits",
					      "qcache_misses", "hash_bytes", "arena_bytes"};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (x[i] != y[i])
				MFAIL(m, "%s changed stats.%s: %" PRIu64 " -> %" PRIu64, what,
				      names[i], x[i], y[i]);
		MFAIL(m, "%s changed the statistics", what);
	}
	b->st.fails -= extra_fails;
	if (b->w.n != now.w.n)
		MFAIL(m, "%s changed the segments (%zu -> %zu)", what, b->w.n, now.w.n);
	for (size_t i = 0; i < now.w.n; i++)
		if (b->w.v[i].a != now.w.v[i].a || b->w.v[i].s != now.w.v[i].s ||
		    b->w.v[i].t != now.w.v[i].t)
			MFAIL(m, "%s changed segment %zu: [%#" PRIx64 ", +%#" PRIx64 ") type %d -> [%#" PRIx64
			      ", +%#" PRIx64 ") type %d",
			      what, i, b->w.v[i].a, b->w.v[i].s, b->w.v[i].t, now.w.v[i].a,
			      now.w.v[i].s, now.w.v[i].t);
	snap_free(&now);
	char why[512];
	int inv = vmem_check(m->vm, why, sizeof(why));
	if (inv != 0)
		MFAIL(m, "after %s: invariant I%d broken: %s", what, inv, why);
}

static struct walkbuf g_walk;

/* The arena must show exactly the model. */
static void model_verify(struct model *m)
{
	model_derive(m);
	walk(m->vm, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, &g_walk);
	size_t si = 0, ei = 0;
	for (size_t i = 0; i < g_walk.n; i++) {
		const struct ent *e = &g_walk.v[i];
		if (i > 0 && e->a < g_walk.v[i - 1].a)
			MFAIL(m, "vmem_walk not in address order at %#" PRIx64, e->a);
		if (e->t == VMEM_SPAN) {
			if (si >= m->nsp || e->a != m->sp[si].start || e->s != m->sp[si].size)
				MFAIL(m, "walk: span [%#" PRIx64 ", +%#" PRIx64 ") but model has %s",
				      e->a, e->s, si < m->nsp ? "another" : "no more");
			si++;
		} else if (e->t == VMEM_ALLOC || e->t == VMEM_FREE) {
			if (ei >= m->nexp)
				MFAIL(m, "walk: extra segment %s [%#" PRIx64 ", +%#" PRIx64 ")",
				      e->t == VMEM_ALLOC ? "alloc" : "free", e->a, e->s);
			const struct ent *x = &m->exp[ei];
			if (e->a != x->a || e->s != x->s || e->t != x->t)
				MFAIL(m,
				      "walk: segment %zu is %s [%#" PRIx64 ", +%#" PRIx64
				      "), model says %s [%#" PRIx64 ", +%#" PRIx64 ")",
				      ei, e->t == VMEM_ALLOC ? "alloc" : "free", e->a, e->s,
				      x->t == VMEM_ALLOC ? "alloc" : "free", x->a, x->s);
			ei++;
		} else {
			MFAIL(m, "walk: bad type %d", e->t);
		}
	}
	if (si != m->nsp || ei != m->nexp)
		MFAIL(m, "walk: %zu spans and %zu segments, model has %zu and %zu", si, ei, m->nsp,
		      m->nexp);

	vmem_stats_t st;
	get_stats(m->vm, &st);
#define STAT_EQ(field, want)                                                               \
	do {                                                                               \
		if ((uint64_t)st.field != (uint64_t)(want))                                \
			MFAIL(m, "stats." #field " = %" PRIu64 ", model says %" PRIu64,    \
			      (uint64_t)st.field, (uint64_t)(want));                       \
	} while (0)
	STAT_EQ(span_total, m->span_total);
	STAT_EQ(alloc_total, m->alloc_total);
	STAT_EQ(free_total, m->span_total - m->alloc_total);
	STAT_EQ(cached_total, 0);
	STAT_EQ(import_total, m->import_total);
	STAT_EQ(nspans, m->nsp);
	STAT_EQ(nalloc, m->nal);
	STAT_EQ(nfree, m->nruns);
	STAT_EQ(allocs, m->allocs);
	STAT_EQ(frees, m->frees);
	STAT_EQ(fails, m->fails);
	STAT_EQ(imports, m->imports);
	STAT_EQ(releases, m->releases);
	STAT_EQ(waits, 0);
	STAT_EQ(qcache_hits, 0);
	STAT_EQ(qcache_misses, 0);
#undef STAT_EQ
	if (vmem_size(m->vm, VMEM_ALLOC) != m->alloc_total)
		MFAIL(m, "vmem_size(VMEM_ALLOC) = %#" PRIx64, vmem_size(m->vm, VMEM_ALLOC));
	if (vmem_size(m->vm, VMEM_FREE) != m->span_total - m->alloc_total)
		MFAIL(m, "vmem_size(VMEM_FREE) = %#" PRIx64, vmem_size(m->vm, VMEM_FREE));
	if (vmem_size(m->vm, VMEM_ALLOC | VMEM_FREE) != m->span_total)
		MFAIL(m, "vmem_size(VMEM_ALLOC|VMEM_FREE) = %#" PRIx64,
		      vmem_size(m->vm, VMEM_ALLOC | VMEM_FREE));
	char why[512];
	int inv = vmem_check(m->vm, why, sizeof(why));
	if (inv != 0)
		MFAIL(m, "invariant I%d broken: %s", inv, why); /* CHECK_ARENA, with context */
}

/* ---- the fit reference ------------------------------------------------------- */

struct req {
	vmem_size_t size;  /* rounded */
	vmem_size_t align; /* effective: >= quantum */
	vmem_size_t phase, nocross;
	vmem_addr_t min, max;
};

static u128 phase_up(u128 lo, u128 align, u128 phase)
{
	if (lo <= phase)
		return phase;
	return phase + (lo - phase + align - 1) / align * align;
}

/* Lowest a >= lb in the run [start, start + size) meeting r. */
static bool ref_fit(vmem_addr_t start, vmem_size_t size, const struct req *r, vmem_addr_t lb,
		    vmem_addr_t *ap)
{
	u128 lo = start;
	if (r->min > lo)
		lo = r->min;
	if (lb > lo)
		lo = lb;
	u128 hi = (u128)start + size;
	if ((u128)r->max + 1 < hi)
		hi = (u128)r->max + 1;
	u128 a = phase_up(lo, r->align, r->phase);
	for (int i = 0; i < 3; i++) {
		if (a + r->size > hi)
			return false;
		if (r->nocross == 0 || a / r->nocross == (a + r->size - 1) / r->nocross) {
			*ap = (vmem_addr_t)a;
			return true;
		}
		a = phase_up((a / r->nocross + 1) * r->nocross, r->align, r->phase);
	}
	return false;
}

static bool req_holds(const struct req *r, vmem_addr_t a)
{
	u128 last = (u128)a + r->size - 1;
	if (last > VMEM_ADDR_MAX)
		return false;
	if (a % r->align != r->phase)
		return false;
	if (r->nocross && a / r->nocross != (vmem_addr_t)last / r->nocross)
		return false;
	return a >= r->min && last <= r->max;
}

/* Lowest fit at or above lb over the model's free runs. */
static bool model_lowest(const struct model *m, const struct req *r, vmem_addr_t lb,
			 vmem_addr_t *ap, size_t *runp)
{
	for (size_t i = 0; i < m->nruns; i++) {
		if ((u128)m->runs[i].start + m->runs[i].size <= lb)
			continue;
		if (ref_fit(m->runs[i].start, m->runs[i].size, r, lb, ap)) {
			if (runp)
				*runp = i;
			return true;
		}
	}
	return false;
}

static long model_run_of(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < m->nruns; i++)
		if (a >= m->runs[i].start &&
		    (u128)a + s <= (u128)m->runs[i].start + m->runs[i].size)
			return (long)i;
	return -1;
}

/* Round up to the quantum; false on overflow. */
static bool round_q(vmem_size_t s, vmem_size_t q, vmem_size_t *out)
{
	u128 r = ((u128)s + q - 1) / q * q;
	if (r > VMEM_ADDR_MAX)
		return false;
	*out = (vmem_size_t)r;
	return true;
}

/* ---- import callbacks -------------------------------------------------------- */

struct pair {
	vmem_addr_t a;
	vmem_size_t s;
};

struct cbstate {
	vmem_t *pool;
	vmem_size_t q, iq;
	struct pair *out; /* imported, not yet released */
	size_t nout, capout;
	struct pair *imp; /* this operation's imports */
	size_t nimp, capimp;
	struct pair *rel; /* this operation's releases */
	size_t nrel, caprel;
	uint64_t calls, refused;
	unsigned int fail_pct;
	uint64_t rng;
	bool bad;
	char err[300];
};

static int cb_import(void *arg, vmem_size_t size, int vmflags, vmem_addr_t *addrp)
{
	struct cbstate *c = arg;
	c->calls++;
	if (!c->bad && (size == 0 || size % c->q != 0 || size < c->iq)) {
		c->bad = true;
		snprintf(c->err, sizeof(c->err),
			 "import callback asked for %#" PRIx64 " (quantum %#" PRIx64
			 ", import quantum %#" PRIx64 ")",
			 size, c->q, c->iq);
	}
	if (!c->bad && (vmflags & VM_SLEEP)) {
		c->bad = true;
		snprintf(c->err, sizeof(c->err), "import callback got VM_SLEEP (flags %#x)",
			 vmflags);
	}
	if (c->fail_pct && tu_rand(&c->rng) % 100 < c->fail_pct) {
		c->refused++;
		return ENOMEM;
	}
	vmem_addr_t a;
	int e = vmem_alloc(c->pool, size, VM_NOSLEEP, &a);
	if (e != 0) {
		if (e != ENOMEM && !c->bad) {
			c->bad = true;
			snprintf(c->err, sizeof(c->err), "pool vmem_alloc(%#" PRIx64 ") = %d",
				 size, e);
		}
		return e;
	}
	struct pair p = {a, size};
	PUSH(c->out, c->nout, c->capout, p);
	PUSH(c->imp, c->nimp, c->capimp, p);
	*addrp = a;
	return 0;
}

static void cb_release(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	struct cbstate *c = arg;
	struct pair p = {addr, size};
	PUSH(c->rel, c->nrel, c->caprel, p);
	for (size_t i = 0; i < c->nout; i++) {
		if (c->out[i].a == addr && c->out[i].s == size) {
			c->out[i] = c->out[--c->nout];
			int e = vmem_free(c->pool, addr, size);
			if (e != 0 && !c->bad) {
				c->bad = true;
				snprintf(c->err, sizeof(c->err),
					 "release: pool vmem_free(%#" PRIx64 ", %#" PRIx64 ") = %d",
					 addr, size, e);
			}
			return;
		}
	}
	if (!c->bad) {
		c->bad = true;
		snprintf(c->err, sizeof(c->err),
			 "release callback got (%#" PRIx64 ", %#" PRIx64
			 "), which is not an outstanding import",
			 addr, size);
	}
}

/* ---- spans appearing and disappearing ------------------------------------------ */

/* Before an operation on an importing arena. */
struct importwatch {
	vmem_stats_t st;
	uint64_t pallocs, pfrees; /* the parent's counters */
	uint64_t cbcalls;
};

static void watch_begin(struct model *m, struct importwatch *w)
{
	get_stats(m->vm, &w->st);
	if (m->kind == K_SOURCE) {
		vmem_stats_t ps;
		get_stats(m->parent->vm, &ps);
		w->pallocs = ps.allocs;
		w->pfrees = ps.frees;
	}
	if (m->kind == K_CB) {
		m->cb->nimp = m->cb->nrel = 0;
		w->cbcalls = m->cb->calls;
	}
}

static bool pair_take(struct pair *v, size_t *n, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < *n; i++) {
		if (v[i].a == a && v[i].s == s) {
			v[i] = v[--*n];
			return true;
		}
	}
	return false;
}

/*
 * After an operation: compare the arena's spans with the model's and bring
 * the model up to date.  New spans must be imports; vanished spans must be
 * imports that are wholly free in the model.  Returns the number of new
 * spans; *nremoved gets the number of vanished ones.
 */
static size_t watch_end(struct model *m, struct importwatch *w, size_t *nremoved,
			vmem_size_t minimport)
{
	static struct walkbuf sw;
	walk(m->vm, VMEM_SPAN, &sw);
	vmem_stats_t st;
	get_stats(m->vm, &st);
	uint64_t dimp = st.imports - w->st.imports, drel = st.releases - w->st.releases;

	struct pair *added = NULL, *gone = NULL;
	size_t nadded = 0, capadded = 0, ngone = 0, capgone = 0;
	size_t i = 0, j = 0;
	while (i < sw.n || j < m->nsp) {
		if (j == m->nsp || (i < sw.n && sw.v[i].a < m->sp[j].start)) {
			struct pair p = {sw.v[i].a, sw.v[i].s};
			PUSH(added, nadded, capadded, p);
			i++;
		} else if (i == sw.n || m->sp[j].start < sw.v[i].a) {
			struct pair p = {m->sp[j].start, m->sp[j].size};
			PUSH(gone, ngone, capgone, p);
			j++;
		} else {
			if (sw.v[i].s != m->sp[j].size)
				MFAIL(m, "span at %#" PRIx64 " changed size %#" PRIx64 " -> %#" PRIx64,
				      sw.v[i].a, m->sp[j].size, sw.v[i].s);
			i++;
			j++;
		}
	}

	/* the counters must agree with what appeared and vanished */
	if (dimp < nadded || drel < ngone || dimp - nadded != drel - ngone)
		MFAIL(m,
		      "stats say %" PRIu64 " imports and %" PRIu64 " releases, but %zu spans "
		      "appeared and %zu vanished",
		      dimp, drel, nadded, ngone);

	for (size_t k = 0; k < ngone; k++) {
		long si = model_span_of(m, gone[k].a, gone[k].s);
		if (si < 0 || !m->sp[si].imported)
			MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") vanished but was not imported",
			      gone[k].a, gone[k].s);
		if (model_span_busy(m, &m->sp[si]))
			MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") released while allocated",
			      gone[k].a, gone[k].s);
		model_remove_span(m, (size_t)si);
	}
	for (size_t k = 0; k < nadded; k++) {
		if (model_overlaps_span(m, added[k].a, added[k].s))
			MFAIL(m, "new span [%#" PRIx64 ", +%#" PRIx64 ") overlaps another",
			      added[k].a, added[k].s);
		if (added[k].s % m->q != 0 || added[k].a % m->q != 0 || added[k].s < minimport)
			MFAIL(m, "imported span [%#" PRIx64 ", +%#" PRIx64 ") breaks the quanta",
			      added[k].a, added[k].s);
		model_add_span(m, added[k].a, added[k].s, true);
	}
	m->imports += dimp;
	m->releases += drel;
	m->n_imports += dimp;

	if (m->kind == K_SOURCE) {
		struct model *p = m->parent;
		vmem_stats_t ps;
		get_stats(p->vm, &ps);
		if (ps.allocs - w->pallocs != dimp || ps.frees - w->pfrees != drel)
			MFAIL(m,
			      "the parent counted %" PRIu64 " allocs and %" PRIu64
			      " frees for %" PRIu64 " imports and %" PRIu64 " releases",
			      ps.allocs - w->pallocs, ps.frees - w->pfrees, dimp, drel);
		p->allocs += dimp;
		p->frees += drel;
		if (ps.fails < p->fails)
			MFAIL(p, "the parent's fails went down");
		p->fails = ps.fails; /* failed imports may retry: not predictable */
		if (dimp || drel) {
			p->cursor_known = false; /* the child's flags may move it */
			p->cursor_lost = true;
		}
		for (size_t k = 0; k < ngone; k++) {
			long x = model_find_alloc(p, gone[k].a);
			if (x < 0 || !p->al[x].bychild || p->al[x].size != gone[k].s)
				MFAIL(p, "released span %#" PRIx64 " is not an import", gone[k].a);
			model_remove_alloc(p, (size_t)x);
		}
		for (size_t k = 0; k < nadded; k++) {
			struct mal a = {added[k].a, added[k].s, added[k].s, true, true};
			PUSH(p->al, p->nal, p->capal, a);
		}
		model_verify(p);
	}
	if (m->kind == K_CB) {
		struct cbstate *c = m->cb;
		if (c->bad)
			MFAIL(m, "%s", c->err);
		if (c->nimp != dimp || c->nrel != drel)
			MFAIL(m,
			      "callbacks saw %zu imports and %zu releases, stats %" PRIu64
			      " and %" PRIu64,
			      c->nimp, c->nrel, dimp, drel);
		/* what appeared and vanished is exactly what the callbacks handed over */
		struct pair *imp = malloc((c->nimp + 1) * sizeof(*imp));
		struct pair *rel = malloc((c->nrel + 1) * sizeof(*rel));
		if (imp == NULL || rel == NULL)
			abort();
		if (c->nimp)
			memcpy(imp, c->imp, c->nimp * sizeof(*imp));
		if (c->nrel)
			memcpy(rel, c->rel, c->nrel * sizeof(*rel));
		size_t ni = c->nimp, nr = c->nrel;
		/* an import released within the same call cancels out */
		for (size_t k = 0; k < nr;) {
			if (pair_take(imp, &ni, rel[k].a, rel[k].s))
				rel[k] = rel[--nr];
			else
				k++;
		}
		for (size_t k = 0; k < nadded; k++)
			if (!pair_take(imp, &ni, added[k].a, added[k].s))
				MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") appeared, not imported",
				      added[k].a, added[k].s);
		for (size_t k = 0; k < ngone; k++)
			if (!pair_take(rel, &nr, gone[k].a, gone[k].s))
				MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") vanished, not released",
				      gone[k].a, gone[k].s);
		if (ni || nr)
			MFAIL(m, "callbacks and spans disagree");
		free(imp);
		free(rel);
		/* the pool holds exactly the outstanding imports */
		vmem_size_t sum = 0;
		for (size_t k = 0; k < c->nout; k++)
			sum += c->out[k].s;
		vmem_stats_t ps;
		get_stats(c->pool, &ps);
		if (ps.alloc_total != sum || ps.nalloc != c->nout)
			MFAIL(m, "the pool holds %#" PRIx64 " in %" PRIu64 ", imports %#" PRIx64
			      " in %zu",
			      ps.alloc_total, ps.nalloc, sum, c->nout);
		CHECK_ARENA(c->pool);
	}
	free(added);
	free(gone);
	if (nremoved)
		*nremoved = ngone;
	return nadded;
}

/* ---- operations ---------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s, uint64_t n)
{
	return n ? tu_rand(s) % n : 0;
}

struct opreq {
	bool x;
	vmem_size_t asked, align, phase, nocross;
	vmem_addr_t min, max;
	int flags;
	struct req r; /* effective */
};

static int opreq_str(char *buf, size_t len, const struct opreq *o)
{
	if (o->x)
		return snprintf(buf, len,
				"vmem_xalloc(size %#" PRIx64 ", align %#" PRIx64
				", phase %#" PRIx64 ", nocross %#" PRIx64 ", min %#" PRIx64
				", max %#" PRIx64 ", %s%s)",
				o->asked, o->align, o->phase, o->nocross, o->min, o->max,
				policy_name(o->flags), (o->flags & VM_NOSLEEP) ? "|NOSLEEP" : "");
	return snprintf(buf, len, "vmem_alloc(size %#" PRIx64 ", %s%s)", o->asked,
			policy_name(o->flags), (o->flags & VM_NOSLEEP) ? "|NOSLEEP" : "");
}

/* A random valid request; [lo, hi) is where the arena's resources are. */
static void gen_req(const struct model *m, uint64_t *s, bool x, vmem_addr_t lo, vmem_addr_t hi,
		    struct opreq *o)
{
	const vmem_size_t q = m->q;
	memset(o, 0, sizeof(*o));
	o->x = x;
	uint64_t units;
	switch (rnd(s, 10)) {
	case 0:
		units = 1 + rnd(s, 256);
		break;
	case 1:
	case 2:
	case 3:
		units = 1 + rnd(s, 32);
		break;
	default:
		units = 1 + rnd(s, 4);
		break;
	}
	o->asked = units * q - rnd(s, q);
	o->r.size = units * q;
	o->flags = policies[rnd(s, 5)] | (rnd(s, 2) ? VM_NOSLEEP : 0);
	o->r.align = q;
	o->r.min = VMEM_ADDR_MIN;
	o->r.max = VMEM_ADDR_MAX;
	o->max = VMEM_ADDR_MAX;
	if (!x)
		return;
	uint64_t c = rnd(s, 20);
	o->align = c < 6 ? 0 : c < 19 ? q << rnd(s, 9) : q << (9 + rnd(s, 8));
	o->r.align = o->align ? o->align : q;
	o->phase = rnd(s, 2) ? 0 : rnd(s, o->r.align / q) * q;
	if (o->align == 0)
		o->phase = 0;
	o->r.phase = o->phase;
	if (rnd(s, 10) < 3) {
		vmem_size_t nc = q;
		while (nc < o->r.size)
			nc <<= 1;
		o->nocross = nc << rnd(s, 4);
	}
	o->r.nocross = o->nocross;
	if (rnd(s, 2)) {
		o->min = lo + rnd(s, hi - lo);
		if (rnd(s, 2))
			o->min -= o->min % q;
	}
	if (rnd(s, 2)) {
		vmem_addr_t base = o->min > lo ? o->min : lo;
		o->max = base + rnd(s, hi > base ? hi - base : 1);
		if (rnd(s, 2))
			o->max = o->max - o->max % q + q - 1;
		if (o->max < o->min)
			o->max = o->min;
	}
	o->r.min = o->min;
	o->r.max = o->max;
}

/* Arena range for constraints: from the lowest resource to the highest. */
static void model_range(const struct model *m, vmem_addr_t *lo, vmem_addr_t *hi)
{
	*lo = m->cons_lo;
	*hi = m->cons_hi;
}

static void do_alloc(struct model *m, const struct opreq *o)
{
	const struct req *r = &o->r;
	char desc[300];
	opreq_str(desc, sizeof(desc), o);
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen, "%s", desc);

	model_derive(m);
	vmem_addr_t pre_low = 0;
	bool can_pre = model_lowest(m, r, 0, &pre_low, NULL);
	/* the parent, before: can it meet the request? */
	bool parent_can = false;
	if (m->kind == K_SOURCE) {
		model_derive(m->parent);
		vmem_addr_t pa;
		parent_can = model_lowest(m->parent, r, 0, &pa, NULL);
	}
	struct snap before = {0};
	snap_take(m->vm, &before);
	struct importwatch w;
	if (m->kind != K_PLAIN && m->kind != K_PARENT)
		watch_begin(m, &w);

	vmem_addr_t a = 0x5a5a5a5a5a5a5a5aull;
	int e = o->x ? vmem_xalloc(m->vm, o->asked, o->align, o->phase, o->nocross, o->min,
				   o->max, o->flags, &a)
		     : vmem_alloc(m->vm, o->asked, o->flags, &a);
	if (e != 0 && e != ENOMEM)
		MFAIL(m, "returned %d", e);

	size_t nnew = 0, ngone = 0;
	if (m->kind != K_PLAIN && m->kind != K_PARENT) {
		/* at least the import quantum; but a span from a source must fit
		 * in one nocross block, so there it may be just the request */
		vmem_size_t minimport = m->iq > r->size ? m->iq : r->size;
		/* a request is met through its source whenever the source can
		 * meet it: when no span of import_quantum can be had (no room,
		 * or no nocross block holds one), the child imports just it */
		if (m->kind == K_SOURCE)
			minimport = r->size;
		nnew = watch_end(m, &w, &ngone, minimport);
		if (ngone)
			MFAIL(m, "an allocation released %zu spans", ngone);
		if (nnew && can_pre)
			MFAIL(m, "imported although %#" PRIx64 " fits in the arena", pre_low);
		if (nnew && m->limit && m->import_total > m->limit)
			MFAIL(m, "imported total %#" PRIx64 " is over the limit %#" PRIx64,
			      m->import_total, m->limit);
		if (m->kind == K_CB && !can_pre && m->limit == 0 && m->cb->calls == w.cbcalls)
			MFAIL(m, "the arena could not meet the request but did not call importfn");
	}
	model_derive(m);

	if (e == 0) {
		if (a + (r->size - 1) < a)
			MFAIL(m, "result %#" PRIx64 " wraps", a);
		long ri = model_run_of(m, a, r->size);
		if (ri < 0)
			MFAIL(m, "result [%#" PRIx64 ", +%#" PRIx64 ") is not inside one free run",
			      a, r->size);
		if (!req_holds(r, a))
			MFAIL(m, "result %#" PRIx64 " breaks the constraints", a);
		if (nnew && !m->sp[model_span_of(m, a, r->size)].imported)
			MFAIL(m, "imported but result %#" PRIx64 " is not in an imported span", a);
		int pol = o->flags & VM_POLICIES;
		vmem_addr_t want;
		if (!model_lowest(m, r, 0, &want, NULL))
			MFAIL(m, "model finds no fit but the arena returned %#" PRIx64, a);
		if (pol == VM_FIRSTFIT && a != want)
			MFAIL(m, "FIRSTFIT returned %#" PRIx64 ", the lowest fit is %#" PRIx64, a,
			      want);
		if (pol == VM_NEXTFIT) {
			vmem_addr_t nf;
			if (m->cursor_known) {
				if (!model_lowest(m, r, m->cursor, &nf, NULL))
					nf = want; /* wrap to the start */
				if (a != nf)
					MFAIL(m,
					      "NEXTFIT returned %#" PRIx64 ", expected %#" PRIx64
					      " (cursor %#" PRIx64 ")",
					      a, nf, m->cursor);
			} else if (!m->cursor_lost) {
				/* no previous NEXTFIT: from the arena's start, or from
				 * its base as created */
				if (!model_lowest(m, r, m->create_base, &nf, NULL))
					nf = want;
				if (a != want && a != nf)
					MFAIL(m,
					      "first NEXTFIT returned %#" PRIx64 ", expected %#" PRIx64
					      " or %#" PRIx64,
					      a, want, nf);
			}
			m->cursor = a + r->size;
			m->cursor_known = true;
		}
		if (pol == VM_BESTFIT) {
			vmem_size_t best = VMEM_ADDR_MAX;
			for (size_t i = 0; i < m->nruns; i++) {
				vmem_addr_t t;
				if (m->runs[i].size < best &&
				    ref_fit(m->runs[i].start, m->runs[i].size, r, 0, &t))
					best = m->runs[i].size;
			}
			if (m->runs[ri].size != best)
				MFAIL(m,
				      "BESTFIT chose a free segment of %#" PRIx64
				      ", the smallest that fits has %#" PRIx64,
				      m->runs[ri].size, best);
		}
		struct mal al = {a, r->size, o->asked, o->x, false};
		PUSH(m->al, m->nal, m->capal, al);
		m->allocs++;
		m->n_ok++;
	} else {
		vmem_addr_t t;
		if (model_lowest(m, r, 0, &t, NULL))
			MFAIL(m, "ENOMEM but %#" PRIx64 " fits", t);
		if (m->kind == K_SOURCE && parent_can) {
			/* the source could meet it: only an import quantum or the
			 * limit may excuse the failure */
			bool excused = false;
			if (m->iq && (r->size < m->iq || r->size % m->iq != 0))
				excused = true;
			if (m->limit && m->import_total + r->size > m->limit)
				excused = true;
			if (!excused)
				MFAIL(m, "ENOMEM although the source can meet the request");
		}
		if (m->kind == K_CB && m->cb->nimp > 0 && o->min == 0 && o->max == VMEM_ADDR_MAX &&
		    o->nocross == 0)
			MFAIL(m, "ENOMEM after importing %zu span(s) for an unbounded request",
			      m->cb->nimp);
		m->fails++;
		m->n_nomem++;
		if (m->kind == K_PLAIN || m->kind == K_PARENT)
			snap_same(m, &before, 1, "ENOMEM");
	}
	snap_free(&before);
	model_verify(m);
	g_ctx[ctxlen] = '\0';
}

enum freeclass { F_GOOD, F_BAD, F_AMBIG };

static enum freeclass classify_free(const struct model *m, bool xfn, vmem_addr_t a, vmem_size_t s,
				    long *idx)
{
	vmem_size_t rs;
	*idx = -1;
	if (s == 0 || !round_q(s, m->q, &rs))
		return F_BAD;
	long j = model_find_alloc(m, a);
	if (j < 0 || m->al[j].size != rs || m->al[j].bychild)
		return F_BAD;
	*idx = j;
	if (!xfn)
		return F_GOOD; /* qcache_max is 0: vmem_free of an xalloc acts as vmem_xfree */
	return m->al[j].x ? F_GOOD : F_AMBIG;
}

static void do_free(struct model *m, bool xfn, vmem_addr_t a, vmem_size_t s, const char *why)
{
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen,
		 "%s(%#" PRIx64 ", %#" PRIx64 ") [%s]", xfn ? "vmem_xfree" : "vmem_free", a, s,
		 why);
	long j;
	enum freeclass fc = classify_free(m, xfn, a, s, &j);
	struct snap before = {0};
	snap_take(m->vm, &before);
	struct importwatch w;
	bool importing = m->kind == K_SOURCE || m->kind == K_CB;
	if (importing)
		watch_begin(m, &w);
	uint64_t cbcalls = m->kind == K_CB ? m->cb->calls : 0;

	int e = xfn ? vmem_xfree(m->vm, a, s) : vmem_free(m->vm, a, s);

	if (fc == F_AMBIG) {
		if (e == 0)
			g_xfree_of_alloc_ok++;
		else if (e == EINVAL)
			g_xfree_of_alloc_einval++;
		else
			MFAIL(m, "returned %d", e);
	}
	if (fc == F_BAD || (fc == F_AMBIG && e != 0)) {
		if (e != EINVAL)
			MFAIL(m, "a bad free returned %d, not EINVAL", e);
		snap_same(m, &before, 0, "a bad free");
		if (m->kind == K_CB && (m->cb->calls != cbcalls || m->cb->nrel))
			MFAIL(m, "a bad free called back");
		m->n_badcalls++;
	} else {
		if (e != 0)
			MFAIL(m, "a good free returned %d", e);
		struct mal old = m->al[j];
		model_remove_alloc(m, (size_t)j);
		m->frees++;
		m->freed[m->nfreed++ % 16] = old;
		if (importing) {
			long si = model_span_of(m, old.addr, old.size);
			struct mspan sp = m->sp[si];
			bool wholly = !model_span_busy(m, &sp);
			size_t ngone = 0;
			size_t nnew = watch_end(m, &w, &ngone, 0);
			if (nnew)
				MFAIL(m, "a free imported %zu spans", nnew);
			bool still = model_span_of(m, sp.start, sp.size) >= 0;
			if (sp.imported && wholly && still)
				MFAIL(m,
				      "imported span [%#" PRIx64 ", +%#" PRIx64
				      ") is wholly free but was not released",
				      sp.start, sp.size);
			if (!(sp.imported && wholly) && !still)
				MFAIL(m, "span released while not wholly free");
		}
	}
	snap_free(&before);
	model_verify(m);
	g_ctx[ctxlen] = '\0';
}

/* A free of an outstanding allocation, by either function. */
static void op_good_free(struct model *m, uint64_t *s)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nal; i++)
		n += !m->al[i].bychild;
	if (n == 0)
		return;
	size_t k = rnd(s, n), j = 0;
	for (;; j++)
		if (!m->al[j].bychild && k-- == 0)
			break;
	struct mal a = m->al[j];
	bool xfn;
	if (a.x)
		xfn = rnd(s, 5) != 0; /* vmem_free of an xalloc segment is fine here */
	else
		xfn = rnd(s, 10) == 0; /* vmem_xfree of an alloc segment: see the report */
	do_free(m, xfn, a.addr, a.asked, "good");
}

static void op_bad_free(struct model *m, uint64_t *s)
{
	vmem_addr_t a = 0;
	vmem_size_t sz = m->q;
	bool xfn = rnd(s, 2);
	const char *why = NULL;
	long j = m->nal ? (long)rnd(s, m->nal) : -1;
	if (j >= 0 && m->al[j].bychild)
		j = -1;
	switch (rnd(s, 7)) {
	case 0: /* never allocated: inside a free run */
		if (m->nruns == 0)
			return;
		{
			const struct run *r = &m->runs[rnd(s, m->nruns)];
			a = r->start + rnd(s, r->size / m->q) * m->q;
			sz = m->q * (1 + rnd(s, 4));
		}
		why = "never allocated";
		break;
	case 1: /* double free */
		if (m->nfreed == 0)
			return;
		{
			const struct mal *f = &m->freed[rnd(s, m->nfreed < 16 ? m->nfreed : 16)];
			a = f->addr;
			sz = f->asked;
			xfn = f->x;
		}
		why = "double free";
		break;
	case 2: /* wrong size */
		if (j < 0)
			return;
		a = m->al[j].addr;
		xfn = m->al[j].x;
		switch (rnd(s, 3)) {
		case 0:
			sz = m->al[j].size + m->q;
			break;
		case 1:
			sz = m->al[j].size > m->q ? m->al[j].size - m->q : 0;
			break;
		default:
			sz = 0;
			break;
		}
		why = "wrong size";
		break;
	case 3: /* part of a segment */
		if (j < 0 || m->al[j].size <= m->q)
			return;
		a = m->al[j].addr + m->q * (1 + rnd(s, m->al[j].size / m->q - 1));
		sz = rnd(s, 2) ? m->q : m->al[j].asked;
		xfn = m->al[j].x;
		why = "part of a segment";
		break;
	case 4: /* outside every span */
		a = m->reg_hi + m->q * rnd(s, 1000);
		if (m->nsp && rnd(s, 2)) {
			const struct mspan *p = &m->sp[rnd(s, m->nsp)];
			a = p->start + p->size; /* just past a span: maybe a gap */
		}
		if (model_span_of(m, a, 1) >= 0)
			return;
		sz = m->q * (1 + rnd(s, 4));
		why = "outside every span";
		break;
	case 5: /* a size whose rounding overflows */
		if (j < 0)
			return;
		a = m->al[j].addr;
		sz = VMEM_ADDR_MAX - rnd(s, m->q > 1 ? m->q - 1 : 1);
		if (m->q == 1)
			sz = m->al[j].size + VMEM_ADDR_MAX / 2;
		xfn = m->al[j].x;
		why = "huge size";
		break;
	default: /* vmem_xfree at an allocated start with the other size */
		if (j < 0)
			return;
		a = m->al[j].addr;
		sz = m->al[j].asked + m->q * (1 + rnd(s, 3));
		xfn = !m->al[j].x;
		why = "other function, wrong size";
		break;
	}
	long idx;
	if (classify_free(m, xfn, a, sz, &idx) != F_BAD)
		return; /* happens to be a real allocation */
	do_free(m, xfn, a, sz, why);
}

/* vmem_add of a new span, often right next to an existing one. */
static void op_add(struct model *m, uint64_t *s)
{
	const vmem_size_t q = m->q;
	vmem_size_t size = q * (1 + rnd(s, rnd(s, 4) ? 64 : 2048));
	vmem_addr_t a;
	if (m->nsp && rnd(s, 2)) {
		const struct mspan *p = &m->sp[rnd(s, m->nsp)];
		if (p->imported)
			return;
		if (rnd(s, 2))
			a = p->start + p->size; /* adjacent above */
		else if (p->start >= size)
			a = p->start - size; /* adjacent below */
		else
			return;
	} else {
		a = m->reg_lo + rnd(s, (m->reg_hi - m->reg_lo) / q) * q;
	}
	if ((u128)a + size > m->reg_hi || a < m->reg_lo || model_overlaps_span(m, a, size))
		return;
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen, "vmem_add(%#" PRIx64 ", %#" PRIx64 ")",
		 a, size);
	int e = vmem_add(m->vm, a, size, rnd(s, 2) ? VM_NOSLEEP : 0);
	if (e != 0)
		MFAIL(m, "vmem_add returned %d", e);
	model_add_span(m, a, size, false);
	model_verify(m);
	g_ctx[ctxlen] = '\0';
}

static void op_bad_add(struct model *m, uint64_t *s)
{
	const vmem_size_t q = m->q;
	vmem_addr_t a;
	vmem_size_t size = q * (1 + rnd(s, 16));
	switch (rnd(s, 4)) {
	case 0: /* overlapping */
		if (m->nsp == 0)
			return;
		{
			const struct mspan *p = &m->sp[rnd(s, m->nsp)];
			a = p->start + rnd(s, p->size / q) * q;
			if (rnd(s, 2) && a >= size / 2 + q) {
				a -= (size / 2 / q) * q; /* starts before, ends inside */
			}
		}
		if (!model_overlaps_span(m, a, size))
			return;
		break;
	case 1: /* misaligned */
		if (q == 1)
			return;
		a = m->reg_lo + rnd(s, (m->reg_hi - m->reg_lo) / q) * q + 1 + rnd(s, q - 1);
		break;
	case 2: /* misaligned size */
		if (q == 1)
			return;
		a = m->reg_lo + rnd(s, (m->reg_hi - m->reg_lo) / q) * q;
		size += 1 + rnd(s, q - 1);
		break;
	default: /* empty, or wrapping */
		a = m->reg_lo + rnd(s, (m->reg_hi - m->reg_lo) / q) * q;
		if (a < q)
			a = q;
		size = rnd(s, 2) ? 0 : (vmem_size_t)0 - a + q; /* ends at 2^64 + q */
		break;
	}
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen, "bad vmem_add(%#" PRIx64 ", %#" PRIx64 ")",
		 a, size);
	struct snap b = {0};
	snap_take(m->vm, &b);
	int e = vmem_add(m->vm, a, size, 0);
	if (e != EINVAL)
		MFAIL(m, "bad vmem_add returned %d", e);
	snap_same(m, &b, 0, "a bad vmem_add");
	snap_free(&b);
	m->n_badcalls++;
	g_ctx[ctxlen] = '\0';
}

/* Allocation calls with bad arguments: EINVAL, nothing changes. */
static void op_bad_alloc(struct model *m, uint64_t *s)
{
	const vmem_size_t q = m->q;
	vmem_addr_t lo, hi;
	model_range(m, &lo, &hi);
	struct opreq o;
	gen_req(m, s, true, lo, hi, &o);
	vmem_addr_t a, *ap = &a;
	bool x = true;
	const char *why;
	switch (rnd(s, 12)) {
	case 0:
		o.asked = 0;
		x = rnd(s, 2);
		why = "size 0";
		break;
	case 1:
		ap = NULL;
		x = rnd(s, 2);
		why = "NULL addrp";
		break;
	case 2:
		o.flags = VM_BESTFIT | VM_FIRSTFIT;
		x = rnd(s, 2);
		why = "two policies";
		break;
	case 3:
		o.flags = VM_SLEEP | VM_NOSLEEP;
		x = rnd(s, 2);
		why = "SLEEP|NOSLEEP";
		break;
	case 4:
		o.flags = (rnd(s, 2) ? VMC_DEBUG : 0x4) | VM_NOSLEEP;
		x = rnd(s, 2);
		why = "unknown flag";
		break;
	case 5:
		o.align = q * 3;
		why = "align not a power of two";
		break;
	case 6:
		if (q == 1)
			return;
		o.align = q / 2;
		o.phase = 0;
		why = "align below the quantum";
		break;
	case 7:
		o.align = q << rnd(s, 4);
		o.phase = o.align + q * rnd(s, 4);
		why = "phase >= align";
		break;
	case 8:
		if (q == 1)
			return;
		o.align = q * 4;
		o.phase = 1 + rnd(s, q - 1);
		why = "phase not a multiple of the quantum";
		break;
	case 9:
		o.nocross = o.r.size > q ? o.r.size / 2 : 0;
		if (o.nocross == 0 || o.nocross < q)
			return;
		{
			vmem_size_t p = q;
			while (p * 2 <= o.nocross)
				p *= 2;
			o.nocross = p; /* a power of two below the size */
			if (o.nocross >= o.r.size)
				return;
		}
		why = "nocross < size";
		break;
	case 10:
		o.nocross = q * 3;
		if (o.r.size > o.nocross)
			o.nocross = q * 3 * ((o.r.size + 3 * q - 1) / (3 * q));
		if ((o.nocross & (o.nocross - 1)) == 0)
			return;
		why = "nocross not a power of two";
		break;
	default:
		o.min = lo + 1 + rnd(s, hi - lo);
		o.max = o.min - 1 - rnd(s, o.min - lo);
		why = "minaddr > maxaddr";
		break;
	}
	if (o.align == 0 && o.phase != 0)
		o.phase = 0;
	char desc[300];
	opreq_str(desc, sizeof(desc), &o);
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen, "bad (%s) %s %s", why,
		 x ? "" : "as vmem_alloc", desc);
	struct snap b = {0};
	snap_take(m->vm, &b);
	uint64_t cbcalls = m->kind == K_CB ? m->cb->calls : 0;
	int e = x ? vmem_xalloc(m->vm, o.asked, o.align, o.phase, o.nocross, o.min, o.max, o.flags,
				ap)
		  : vmem_alloc(m->vm, o.asked, o.flags, ap);
	if (e != EINVAL)
		MFAIL(m, "returned %d, not EINVAL", e);
	snap_same(m, &b, 0, "an allocation with bad arguments");
	if (m->kind == K_CB && m->cb->calls != cbcalls)
		MFAIL(m, "a bad allocation called the import callback");
	snap_free(&b);
	m->n_badcalls++;
	g_ctx[ctxlen] = '\0';
}

static void op_contains(struct model *m, uint64_t *s)
{
	vmem_addr_t a;
	vmem_size_t sz = rnd(s, 3) ? m->q * rnd(s, 64) : rnd(s, 8);
	if (m->nsp && rnd(s, 2)) {
		const struct mspan *p = &m->sp[rnd(s, m->nsp)];
		a = p->start + rnd(s, p->size + 1) - (rnd(s, 3) == 0 ? rnd(s, 3) : 0);
		if (rnd(s, 3) == 0)
			sz = p->start + p->size - a + rnd(s, 2);
	} else {
		a = m->reg_lo + rnd(s, m->reg_hi - m->reg_lo);
	}
	int want = sz > 0 && model_span_of(m, a, sz) >= 0;
	int got = vmem_contains(m->vm, a, sz);
	if (got != want)
		MFAIL(m, "vmem_contains(%#" PRIx64 ", %#" PRIx64 ") = %d, model says %d", a, sz,
		      got, want);
}

static void op_alloc(struct model *m, uint64_t *s, bool x)
{
	vmem_addr_t lo, hi;
	model_range(m, &lo, &hi);
	struct opreq o;
	gen_req(m, s, x, lo, hi, &o);
	do_alloc(m, &o);
}

/* Everything outstanding back, in random order. */
static void drain(struct model *m, uint64_t *s)
{
	while (true) {
		size_t n = 0;
		for (size_t i = 0; i < m->nal; i++)
			n += !m->al[i].bychild;
		if (n == 0)
			break;
		op_good_free(m, s);
	}
}

static void model_init(struct model *m, const char *name, enum kind k, vmem_size_t q)
{
	memset(m, 0, sizeof(*m));
	m->name = name;
	m->kind = k;
	m->q = q;
}

static void model_fini(struct model *m)
{
	free(m->sp);
	free(m->al);
	free(m->runs);
	free(m->exp);
	memset(m, 0, sizeof(*m));
}

static void report(const struct model *m, uint64_t seed)
{
	fprintf(stderr,
		"# %s q=%#" PRIx64 " seed %#" PRIx64 ": %" PRIu64 " allocated, %" PRIu64
		" ENOMEM, %" PRIu64 " bad calls refused, %" PRIu64 " imports, %zu spans at end\n",
		m->name, m->q, seed, m->n_ok, m->n_nomem, m->n_badcalls, m->n_imports, m->nsp);
}

/* One step of a random walk over the operations of m. */
static void step(struct model *m, uint64_t *s)
{
	uint64_t r = rnd(s, 100);
	if (m->nal > 160 && r < 55)
		r = 60 + rnd(s, 20); /* keep the population bounded */
	if (r < 28)
		op_alloc(m, s, false);
	else if (r < 55)
		op_alloc(m, s, true);
	else if (r < 80)
		op_good_free(m, s);
	else if (r < 88)
		op_bad_free(m, s);
	else if (r < 92) {
		if (m->nsp < 24 && m->kind != K_PARENT)
			op_add(m, s);
	} else if (r < 94)
		op_bad_add(m, s);
	else if (r < 98)
		op_bad_alloc(m, s);
	else
		op_contains(m, s);
}

/* ---- the runs -------------------------------------------------------------------- */

static void run_plain(uint64_t seed, vmem_size_t q, uint64_t nops)
{
	uint64_t s = seed;
	struct model m;
	model_init(&m, "plain", K_PLAIN, q);
	vmem_addr_t base = rnd(&s, 3) == 0 ? 0 : q * rnd(&s, (uint64_t)1 << 28);
	vmem_size_t size = rnd(&s, 5) == 0 ? 0 : q * (1 + rnd(&s, 3000));
	m.create_base = base;
	m.reg_lo = base > q * 20000 ? base - q * 20000 : 0;
	m.reg_hi = base + size + q * 20000;
	m.cons_lo = m.reg_lo;
	m.cons_hi = m.reg_hi;
	snprintf(g_ctx, sizeof(g_ctx), "plain q=%#" PRIx64 " seed %#" PRIx64 " create", q, seed);
	m.vm = vmem_create("model", base, size, q, 0, rnd(&s, 2) ? VM_SLEEP : 0);
	if (m.vm == NULL)
		MFAIL(NULL, "vmem_create failed: %d", errno);
	if (size)
		model_add_span(&m, base, size, false);
	model_verify(&m);
	for (uint64_t i = 0; i < nops; i++) {
		snprintf(g_ctx, sizeof(g_ctx), "plain q=%#" PRIx64 " seed %#" PRIx64 " op %" PRIu64 ": ",
			 q, seed, i);
		if (m.nsp == 0 || (m.nsp < 3 && rnd(&s, 10) == 0))
			op_add(&m, &s);
		else
			step(&m, &s);
	}
	snprintf(g_ctx, sizeof(g_ctx), "plain q=%#" PRIx64 " seed %#" PRIx64 " drain: ", q, seed);
	drain(&m, &s);
	if (m.alloc_total != 0 || m.nruns != m.nsp)
		MFAIL(&m, "drained arena is not all free");
	report(&m, seed);
	vmem_destroy(m.vm);
	model_fini(&m);
}

/* A child with vmem_set_source: the parent is modelled too. */
static void run_source(uint64_t seed, vmem_size_t pq, uint64_t nops)
{
	uint64_t s = seed;
	vmem_size_t cq = pq * (rnd(&s, 2) ? 1 : 4);
	struct model p, c;
	model_init(&p, "parent", K_PARENT, pq);
	model_init(&c, "source-child", K_SOURCE, cq);
	c.parent = &p;

	vmem_size_t pw = cq * (1024 + rnd(&s, 4096));
	vmem_addr_t pb = rnd(&s, 4) == 0 ? 0 : cq * rnd(&s, (uint64_t)1 << 24);
	p.create_base = pb;
	p.reg_lo = pb;
	p.reg_hi = pb + 3 * pw;
	c.reg_lo = pb + 4 * pw;
	c.reg_hi = pb + 6 * pw;
	p.cons_lo = c.cons_lo = pb;
	p.cons_hi = c.cons_hi = c.reg_hi;
	snprintf(g_ctx, sizeof(g_ctx), "source cq=%#" PRIx64 " seed %#" PRIx64 " setup", cq, seed);
	p.vm = vmem_create("parent", pb, pw, pq, 0, 0);
	if (p.vm == NULL)
		MFAIL(NULL, "vmem_create(parent) failed: %d", errno);
	model_add_span(&p, pb, pw, false);
	/* a second parent span: adjacent or not */
	vmem_addr_t b2 = pb + pw + (rnd(&s, 2) ? 0 : cq * rnd(&s, 64));
	vmem_size_t w2 = cq * (1 + rnd(&s, 1024));
	assert_int_equal(vmem_add(p.vm, b2, w2, 0), 0);
	model_add_span(&p, b2, w2, false);
	model_verify(&p);

	vmem_size_t csize = rnd(&s, 2) ? 0 : cq * (1 + rnd(&s, 64));
	c.create_base = csize ? c.reg_lo : 0;
	c.vm = vmem_create("child", csize ? c.reg_lo : 0, csize, cq, 0, 0);
	if (c.vm == NULL)
		MFAIL(NULL, "vmem_create(child) failed: %d", errno);
	if (csize)
		model_add_span(&c, c.reg_lo, csize, false);
	const vmem_size_t iqs[] = {0, cq, 4 * cq};
	c.iq = iqs[rnd(&s, 3)];
	assert_int_equal(vmem_set_source(c.vm, p.vm, c.iq), 0);
	/* loops are refused, and change nothing */
	struct snap b = {0};
	snap_take(p.vm, &b);
	assert_int_equal(vmem_set_source(p.vm, c.vm, 0), EINVAL);
	snap_same(&p, &b, 0, "a looping vmem_set_source");
	snap_free(&b);
	assert_int_equal(vmem_set_source(c.vm, c.vm, 0), EINVAL);
	if (rnd(&s, 2)) {
		c.limit = cq * (256 + rnd(&s, 2048));
		assert_int_equal(vmem_set_limit(c.vm, c.limit), 0);
	}
	model_verify(&c);

	bool busy_checked = false;
	for (uint64_t i = 0; i < nops; i++) {
		snprintf(g_ctx, sizeof(g_ctx),
			 "source cq=%#" PRIx64 " iq=%#" PRIx64 " limit=%#" PRIx64 " seed %#" PRIx64
			 " op %" PRIu64 ": ",
			 cq, c.iq, c.limit, seed, i);
		uint64_t r = rnd(&s, 100);
		if (r < 10) {
			/* the parent's own traffic fragments it */
			uint64_t k = rnd(&s, 3);
			if (k == 0 || p.nal > 100)
				op_good_free(&p, &s);
			else
				op_alloc(&p, &s, k == 2);
		} else if (r < 12) {
			vmem_size_t l = rnd(&s, 3) == 0 ? 0 : cq * (64 + rnd(&s, 4096));
			assert_int_equal(vmem_set_limit(c.vm, l), 0);
			c.limit = l;
			model_verify(&c);
		} else {
			step(&c, &s);
		}
		if (!busy_checked && c.allocs > 0) {
			busy_checked = true;
			snap_take(c.vm, &b);
			assert_int_equal(vmem_set_source(c.vm, p.vm, 0), EBUSY);
			assert_int_equal(vmem_set_import(c.vm, cb_import, cb_release, NULL, 0), EBUSY);
			snap_same(&c, &b, 0, "vmem_set_source after allocating");
			snap_free(&b);
		}
	}
	snprintf(g_ctx, sizeof(g_ctx), "source cq=%#" PRIx64 " seed %#" PRIx64 " drain: ", cq, seed);
	drain(&c, &s);
	report(&c, seed);
	vmem_destroy(c.vm);
	/* destroying the child returns its imports to the parent */
	for (size_t i = 0; i < p.nal;) {
		if (p.al[i].bychild) {
			model_remove_alloc(&p, i);
			p.frees++;
		} else {
			i++;
		}
	}
	snprintf(g_ctx, sizeof(g_ctx), "source seed %#" PRIx64 " after destroying the child", seed);
	model_verify(&p);
	drain(&p, &s);
	report(&p, seed);
	vmem_destroy(p.vm);
	model_fini(&c);
	model_fini(&p);
}

/* A child with vmem_set_import callbacks over a pool arena. */
static void run_callbacks(uint64_t seed, vmem_size_t q, uint64_t nops)
{
	uint64_t s = seed;
	struct cbstate cb;
	memset(&cb, 0, sizeof(cb));
	struct model c;
	model_init(&c, "cb-child", K_CB, q);
	c.cb = &cb;
	vmem_size_t pw = q * (2048 + rnd(&s, 4096));
	vmem_addr_t pb = rnd(&s, 4) == 0 ? 0 : q * rnd(&s, (uint64_t)1 << 24);
	c.reg_lo = pb + 2 * pw;
	c.reg_hi = pb + 4 * pw;
	c.cons_lo = pb;
	c.cons_hi = c.reg_hi;
	cb.q = q;
	cb.rng = seed ^ 0xcbcbcb;
	cb.fail_pct = rnd(&s, 2) ? 0 : 10;
	snprintf(g_ctx, sizeof(g_ctx), "callbacks q=%#" PRIx64 " seed %#" PRIx64 " setup", q, seed);
	cb.pool = vmem_create("pool", pb, pw, q, 0, 0);
	if (cb.pool == NULL)
		MFAIL(NULL, "vmem_create(pool) failed: %d", errno);
	vmem_size_t csize = rnd(&s, 2) ? 0 : q * (1 + rnd(&s, 64));
	c.create_base = csize ? c.reg_lo : 0;
	c.vm = vmem_create("cbchild", csize ? c.reg_lo : 0, csize, q, 0, 0);
	if (c.vm == NULL)
		MFAIL(NULL, "vmem_create(child) failed: %d", errno);
	if (csize)
		model_add_span(&c, c.reg_lo, csize, false);
	const vmem_size_t iqs[] = {0, q, 8 * q};
	c.iq = cb.iq = iqs[rnd(&s, 3)];
	struct snap b = {0};
	snap_take(c.vm, &b);
	if (q > 1)
		assert_int_equal(vmem_set_import(c.vm, cb_import, cb_release, &cb, q + q / 2),
				 EINVAL);
	snap_same(&c, &b, 0, "vmem_set_import with a bad import quantum");
	snap_free(&b);
	assert_int_equal(vmem_set_import(c.vm, cb_import, cb_release, &cb, c.iq), 0);
	if (rnd(&s, 2)) {
		c.limit = q * (512 + rnd(&s, 2048));
		assert_int_equal(vmem_set_limit(c.vm, c.limit), 0);
	}
	model_verify(&c);

	for (uint64_t i = 0; i < nops; i++) {
		snprintf(g_ctx, sizeof(g_ctx),
			 "callbacks q=%#" PRIx64 " iq=%#" PRIx64 " limit=%#" PRIx64
			 " seed %#" PRIx64 " op %" PRIu64 ": ",
			 q, c.iq, c.limit, seed, i);
		if (rnd(&s, 100) < 2) {
			vmem_size_t l = rnd(&s, 3) == 0 ? 0 : q * (64 + rnd(&s, 4096));
			assert_int_equal(vmem_set_limit(c.vm, l), 0);
			c.limit = l;
			model_verify(&c);
		} else {
			step(&c, &s);
		}
	}
	snprintf(g_ctx, sizeof(g_ctx), "callbacks q=%#" PRIx64 " seed %#" PRIx64 " drain: ", q,
		 seed);
	drain(&c, &s);
	report(&c, seed);
	/* destroy gives every remaining import back through the release callback */
	size_t left = cb.nout;
	cb.nrel = 0;
	vmem_destroy(c.vm);
	if (cb.bad)
		MFAIL(NULL, "%s", cb.err);
	if (cb.nout != 0 || cb.nrel != left)
		MFAIL(NULL, "destroy released %zu of %zu imports", cb.nrel, left);
	assert_int_equal(vmem_size(cb.pool, VMEM_ALLOC), 0);
	CHECK_ARENA(cb.pool);
	vmem_destroy(cb.pool);
	free(cb.out);
	free(cb.imp);
	free(cb.rel);
	model_fini(&c);
}

/* ---- the tests -------------------------------------------------------------------- */

/* The model's fit function against brute force, so the model can be trusted. */
static void test_reference(void **state)
{
	(void)state;
	uint64_t s = 12345;
	for (int i = 0; i < 20000; i++) {
		struct req r;
		vmem_addr_t start = rnd(&s, 200);
		vmem_size_t size = 1 + rnd(&s, 200);
		r.size = 1 + rnd(&s, 40);
		r.align = (vmem_size_t)1 << rnd(&s, 7);
		r.phase = rnd(&s, r.align);
		r.nocross = 0;
		if (rnd(&s, 2)) {
			r.nocross = 1;
			while (r.nocross < r.size)
				r.nocross <<= 1;
			r.nocross <<= rnd(&s, 3);
		}
		r.min = rnd(&s, 2) ? 0 : rnd(&s, 400);
		r.max = rnd(&s, 2) ? VMEM_ADDR_MAX : r.min + rnd(&s, 400);
		vmem_addr_t lb = rnd(&s, 2) ? 0 : rnd(&s, 400);
		vmem_addr_t got = 0, want = 0;
		bool bw = false;
		for (vmem_addr_t a = start; a + r.size <= start + size; a++) {
			if (a >= lb && req_holds(&r, a)) {
				want = a;
				bw = true;
				break;
			}
		}
		bool bg = ref_fit(start, size, &r, lb, &got);
		assert_int_equal(bg, bw);
		if (bw)
			assert_int_equal(got, want);
	}
}

static void test_plain(void **state)
{
	(void)state;
	uint64_t seed = tu_seed(0x6d6f64656c);
	const vmem_size_t qs[] = {1, 8, 4096};
	uint64_t nops = tu_scale(4000);
	for (int k = 0; k < 4; k++) {
		for (int qi = 0; qi < 3; qi++) {
			uint64_t rs = seed + (uint64_t)k * 0x1000 + (uint64_t)qi;
			run_plain(rs, qs[qi], nops);
		}
	}
}

static void test_source(void **state)
{
	(void)state;
	uint64_t seed = tu_seed(0x736f75726365);
	const vmem_size_t qs[] = {1, 8, 4096};
	uint64_t nops = tu_scale(3000);
	for (int k = 0; k < 4; k++)
		for (int qi = 0; qi < 3; qi++)
			run_source(seed + (uint64_t)k * 0x1000 + (uint64_t)qi, qs[qi], nops);
}

static void test_callbacks(void **state)
{
	(void)state;
	uint64_t seed = tu_seed(0x63616c6c);
	const vmem_size_t qs[] = {1, 8, 4096};
	uint64_t nops = tu_scale(3000);
	for (int k = 0; k < 4; k++)
		for (int qi = 0; qi < 3; qi++)
			run_callbacks(seed + (uint64_t)k * 0x1000 + (uint64_t)qi, qs[qi], nops);
}

/*
 * Which free goes with which allocation when quantum caching is on: a
 * vmem_xalloc segment of a cached size must go back with vmem_xfree
 * (EINVAL under VMC_DEBUG, nothing changed); a larger one may go back with
 * vmem_free.  The random runs use qcache_max 0, where every vmem_xalloc
 * segment is "larger than qcache_max".
 */
static void test_free_kinds(void **state)
{
	(void)state;
	struct model m;
	model_init(&m, "kinds", K_PLAIN, 16);
	snprintf(g_ctx, sizeof(g_ctx), "free kinds");
	m.vm = vmem_create("kinds", 0x10000, 0x10000, 16, 4 * 16, VMC_DEBUG);
	assert_non_null(m.vm);
	vmem_addr_t a, b;
	assert_int_equal(vmem_xalloc(m.vm, 16, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_xalloc(m.vm, 128, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &b), 0);
	CHECK_ARENA(m.vm);
	struct snap s = {0};
	snap_take(m.vm, &s);
	fprintf(stderr, "# a VMC_DEBUG report of a bad free is expected next:\n");
	assert_int_equal(vmem_free(m.vm, a, 16), EINVAL);
	snap_same(&m, &s, 0, "vmem_free of a cached-size vmem_xalloc segment");
	snap_free(&s);
	assert_int_equal(vmem_xfree(m.vm, a, 16), 0);
	CHECK_ARENA(m.vm);
	assert_int_equal(vmem_free(m.vm, b, 128), 0); /* acts as vmem_xfree */
	CHECK_ARENA(m.vm);
	assert_int_equal(vmem_size(m.vm, VMEM_ALLOC), 0);
	vmem_destroy(m.vm);
	model_fini(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference),
		cmocka_unit_test(test_free_kinds),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_callbacks),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	fprintf(stderr, "# vmem_xfree of a vmem_alloc segment: accepted %" PRIu64
		", refused (EINVAL) %" PRIu64 "\n",
		g_xfree_of_alloc_ok, g_xfree_of_alloc_einval);
	return rc;
}
