/*
 * test_model.c - randomized differential test of the public API against a
 * simple reference model, with the invariant checker after every operation.
 *
 * The model of an arena (tests/model.c, which the fuzzer shares) is a
 * sorted set of spans (each added or imported) and a sorted set of
 * outstanding allocations (address, rounded size, whether it came from
 * vmem_xalloc).  Its free segments are derived: the maximal free runs
 * inside each span.  After every operation the arena must show exactly the
 * model through vmem_walk (spans, allocated and free segments),
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
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the arenas of a run -------------------------------------------------- */

enum kind { K_PLAIN, K_SOURCE, K_CB, K_PARENT };

/* One arena of a run: the reference model (model.h), and what this file
 * keeps to drive it.  md(m) finds it from the model, its first member. */
struct modelled {
	struct model m;
	enum kind kind;
	vmem_addr_t create_base;
	vmem_addr_t reg_lo, reg_hi;   /* where vmem_add puts spans */
	vmem_addr_t cons_lo, cons_hi; /* where minaddr/maxaddr are drawn from */
	bool cursor_lost;             /* a child's imports may have moved it */
	vmem_size_t iq;               /* import quantum */
	struct model *parent;         /* K_SOURCE */
	struct cbstate *cb;           /* K_CB */
	/* tallies for the report */
	uint64_t n_ok, n_nomem, n_badcalls, n_imports;
};

static struct modelled *md(const struct model *m)
{
	return (struct modelled *)(void *)m;
}

static char g_ctx[600];
static uint64_t g_xfree_of_alloc_ok, g_xfree_of_alloc_einval;

/* A failed check: the model and the arena, then the failure with what the
 * run was doing. */
static void failed_here(const struct model *m, const char *msg)
{
	if (m != NULL)
		model_print(m, stderr);
	fail_msg("[%s] %s", g_ctx, msg);
}
#define MFAIL(m, ...) MODEL_FAIL((m), __VA_ARGS__)

/* The arena shows nothing new but extra_fails more failures; frees *b. */
static void expect_unchanged(struct model *m, struct snapshot *b, uint64_t extra_fails,
			     const char *what)
{
	char why[600];
	if (!arena_unchanged(m->vm, b, extra_fails, why, sizeof(why)))
		MFAIL(m, "after %s: %s", what, why);
}

/* ---- import callbacks -------------------------------------------------------- */

/* Callback imports draw from a pool arena and check every release.  The
 * lists hold (address, size) pairs as segments. */
struct cbstate {
	vmem_t *pool;
	vmem_size_t q, iq;
	struct seglist out; /* imported, not yet released */
	struct seglist imp; /* this operation's imports */
	struct seglist rel; /* this operation's releases */
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
	if (c->fail_pct && rand_next(&c->rng) % 100 < c->fail_pct) {
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
	seglist_push(&c->out, a, size, 0);
	seglist_push(&c->imp, a, size, 0);
	*addrp = a;
	return 0;
}

/* Take (a, s) out of the list l; false if it is not there. */
static bool pair_take(struct seglist *l, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].addr == a && l->v[i].size == s) {
			l->v[i] = l->v[--l->n];
			return true;
		}
	}
	return false;
}

static void cb_release(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	struct cbstate *c = arg;
	seglist_push(&c->rel, addr, size, 0);
	if (pair_take(&c->out, addr, size)) {
		int e = vmem_free(c->pool, addr, size);
		if (e != 0 && !c->bad) {
			c->bad = true;
			snprintf(c->err, sizeof(c->err),
				 "release: pool vmem_free(%#" PRIx64 ", %#" PRIx64 ") = %d", addr,
				 size, e);
		}
		return;
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
	w->st = stats_of(m->vm);
	if (md(m)->kind == K_SOURCE) {
		vmem_stats_t ps = stats_of(md(m)->parent->vm);
		w->pallocs = ps.allocs;
		w->pfrees = ps.frees;
	}
	if (md(m)->kind == K_CB) {
		md(m)->cb->imp.n = md(m)->cb->rel.n = 0;
		w->cbcalls = md(m)->cb->calls;
	}
}

/* The parent's side of a child's imports and releases. */
static void parent_follows(struct model *m, const struct importwatch *w, const struct seglist *added,
			   const struct seglist *gone, uint64_t dimp, uint64_t drel)
{
	struct model *p = md(m)->parent;
	vmem_stats_t ps = stats_of(p->vm);
	if (ps.allocs - w->pallocs != dimp || ps.frees - w->pfrees != drel)
		MFAIL(m,
		      "the parent counted %" PRIu64 " allocs and %" PRIu64 " frees for %" PRIu64
		      " imports and %" PRIu64 " releases",
		      ps.allocs - w->pallocs, ps.frees - w->pfrees, dimp, drel);
	p->allocs += dimp;
	p->frees += drel;
	if (ps.fails < p->fails)
		MFAIL(p, "the parent's fails went down");
	p->fails = ps.fails; /* failed imports may retry: not predictable */
	if (dimp || drel) {
		p->cursor_known = false; /* the child's flags may move it */
		md(p)->cursor_lost = true;
	}
	for (size_t k = 0; k < gone->n; k++) {
		long x = model_find_alloc(p, gone->v[k].addr);
		if (x < 0 || p->al[x].kind != MA_IMPORT || p->al[x].size != gone->v[k].size)
			MFAIL(p, "released span %#" PRIx64 " is not an import", gone->v[k].addr);
		model_remove_alloc(p, (size_t)x);
	}
	for (size_t k = 0; k < added->n; k++)
		model_insert_alloc(p, added->v[k].addr, added->v[k].size, added->v[k].size,
				   MA_IMPORT);
	model_verify(p);
}

/* What appeared and vanished is exactly what the callbacks handed over. */
static void callbacks_agree(struct model *m, const struct seglist *added,
			    const struct seglist *gone, uint64_t dimp, uint64_t drel)
{
	struct cbstate *c = md(m)->cb;
	if (c->bad)
		MFAIL(m, "%s", c->err);
	if (c->imp.n != dimp || c->rel.n != drel)
		MFAIL(m,
		      "callbacks saw %zu imports and %zu releases, stats %" PRIu64 " and %" PRIu64,
		      c->imp.n, c->rel.n, dimp, drel);
	struct seglist imp = {0}, rel = {0};
	for (size_t k = 0; k < c->imp.n; k++)
		seglist_push(&imp, c->imp.v[k].addr, c->imp.v[k].size, 0);
	for (size_t k = 0; k < c->rel.n; k++)
		seglist_push(&rel, c->rel.v[k].addr, c->rel.v[k].size, 0);
	/* an import released within the same call cancels out */
	for (size_t k = 0; k < rel.n;) {
		if (pair_take(&imp, rel.v[k].addr, rel.v[k].size))
			rel.v[k] = rel.v[--rel.n];
		else
			k++;
	}
	for (size_t k = 0; k < added->n; k++)
		if (!pair_take(&imp, added->v[k].addr, added->v[k].size))
			MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") appeared, not imported",
			      added->v[k].addr, added->v[k].size);
	for (size_t k = 0; k < gone->n; k++)
		if (!pair_take(&rel, gone->v[k].addr, gone->v[k].size))
			MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") vanished, not released",
			      gone->v[k].addr, gone->v[k].size);
	if (imp.n || rel.n)
		MFAIL(m, "callbacks and spans disagree");
	seglist_free(&imp);
	seglist_free(&rel);
	/* the pool holds exactly the outstanding imports */
	vmem_size_t sum = 0;
	for (size_t k = 0; k < c->out.n; k++)
		sum += c->out.v[k].size;
	vmem_stats_t ps = stats_of(c->pool);
	if (ps.alloc_total != sum || ps.nalloc != c->out.n)
		MFAIL(m, "the pool holds %#" PRIx64 " in %" PRIu64 ", imports %#" PRIx64 " in %zu",
		      ps.alloc_total, ps.nalloc, sum, c->out.n);
	CHECK_ARENA(c->pool);
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
	static struct seglist sw;
	walk_into(m->vm, VMEM_SPAN, &sw);
	vmem_stats_t st = stats_of(m->vm);
	uint64_t dimp = st.imports - w->st.imports, drel = st.releases - w->st.releases;

	struct seglist added = {0}, gone = {0};
	size_t i = 0, j = 0;
	while (i < sw.n || j < m->nsp) {
		if (j == m->nsp || (i < sw.n && sw.v[i].addr < m->sp[j].start)) {
			seglist_push(&added, sw.v[i].addr, sw.v[i].size, VMEM_SPAN);
			i++;
		} else if (i == sw.n || m->sp[j].start < sw.v[i].addr) {
			seglist_push(&gone, m->sp[j].start, m->sp[j].size, VMEM_SPAN);
			j++;
		} else {
			if (sw.v[i].size != m->sp[j].size)
				MFAIL(m, "span at %#" PRIx64 " changed size %#" PRIx64 " -> %#" PRIx64,
				      sw.v[i].addr, m->sp[j].size, sw.v[i].size);
			i++;
			j++;
		}
	}

	/* the counters must agree with what appeared and vanished */
	if (dimp < added.n || drel < gone.n || dimp - added.n != drel - gone.n)
		MFAIL(m,
		      "stats say %" PRIu64 " imports and %" PRIu64 " releases, but %zu spans "
		      "appeared and %zu vanished",
		      dimp, drel, added.n, gone.n);

	for (size_t k = 0; k < gone.n; k++) {
		const struct seg *g = &gone.v[k];
		long si = model_span_of(m, g->addr, g->size);
		if (si < 0 || !m->sp[si].imported)
			MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") vanished but was not imported",
			      g->addr, g->size);
		if (model_span_busy(m, &m->sp[si]))
			MFAIL(m, "span [%#" PRIx64 ", +%#" PRIx64 ") released while allocated",
			      g->addr, g->size);
		model_remove_span(m, (size_t)si);
	}
	for (size_t k = 0; k < added.n; k++) {
		const struct seg *g = &added.v[k];
		if (model_overlaps_span(m, g->addr, g->size))
			MFAIL(m, "new span [%#" PRIx64 ", +%#" PRIx64 ") overlaps another", g->addr,
			      g->size);
		if (g->size % m->q != 0 || g->addr % m->q != 0 || g->size < minimport)
			MFAIL(m, "imported span [%#" PRIx64 ", +%#" PRIx64 ") breaks the quanta",
			      g->addr, g->size);
		model_add_span(m, g->addr, g->size, true);
	}
	m->imports += dimp;
	m->releases += drel;
	md(m)->n_imports += dimp;

	if (md(m)->kind == K_SOURCE)
		parent_follows(m, w, &added, &gone, dimp, drel);
	if (md(m)->kind == K_CB)
		callbacks_agree(m, &added, &gone, dimp, drel);
	size_t nadded = added.n;
	if (nremoved)
		*nremoved = gone.n;
	seglist_free(&added);
	seglist_free(&gone);
	return nadded;
}

/* ---- operations ---------------------------------------------------------------- */

struct opreq {
	bool x;
	vmem_size_t asked, align, phase, nocross;
	vmem_addr_t min, max;
	int flags;
	struct fitq r; /* effective */
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
	uint64_t k = rand_below(s, 10); /* mostly a few quanta, sometimes hundreds */
	uint64_t units = 1 + rand_below(s, k == 0 ? 256 : k < 4 ? 32 : 4);
	o->asked = units * q - rand_below(s, q);
	o->r.size = units * q;
	o->flags = policies[rand_below(s, 5)] | (rand_below(s, 2) ? VM_NOSLEEP : 0);
	o->r.align = q;
	o->r.min = VMEM_ADDR_MIN;
	o->r.max = VMEM_ADDR_MAX;
	o->max = VMEM_ADDR_MAX;
	if (!x)
		return;
	uint64_t c = rand_below(s, 20);
	o->align = c < 6 ? 0 : c < 19 ? q << rand_below(s, 9) : q << (9 + rand_below(s, 8));
	o->r.align = o->align ? o->align : q;
	o->phase = rand_below(s, 2) ? 0 : rand_below(s, o->r.align / q) * q;
	if (o->align == 0)
		o->phase = 0;
	o->r.phase = o->phase;
	if (rand_below(s, 10) < 3) {
		vmem_size_t nc = q;
		while (nc < o->r.size)
			nc <<= 1;
		o->nocross = nc << rand_below(s, 4);
	}
	o->r.nocross = o->nocross;
	if (rand_below(s, 2)) {
		o->min = lo + rand_below(s, hi - lo);
		if (rand_below(s, 2))
			o->min -= o->min % q;
	}
	if (rand_below(s, 2)) {
		vmem_addr_t base = o->min > lo ? o->min : lo;
		o->max = base + rand_below(s, hi > base ? hi - base : 1);
		if (rand_below(s, 2))
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
	*lo = md(m)->cons_lo;
	*hi = md(m)->cons_hi;
}

static void do_alloc(struct model *m, const struct opreq *o)
{
	const struct fitq *r = &o->r;
	char desc[300];
	opreq_str(desc, sizeof(desc), o);
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen, "%s", desc);

	model_expect(m);
	vmem_addr_t pre_low = 0;
	bool can_pre = fit_lowest(&m->runs, r, 0, &pre_low, NULL);
	/* the parent, before: can it meet the request? */
	bool parent_can = false;
	if (md(m)->kind == K_SOURCE) {
		model_expect(md(m)->parent);
		vmem_addr_t pa;
		parent_can = fit_lowest(&md(m)->parent->runs, r, 0, &pa, NULL);
	}
	struct snapshot before;
	snapshot_take(m->vm, &before);
	struct importwatch w;
	if (md(m)->kind != K_PLAIN && md(m)->kind != K_PARENT)
		watch_begin(m, &w);

	vmem_addr_t a = 0x5a5a5a5a5a5a5a5aull;
	int e = o->x ? vmem_xalloc(m->vm, o->asked, o->align, o->phase, o->nocross, o->min,
				   o->max, o->flags, &a)
		     : vmem_alloc(m->vm, o->asked, o->flags, &a);
	if (e != 0 && e != ENOMEM)
		MFAIL(m, "returned %d", e);

	size_t nnew = 0, ngone = 0;
	if (md(m)->kind != K_PLAIN && md(m)->kind != K_PARENT) {
		/* at least the import quantum; but a span from a source must fit
		 * in one nocross block, so there it may be just the request */
		vmem_size_t minimport = md(m)->iq > r->size ? md(m)->iq : r->size;
		/* a request is met through its source whenever the source can
		 * meet it: when no span of import_quantum can be had (no room,
		 * or no nocross block holds one), the child imports just it */
		if (md(m)->kind == K_SOURCE)
			minimport = r->size;
		nnew = watch_end(m, &w, &ngone, minimport);
		if (ngone)
			MFAIL(m, "an allocation released %zu spans", ngone);
		if (nnew && can_pre)
			MFAIL(m, "imported although %#" PRIx64 " fits in the arena", pre_low);
		if (nnew && m->limit && m->import_total > m->limit)
			MFAIL(m, "imported total %#" PRIx64 " is over the limit %#" PRIx64,
			      m->import_total, m->limit);
		if (md(m)->kind == K_CB && !can_pre && m->limit == 0 &&
		    md(m)->cb->calls == w.cbcalls)
			MFAIL(m, "the arena could not meet the request but did not call importfn");
	}
	model_expect(m);

	/* with quantum caches, their slabs hold space the model sees as free:
	 * where a first, next or best fit lands, and whether a failed request
	 * would have fitted, are then the arena's to know */
	int pol = o->flags & POLICY_MASK;
	bool cached = m->qmax != 0 && !o->x && r->size <= m->qmax && pol != VM_FIRSTFIT &&
		      pol != VM_NEXTFIT;
	bool slabs_hide = m->qmax != 0;
	if (e == 0) {
		if (a + (r->size - 1) < a)
			MFAIL(m, "result %#" PRIx64 " wraps", a);
		long ri = seglist_find(&m->runs, a, r->size);
		if (ri < 0)
			MFAIL(m, "result [%#" PRIx64 ", +%#" PRIx64 ") is not inside one free run",
			      a, r->size);
		if (!fitq_holds(r, a))
			MFAIL(m, "result %#" PRIx64 " breaks the constraints", a);
		if (nnew && !m->sp[model_span_of(m, a, r->size)].imported)
			MFAIL(m, "imported but result %#" PRIx64 " is not in an imported span", a);
		vmem_addr_t want;
		if (!fit_lowest(&m->runs, r, 0, &want, NULL))
			MFAIL(m, "model finds no fit but the arena returned %#" PRIx64, a);
		if (slabs_hide)
			pol = 0; /* no exact oracle: see above */
		if (pol == VM_FIRSTFIT && a != want)
			MFAIL(m, "FIRSTFIT returned %#" PRIx64 ", the lowest fit is %#" PRIx64, a,
			      want);
		if (pol == VM_NEXTFIT) {
			vmem_addr_t nf;
			if (m->cursor_known) {
				if (!fit_lowest(&m->runs, r, m->cursor, &nf, NULL))
					nf = want; /* wrap to the start */
				if (a != nf)
					MFAIL(m,
					      "NEXTFIT returned %#" PRIx64 ", expected %#" PRIx64
					      " (cursor %#" PRIx64 ")",
					      a, nf, m->cursor);
			} else if (!md(m)->cursor_lost) {
				/* no previous NEXTFIT: from the arena's start, or from
				 * its base as created */
				if (!fit_lowest(&m->runs, r, md(m)->create_base, &nf, NULL))
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
			vmem_size_t best = fit_best_size(&m->runs, r);
			if (m->runs.v[ri].size != best)
				MFAIL(m,
				      "BESTFIT chose a free segment of %#" PRIx64
				      ", the smallest that fits has %#" PRIx64,
				      m->runs.v[ri].size, best);
		}
		model_insert_alloc(m, a, r->size, o->asked, o->x ? MA_XALLOC : MA_ALLOC);
		m->allocs++;
		m->qc_ok += cached;
		md(m)->n_ok++;
	} else {
		vmem_addr_t t;
		m->qc_fail += cached;
		if (!slabs_hide && fit_lowest(&m->runs, r, 0, &t, NULL))
			MFAIL(m, "ENOMEM but %#" PRIx64 " fits", t);
		if (md(m)->kind == K_SOURCE && parent_can) {
			/* the source could meet it: only an import quantum or the
			 * limit may excuse the failure */
			bool excused = false;
			if (md(m)->iq && (r->size < md(m)->iq || r->size % md(m)->iq != 0))
				excused = true;
			if (m->limit && m->import_total + r->size > m->limit)
				excused = true;
			if (!excused)
				MFAIL(m, "ENOMEM although the source can meet the request");
		}
		if (md(m)->kind == K_CB && md(m)->cb->imp.n > 0 && o->min == 0 &&
		    o->max == VMEM_ADDR_MAX && o->nocross == 0)
			MFAIL(m, "ENOMEM after importing %zu span(s) for an unbounded request",
			      md(m)->cb->imp.n);
		m->fails++;
		md(m)->n_nomem++;
		/* (a failing request reaps the caches first, which changes where
		 * their space lies) */
		if ((md(m)->kind == K_PLAIN || md(m)->kind == K_PARENT) && !slabs_hide)
			expect_unchanged(m, &before, 1, "ENOMEM");
	}
	snapshot_free(&before);
	model_verify(m);
	g_ctx[ctxlen] = '\0';
}

enum freeclass { F_GOOD, F_BAD, F_AMBIG };

static enum freeclass classify_free(const struct model *m, bool xfn, vmem_addr_t a, vmem_size_t s,
				    long *idx)
{
	vmem_size_t rs;
	*idx = -1;
	if (s == 0 || !round_to_quantum(s, m->q, &rs))
		return F_BAD;
	long j = model_find_alloc(m, a);
	if (j < 0 || m->al[j].size != rs || m->al[j].kind == MA_IMPORT)
		return F_BAD;
	*idx = j;
	/* vmem_free of an xalloc segment acts as vmem_xfree, but of a cached
	 * size it is an error */
	if (!xfn)
		return m->al[j].kind == MA_XALLOC && rs <= m->qmax ? F_BAD : F_GOOD;
	return m->al[j].kind == MA_XALLOC ? F_GOOD : F_AMBIG;
}

static void do_free(struct model *m, bool xfn, vmem_addr_t a, vmem_size_t s, const char *why)
{
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen,
		 "%s(%#" PRIx64 ", %#" PRIx64 ") [%s]", xfn ? "vmem_xfree" : "vmem_free", a, s,
		 why);
	long j;
	enum freeclass fc = classify_free(m, xfn, a, s, &j);
	struct snapshot before;
	snapshot_take(m->vm, &before);
	struct importwatch w;
	bool importing = md(m)->kind == K_SOURCE || md(m)->kind == K_CB;
	if (importing)
		watch_begin(m, &w);
	uint64_t cbcalls = md(m)->kind == K_CB ? md(m)->cb->calls : 0;

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
		expect_unchanged(m, &before, 0, "a bad free");
		if (md(m)->kind == K_CB && (md(m)->cb->calls != cbcalls || md(m)->cb->rel.n))
			MFAIL(m, "a bad free called back");
		md(m)->n_badcalls++;
	} else {
		if (e != 0)
			MFAIL(m, "a good free returned %d", e);
		struct model_alloc old = m->al[j];
		model_remove_alloc(m, (size_t)j);
		m->frees++;
		model_note_freed(m, &old);
		if (importing) {
			long si = model_span_of(m, old.addr, old.size);
			struct model_span sp = m->sp[si];
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
	snapshot_free(&before);
	model_verify(m);
	g_ctx[ctxlen] = '\0';
}

/* A free of an outstanding allocation, by either function. */
static void op_good_free(struct model *m, uint64_t *s)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nal; i++)
		n += m->al[i].kind != MA_IMPORT;
	if (n == 0)
		return;
	size_t k = rand_below(s, n), j = 0;
	for (;; j++)
		if (m->al[j].kind != MA_IMPORT && k-- == 0)
			break;
	struct model_alloc a = m->al[j];
	bool xfn;
	if (a.kind == MA_XALLOC) /* vmem_free of an xalloc segment is fine but for cached sizes */
		xfn = a.size <= m->qmax || rand_below(s, 5) != 0;
	else
		xfn = rand_below(s, 10) == 0; /* vmem_xfree of an alloc segment: see the report */
	do_free(m, xfn, a.addr, a.asked, "good");
}

static void op_bad_free(struct model *m, uint64_t *s)
{
	vmem_addr_t a = 0;
	vmem_size_t sz = m->q;
	bool xfn = rand_below(s, 2);
	const char *why = NULL;
	long j = m->nal ? (long)rand_below(s, m->nal) : -1;
	if (j >= 0 && m->al[j].kind == MA_IMPORT)
		j = -1;
	switch (rand_below(s, 7)) {
	case 0: /* never allocated: inside a free run */
		if (m->runs.n == 0)
			return;
		{
			const struct seg *r = &m->runs.v[rand_below(s, m->runs.n)];
			a = r->addr + rand_below(s, r->size / m->q) * m->q;
			sz = m->q * (1 + rand_below(s, 4));
		}
		why = "never allocated";
		break;
	case 1: /* double free */
		if (model_nrecent(m) == 0)
			return;
		{
			const struct model_alloc *f = &m->recent[rand_below(s, model_nrecent(m))];
			a = f->addr;
			sz = f->asked;
			xfn = f->kind == MA_XALLOC;
		}
		why = "double free";
		break;
	case 2: /* wrong size */
		if (j < 0)
			return;
		a = m->al[j].addr;
		xfn = m->al[j].kind == MA_XALLOC;
		switch (rand_below(s, 3)) {
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
		a = m->al[j].addr + m->q * (1 + rand_below(s, m->al[j].size / m->q - 1));
		sz = rand_below(s, 2) ? m->q : m->al[j].asked;
		xfn = m->al[j].kind == MA_XALLOC;
		why = "part of a segment";
		break;
	case 4: /* outside every span */
		a = md(m)->reg_hi + m->q * rand_below(s, 1000);
		if (m->nsp && rand_below(s, 2)) {
			const struct model_span *p = &m->sp[rand_below(s, m->nsp)];
			a = p->start + p->size; /* just past a span: maybe a gap */
		}
		if (model_span_of(m, a, 1) >= 0)
			return;
		sz = m->q * (1 + rand_below(s, 4));
		why = "outside every span";
		break;
	case 5: /* a size whose rounding overflows */
		if (j < 0)
			return;
		a = m->al[j].addr;
		sz = VMEM_ADDR_MAX - rand_below(s, m->q > 1 ? m->q - 1 : 1);
		if (m->q == 1)
			sz = m->al[j].size + VMEM_ADDR_MAX / 2;
		xfn = m->al[j].kind == MA_XALLOC;
		why = "huge size";
		break;
	default: /* vmem_xfree at an allocated start with the other size */
		if (j < 0)
			return;
		a = m->al[j].addr;
		sz = m->al[j].asked + m->q * (1 + rand_below(s, 3));
		xfn = m->al[j].kind != MA_XALLOC;
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
	vmem_size_t size = q * (1 + rand_below(s, rand_below(s, 4) ? 64 : 2048));
	vmem_addr_t a;
	if (m->nsp && rand_below(s, 2)) {
		const struct model_span *p = &m->sp[rand_below(s, m->nsp)];
		if (p->imported)
			return;
		if (rand_below(s, 2))
			a = p->start + p->size; /* adjacent above */
		else if (p->start >= size)
			a = p->start - size; /* adjacent below */
		else
			return;
	} else {
		a = md(m)->reg_lo + rand_below(s, (md(m)->reg_hi - md(m)->reg_lo) / q) * q;
	}
	if ((u128)a + size > md(m)->reg_hi || a < md(m)->reg_lo || model_overlaps_span(m, a, size))
		return;
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen, "vmem_add(%#" PRIx64 ", %#" PRIx64 ")",
		 a, size);
	int e = vmem_add(m->vm, a, size, rand_below(s, 2) ? VM_NOSLEEP : 0);
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
	vmem_size_t size = q * (1 + rand_below(s, 16));
	switch (rand_below(s, 4)) {
	case 0: /* overlapping */
		if (m->nsp == 0)
			return;
		{
			const struct model_span *p = &m->sp[rand_below(s, m->nsp)];
			a = p->start + rand_below(s, p->size / q) * q;
			if (rand_below(s, 2) && a >= size / 2 + q) {
				a -= (size / 2 / q) * q; /* starts before, ends inside */
			}
		}
		if (!model_overlaps_span(m, a, size))
			return;
		break;
	case 1: /* misaligned */
		if (q == 1)
			return;
		a = md(m)->reg_lo + rand_below(s, (md(m)->reg_hi - md(m)->reg_lo) / q) * q + 1 + rand_below(s, q - 1);
		break;
	case 2: /* misaligned size */
		if (q == 1)
			return;
		a = md(m)->reg_lo + rand_below(s, (md(m)->reg_hi - md(m)->reg_lo) / q) * q;
		size += 1 + rand_below(s, q - 1);
		break;
	default: /* empty, or wrapping */
		a = md(m)->reg_lo + rand_below(s, (md(m)->reg_hi - md(m)->reg_lo) / q) * q;
		if (a < q)
			a = q;
		size = rand_below(s, 2) ? 0 : (vmem_size_t)0 - a + q; /* ends at 2^64 + q */
		break;
	}
	size_t ctxlen = strlen(g_ctx);
	snprintf(g_ctx + ctxlen, sizeof(g_ctx) - ctxlen, "bad vmem_add(%#" PRIx64 ", %#" PRIx64 ")",
		 a, size);
	struct snapshot b;
	snapshot_take(m->vm, &b);
	int e = vmem_add(m->vm, a, size, 0);
	if (e != EINVAL)
		MFAIL(m, "bad vmem_add returned %d", e);
	expect_unchanged(m, &b, 0, "a bad vmem_add");
	md(m)->n_badcalls++;
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
	switch (rand_below(s, 12)) {
	case 0:
		o.asked = 0;
		x = rand_below(s, 2);
		why = "size 0";
		break;
	case 1:
		ap = NULL;
		x = rand_below(s, 2);
		why = "NULL addrp";
		break;
	case 2:
		o.flags = VM_BESTFIT | VM_FIRSTFIT;
		x = rand_below(s, 2);
		why = "two policies";
		break;
	case 3:
		o.flags = VM_SLEEP | VM_NOSLEEP;
		x = rand_below(s, 2);
		why = "SLEEP|NOSLEEP";
		break;
	case 4:
		o.flags = (rand_below(s, 2) ? VMC_DEBUG : 0x4) | VM_NOSLEEP;
		x = rand_below(s, 2);
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
		o.align = q << rand_below(s, 4);
		o.phase = o.align + q * rand_below(s, 4);
		why = "phase >= align";
		break;
	case 8:
		if (q == 1)
			return;
		o.align = q * 4;
		o.phase = 1 + rand_below(s, q - 1);
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
		o.min = lo + 1 + rand_below(s, hi - lo);
		o.max = o.min - 1 - rand_below(s, o.min - lo);
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
	struct snapshot b;
	snapshot_take(m->vm, &b);
	uint64_t cbcalls = md(m)->kind == K_CB ? md(m)->cb->calls : 0;
	int e = x ? vmem_xalloc(m->vm, o.asked, o.align, o.phase, o.nocross, o.min, o.max, o.flags,
				ap)
		  : vmem_alloc(m->vm, o.asked, o.flags, ap);
	if (e != EINVAL)
		MFAIL(m, "returned %d, not EINVAL", e);
	expect_unchanged(m, &b, 0, "an allocation with bad arguments");
	if (md(m)->kind == K_CB && md(m)->cb->calls != cbcalls)
		MFAIL(m, "a bad allocation called the import callback");
	md(m)->n_badcalls++;
	g_ctx[ctxlen] = '\0';
}

static void op_contains(struct model *m, uint64_t *s)
{
	vmem_addr_t a;
	vmem_size_t sz = rand_below(s, 3) ? m->q * rand_below(s, 64) : rand_below(s, 8);
	if (m->nsp && rand_below(s, 2)) {
		const struct model_span *p = &m->sp[rand_below(s, m->nsp)];
		a = p->start + rand_below(s, p->size + 1) - (rand_below(s, 3) == 0 ? rand_below(s, 3) : 0);
		if (rand_below(s, 3) == 0)
			sz = p->start + p->size - a + rand_below(s, 2);
	} else {
		a = md(m)->reg_lo + rand_below(s, md(m)->reg_hi - md(m)->reg_lo);
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
			n += m->al[i].kind != MA_IMPORT;
		if (n == 0)
			break;
		op_good_free(m, s);
	}
}

static void modelled_init(struct modelled *t, const char *name, enum kind k, vmem_size_t q)
{
	memset(t, 0, sizeof(*t));
	model_reset(&t->m, name, NULL, q);
	t->kind = k;
}

static void tally(const struct model *m, uint64_t seed)
{
	const struct modelled *t = md(m);
	fprintf(stderr,
		"# %s q=%#" PRIx64 " seed %#" PRIx64 ": %" PRIu64 " allocated, %" PRIu64
		" ENOMEM, %" PRIu64 " bad calls refused, %" PRIu64 " imports, %zu spans at end\n",
		m->name, m->q, seed, t->n_ok, t->n_nomem, t->n_badcalls, t->n_imports, m->nsp);
}

/* A new arena for m, which must be created. */
static void create_for(struct model *m, const char *name, vmem_addr_t base, vmem_size_t size,
		       int flags)
{
	m->vm = vmem_create(name, base, size, m->q, m->qmax, flags);
	if (m->vm == NULL)
		MFAIL(NULL, "vmem_create(%s) failed: %d", name, errno);
	if (size)
		model_add_span(m, base, size, false);
}

/* One step of a random walk over the operations of m. */
static void step(struct model *m, uint64_t *s)
{
	uint64_t r = rand_below(s, 100);
	if (m->nal > 160 && r < 55)
		r = 60 + rand_below(s, 20); /* keep the population bounded */
	if (r < 28)
		op_alloc(m, s, false);
	else if (r < 55)
		op_alloc(m, s, true);
	else if (r < 80)
		op_good_free(m, s);
	else if (r < 88)
		op_bad_free(m, s);
	else if (r < 92) {
		if (m->nsp < 24 && md(m)->kind != K_PARENT)
			op_add(m, s);
	} else if (r < 94)
		op_bad_add(m, s);
	else if (r < 98)
		op_bad_alloc(m, s);
	else
		op_contains(m, s);
}

/* A new import limit for the child m, none a third of the time. */
static void new_limit(struct model *m, uint64_t *s)
{
	vmem_size_t l = rand_below(s, 3) == 0 ? 0 : m->q * (64 + rand_below(s, 4096));
	assert_int_equal(vmem_set_limit(m->vm, l), 0);
	m->limit = l;
	model_verify(m);
}

/* ---- the runs -------------------------------------------------------------------- */

/* One arena with spans of its own; with quantum caches of up to
 * qmax_quanta quanta when that is not 0, whose frees are checked too. */
static void run_arena(uint64_t seed, vmem_size_t q, uint64_t nops, vmem_size_t qmax_quanta)
{
	uint64_t s = seed;
	struct modelled t;
	struct model *m = &t.m;
	modelled_init(&t, qmax_quanta ? "cached" : "plain", K_PLAIN, q);
	m->qmax = qcache_max_clamped(q, qmax_quanta * q);
	vmem_addr_t base = rand_below(&s, 3) == 0 ? 0 : q * rand_below(&s, (uint64_t)1 << 28);
	vmem_size_t size = rand_below(&s, 5) == 0 ? 0 : q * (1 + rand_below(&s, 3000));
	t.create_base = base;
	t.reg_lo = base > q * 20000 ? base - q * 20000 : 0;
	t.reg_hi = base + size + q * 20000;
	t.cons_lo = t.reg_lo;
	t.cons_hi = t.reg_hi;
	snprintf(g_ctx, sizeof(g_ctx), "%s q=%#" PRIx64 " seed %#" PRIx64 " create", m->name, q, seed);
	create_for(m, "model", base, size, rand_below(&s, 2) ? VM_SLEEP : 0);
	model_verify(m);
	for (uint64_t i = 0; i < nops; i++) {
		snprintf(g_ctx, sizeof(g_ctx), "%s q=%#" PRIx64 " seed %#" PRIx64 " op %" PRIu64 ": ",
			 m->name, q, seed, i);
		if (m->nsp == 0 || (m->nsp < 3 && rand_below(&s, 10) == 0))
			op_add(m, &s);
		else
			step(m, &s);
	}
	snprintf(g_ctx, sizeof(g_ctx), "%s q=%#" PRIx64 " seed %#" PRIx64 " drain: ", m->name, q, seed);
	drain(m, &s);
	if (m->alloc_total != 0 || m->runs.n != m->nsp)
		MFAIL(m, "drained arena is not all free");
	expect_empty(m->vm); /* it reaps: what the caches held goes back */
	model_verify(m);
	tally(m, seed);
	vmem_destroy(m->vm);
	model_fini(m);
}

static void run_plain(uint64_t seed, vmem_size_t q, uint64_t nops)
{
	run_arena(seed, q, nops, 0);
}

static void run_cached(uint64_t seed, vmem_size_t q, uint64_t nops)
{
	run_arena(seed, q, nops, 8);
}

/* A child with vmem_set_source: the parent is modelled too. */
static void run_source(uint64_t seed, vmem_size_t pq, uint64_t nops)
{
	uint64_t s = seed;
	vmem_size_t cq = pq * (rand_below(&s, 2) ? 1 : 4);
	struct modelled pt, ct;
	struct model *p = &pt.m, *c = &ct.m;
	modelled_init(&pt, "parent", K_PARENT, pq);
	modelled_init(&ct, "source-child", K_SOURCE, cq);
	ct.parent = p;

	vmem_size_t pw = cq * (1024 + rand_below(&s, 4096));
	vmem_addr_t pb = rand_below(&s, 4) == 0 ? 0 : cq * rand_below(&s, (uint64_t)1 << 24);
	pt.create_base = pb;
	pt.reg_lo = pb;
	pt.reg_hi = pb + 3 * pw;
	ct.reg_lo = pb + 4 * pw;
	ct.reg_hi = pb + 6 * pw;
	pt.cons_lo = ct.cons_lo = pb;
	pt.cons_hi = ct.cons_hi = ct.reg_hi;
	snprintf(g_ctx, sizeof(g_ctx), "source cq=%#" PRIx64 " seed %#" PRIx64 " setup", cq, seed);
	create_for(p, "parent", pb, pw, 0);
	/* a second parent span: adjacent or not */
	vmem_addr_t b2 = pb + pw + (rand_below(&s, 2) ? 0 : cq * rand_below(&s, 64));
	vmem_size_t w2 = cq * (1 + rand_below(&s, 1024));
	assert_int_equal(vmem_add(p->vm, b2, w2, 0), 0);
	model_add_span(p, b2, w2, false);
	model_verify(p);

	vmem_size_t csize = rand_below(&s, 2) ? 0 : cq * (1 + rand_below(&s, 64));
	ct.create_base = csize ? ct.reg_lo : 0;
	create_for(c, "child", csize ? ct.reg_lo : 0, csize, 0);
	const vmem_size_t iqs[] = {0, cq, 4 * cq};
	ct.iq = iqs[rand_below(&s, 3)];
	assert_int_equal(vmem_set_source(c->vm, p->vm, ct.iq), 0);
	/* loops are refused, and change nothing */
	struct snapshot b;
	snapshot_take(p->vm, &b);
	assert_int_equal(vmem_set_source(p->vm, c->vm, 0), EINVAL);
	expect_unchanged(p, &b, 0, "a looping vmem_set_source");
	assert_int_equal(vmem_set_source(c->vm, c->vm, 0), EINVAL);
	if (rand_below(&s, 2)) {
		c->limit = cq * (256 + rand_below(&s, 2048));
		assert_int_equal(vmem_set_limit(c->vm, c->limit), 0);
	}
	model_verify(c);

	bool busy_checked = false;
	for (uint64_t i = 0; i < nops; i++) {
		snprintf(g_ctx, sizeof(g_ctx),
			 "source cq=%#" PRIx64 " iq=%#" PRIx64 " limit=%#" PRIx64 " seed %#" PRIx64
			 " op %" PRIu64 ": ",
			 cq, ct.iq, c->limit, seed, i);
		uint64_t r = rand_below(&s, 100);
		if (r < 10) {
			/* the parent's own traffic fragments it */
			uint64_t k = rand_below(&s, 3);
			if (k == 0 || p->nal > 100)
				op_good_free(p, &s);
			else
				op_alloc(p, &s, k == 2);
		} else if (r < 12) {
			new_limit(c, &s);
		} else {
			step(c, &s);
		}
		if (!busy_checked && c->allocs > 0) {
			busy_checked = true;
			snapshot_take(c->vm, &b);
			assert_int_equal(vmem_set_source(c->vm, p->vm, 0), EBUSY);
			assert_int_equal(vmem_set_import(c->vm, cb_import, cb_release, NULL, 0), EBUSY);
			expect_unchanged(c, &b, 0, "vmem_set_source after allocating");
		}
	}
	snprintf(g_ctx, sizeof(g_ctx), "source cq=%#" PRIx64 " seed %#" PRIx64 " drain: ", cq, seed);
	drain(c, &s);
	tally(c, seed);
	vmem_destroy(c->vm);
	/* destroying the child returns its imports to the parent */
	for (size_t i = 0; i < p->nal;) {
		if (p->al[i].kind == MA_IMPORT) {
			model_remove_alloc(p, i);
			p->frees++;
		} else {
			i++;
		}
	}
	snprintf(g_ctx, sizeof(g_ctx), "source seed %#" PRIx64 " after destroying the child", seed);
	model_verify(p);
	drain(p, &s);
	tally(p, seed);
	vmem_destroy(p->vm);
	model_fini(c);
	model_fini(p);
}

/* A child with vmem_set_import callbacks over a pool arena. */
static void run_callbacks(uint64_t seed, vmem_size_t q, uint64_t nops)
{
	uint64_t s = seed;
	struct cbstate cb;
	memset(&cb, 0, sizeof(cb));
	struct modelled ct;
	struct model *c = &ct.m;
	modelled_init(&ct, "cb-child", K_CB, q);
	ct.cb = &cb;
	vmem_size_t pw = q * (2048 + rand_below(&s, 4096));
	vmem_addr_t pb = rand_below(&s, 4) == 0 ? 0 : q * rand_below(&s, (uint64_t)1 << 24);
	ct.reg_lo = pb + 2 * pw;
	ct.reg_hi = pb + 4 * pw;
	ct.cons_lo = pb;
	ct.cons_hi = ct.reg_hi;
	cb.q = q;
	cb.rng = seed ^ 0xcbcbcb;
	cb.fail_pct = rand_below(&s, 2) ? 0 : 10;
	snprintf(g_ctx, sizeof(g_ctx), "callbacks q=%#" PRIx64 " seed %#" PRIx64 " setup", q, seed);
	cb.pool = vmem_create("pool", pb, pw, q, 0, 0);
	if (cb.pool == NULL)
		MFAIL(NULL, "vmem_create(pool) failed: %d", errno);
	vmem_size_t csize = rand_below(&s, 2) ? 0 : q * (1 + rand_below(&s, 64));
	ct.create_base = csize ? ct.reg_lo : 0;
	create_for(c, "cbchild", csize ? ct.reg_lo : 0, csize, 0);
	const vmem_size_t iqs[] = {0, q, 8 * q};
	ct.iq = cb.iq = iqs[rand_below(&s, 3)];
	struct snapshot b;
	snapshot_take(c->vm, &b);
	if (q > 1)
		assert_int_equal(vmem_set_import(c->vm, cb_import, cb_release, &cb, q + q / 2),
				 EINVAL);
	expect_unchanged(c, &b, 0, "vmem_set_import with a bad import quantum");
	assert_int_equal(vmem_set_import(c->vm, cb_import, cb_release, &cb, ct.iq), 0);
	if (rand_below(&s, 2)) {
		c->limit = q * (512 + rand_below(&s, 2048));
		assert_int_equal(vmem_set_limit(c->vm, c->limit), 0);
	}
	model_verify(c);

	for (uint64_t i = 0; i < nops; i++) {
		snprintf(g_ctx, sizeof(g_ctx),
			 "callbacks q=%#" PRIx64 " iq=%#" PRIx64 " limit=%#" PRIx64
			 " seed %#" PRIx64 " op %" PRIu64 ": ",
			 q, ct.iq, c->limit, seed, i);
		if (rand_below(&s, 100) < 2)
			new_limit(c, &s);
		else
			step(c, &s);
	}
	snprintf(g_ctx, sizeof(g_ctx), "callbacks q=%#" PRIx64 " seed %#" PRIx64 " drain: ", q,
		 seed);
	drain(c, &s);
	tally(c, seed);
	/* destroy gives every remaining import back through the release callback */
	size_t left = cb.out.n;
	cb.rel.n = 0;
	vmem_destroy(c->vm);
	if (cb.bad)
		MFAIL(NULL, "%s", cb.err);
	if (cb.out.n != 0 || cb.rel.n != left)
		MFAIL(NULL, "destroy released %zu of %zu imports", cb.rel.n, left);
	assert_int_equal(vmem_size(cb.pool, VMEM_ALLOC), 0);
	CHECK_ARENA(cb.pool);
	vmem_destroy(cb.pool);
	seglist_free(&cb.out);
	seglist_free(&cb.imp);
	seglist_free(&cb.rel);
	model_fini(c);
}

/* ---- the tests -------------------------------------------------------------------- */

/*
 * Which free goes with which allocation when quantum caching is on: a
 * vmem_xalloc segment of a cached size must go back with vmem_xfree
 * (EINVAL under VMC_DEBUG, nothing changed); a larger one may go back with
 * vmem_free.  The random runs use qcache_max 0, where every vmem_xalloc
 * segment is "larger than qcache_max".
 */
TEST(test_free_kinds)
{
	vmem_t *vm = arena_new("kinds", 0x10000, 0x10000, 16, 4 * 16, VMC_DEBUG);
	vmem_addr_t a, b;
	assert_int_equal(vmem_xalloc(vm, 16, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_xalloc(vm, 128, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &b), 0);
	CHECK_ARENA(vm);
	fprintf(stderr, "# a VMC_DEBUG report of a bad free is expected next:\n");
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, 16)); /* a cached-size vmem_xalloc segment */
	assert_int_equal(vmem_xfree(vm, a, 16), 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_free(vm, b, 128), 0); /* acts as vmem_xfree */
	CHECK_ARENA(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

/* The model's fit function against brute force, so the model can be trusted. */
TEST(test_reference)
{
	uint64_t s = 12345;
	for (int i = 0; i < 20000; i++) {
		struct fitq r;
		vmem_addr_t start = rand_below(&s, 200);
		vmem_size_t size = 1 + rand_below(&s, 200);
		r.size = 1 + rand_below(&s, 40);
		r.align = (vmem_size_t)1 << rand_below(&s, 7);
		r.phase = rand_below(&s, r.align);
		r.nocross = 0;
		if (rand_below(&s, 2)) {
			r.nocross = 1;
			while (r.nocross < r.size)
				r.nocross <<= 1;
			r.nocross <<= rand_below(&s, 3);
		}
		r.min = rand_below(&s, 2) ? 0 : rand_below(&s, 400);
		r.max = rand_below(&s, 2) ? VMEM_ADDR_MAX : r.min + rand_below(&s, 400);
		vmem_addr_t lb = rand_below(&s, 2) ? 0 : rand_below(&s, 400);
		vmem_addr_t got = 0, want = 0;
		bool bw = false;
		for (vmem_addr_t a = start; a + r.size <= start + size; a++) {
			if (a >= lb && fitq_holds(&r, a)) {
				want = a;
				bw = true;
				break;
			}
		}
		bool bg = fit_lowest_in(start, size, &r, lb, &got);
		assert_int_equal(bg, bw);
		if (bw)
			assert_int_equal(got, want);
	}
}

/* Four seeds for each of the quanta 1, 8 and 4096. */
static void run_each_quantum(uint64_t seed, uint64_t nops,
			     void (*run)(uint64_t seed, vmem_size_t q, uint64_t nops))
{
	const vmem_size_t qs[] = {1, 8, 4096};
	for (int k = 0; k < 4; k++)
		for (int qi = 0; qi < 3; qi++)
			run(seed + (uint64_t)k * 0x1000 + (uint64_t)qi, qs[qi], nops);
}

TEST(test_plain)
{
	run_each_quantum(test_seed(0x6d6f64656c), test_scale(4000), run_plain);
}

/* The same with quantum caches: allocations of cached sizes come from
 * slabs, and bad frees of those sizes must be refused as every other. */
TEST(test_cached)
{
	run_each_quantum(test_seed(0x636163686564), test_scale(4000), run_cached);
}

TEST(test_source)
{
	run_each_quantum(test_seed(0x736f75726365), test_scale(3000), run_source);
}

TEST(test_callbacks)
{
	run_each_quantum(test_seed(0x63616c6c), test_scale(3000), run_callbacks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference),
		cmocka_unit_test(test_free_kinds),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_cached),
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_callbacks),
	};
	model_failure = failed_here;
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	fprintf(stderr, "# vmem_xfree of a vmem_alloc segment: accepted %" PRIu64
		", refused (EINVAL) %" PRIu64 "\n",
		g_xfree_of_alloc_ok, g_xfree_of_alloc_einval);
	return rc;
}
