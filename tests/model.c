/*
 * model.c - the reference the suites and the fuzzer compare the arena
 * with; see model.h.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "model.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "seams.h"

/* ---- policies ------------------------------------------------------------ */

const int policies[NPOLICIES] = {0, VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};

const char *policy_name(int flags)
{
	switch (flags & POLICY_MASK) {
	case VM_INSTANTFIT: return "INSTANTFIT";
	case VM_BESTFIT: return "BESTFIT";
	case VM_FIRSTFIT: return "FIRSTFIT";
	case VM_NEXTFIT: return "NEXTFIT";
	default: return "default";
	}
}

/* ---- the arena as it shows itself -------------------------------------------- */

void seglist_grow(struct seglist *l)
{
	l->cap = l->cap ? 2 * l->cap : 256;
	l->v = realloc(l->v, l->cap * sizeof(*l->v));
	if (l->v == NULL)
		abort();
}

static void seglist_cb(void *arg, vmem_addr_t addr, vmem_size_t size, int type)
{
	seglist_push(arg, addr, size, type);
}

int seglist_walk(vmem_t *vm, int mask, struct seglist *l)
{
	l->n = 0;
	return vmem_walk(vm, mask, seglist_cb, l);
}

long seglist_find(const struct seglist *l, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < l->n; i++)
		if (a >= l->v[i].addr && (u128)a + s <= (u128)l->v[i].addr + l->v[i].size)
			return (long)i;
	return -1;
}

void seglist_free(struct seglist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int stats_read(vmem_t *vm, vmem_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return vmem_get_stats(vm, st);
}

const char *invariant_name(int inv, char *buf, size_t len)
{
	if (inv == 0)
		snprintf(buf, len, "none");
	else if (inv > 100)
		snprintf(buf, len, "Q%d", inv - 100);
	else
		snprintf(buf, len, "I%d", inv);
	return buf;
}

bool arena_check(vmem_t *vm, char *msg, size_t len)
{
	char why[512], name[16];
	int inv = vmem_check(vm, why, sizeof(why));
	if (inv == 0)
		return true;
	snprintf(msg, len, "invariant %s broken: %s", invariant_name(inv, name, sizeof(name)), why);
	return false;
}

/* ---- the fit oracle --------------------------------------------------------- */

/* The lowest a >= lo with a % align == phase. */
static u128 phase_up(u128 lo, u128 align, u128 phase)
{
	if (lo <= phase)
		return phase;
	return phase + (lo - phase + align - 1) / align * align;
}

bool fitq_holds(const struct fitq *r, vmem_addr_t a)
{
	u128 last = (u128)a + r->size - 1;
	if (last >= TOP_END)
		return false;
	if (a % r->align != r->phase)
		return false;
	if (r->nocross && a / r->nocross != (vmem_addr_t)last / r->nocross)
		return false;
	return a >= r->min && last <= r->max;
}

bool fit_lowest_in(vmem_addr_t start, vmem_size_t size, const struct fitq *r, u128 lb,
		   vmem_addr_t *ap)
{
	u128 lo = start;
	if (r->min > lo)
		lo = r->min;
	if (lb > lo)
		lo = lb;
	u128 hi = (u128)start + size; /* exclusive */
	if ((u128)r->max + 1 < hi)
		hi = (u128)r->max + 1;
	u128 a = phase_up(lo, r->align, r->phase);
	/* When a crosses a nocross boundary, the next candidate is the first
	 * aligned address at or after that boundary; after one move every
	 * later block looks the same, so a third try never helps. */
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

bool fit_lowest(const struct seglist *runs, const struct fitq *r, u128 lb, vmem_addr_t *ap,
		size_t *runp)
{
	for (size_t i = 0; i < runs->n; i++) {
		const struct seg *g = &runs->v[i];
		if ((u128)g->addr + g->size <= lb)
			continue;
		if (fit_lowest_in(g->addr, g->size, r, lb, ap)) {
			if (runp)
				*runp = i;
			return true;
		}
	}
	return false;
}

vmem_size_t fit_best_size(const struct seglist *runs, const struct fitq *r)
{
	vmem_size_t best = VMEM_ADDR_MAX;
	for (size_t i = 0; i < runs->n; i++) {
		vmem_addr_t a;
		if (runs->v[i].size < best && fit_lowest_in(runs->v[i].addr, runs->v[i].size, r, 0, &a))
			best = runs->v[i].size;
	}
	return best;
}

bool round_to_quantum(vmem_size_t s, vmem_size_t q, vmem_size_t *out)
{
	u128 r = ((u128)s + q - 1) / q * q;
	if (r >= TOP_END)
		return false;
	*out = (vmem_size_t)r;
	return true;
}

vmem_size_t qcache_max_clamped(vmem_size_t q, vmem_size_t qmax)
{
	if (qmax == 0)
		return 0;
	u128 cap = (u128)VMEM_QCACHE_MAX * q;
	u128 r = ((u128)qmax + q - 1) / q * q;
	if (r > cap)
		r = cap;
	if (r >= TOP_END)
		r = (TOP_END - 1) & ~(u128)(q - 1);
	/* a cache's 64-object slab, and its power-of-two alignment, must fit
	 * in 64 bits: objects of at most 2^57 units */
	u128 fit = ((u128)1 << 57) & ~(u128)(q - 1);
	if (r > fit)
		r = fit;
	return (vmem_size_t)r;
}

/* ---- the reference model ---------------------------------------------------------- */

void model_reset(struct model *m, const char *name, vmem_t *vm, vmem_size_t q)
{
	const struct model old = *m; /* its buffers stay, emptied */
	*m = (struct model){.name = name, .vm = vm, .q = q, .recent_cap = MODEL_RECENT,
			    .sp = old.sp, .capsp = old.capsp, .al = old.al, .capal = old.capal,
			    .expect = old.expect, .runs = old.runs, .walk = old.walk};
	m->expect.n = m->runs.n = m->walk.n = 0;
}

void model_fini(struct model *m)
{
	free(m->sp);
	free(m->al);
	seglist_free(&m->expect);
	seglist_free(&m->runs);
	seglist_free(&m->walk);
	memset(m, 0, sizeof(*m));
}

long model_span_of(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < m->nsp; i++)
		if (a >= m->sp[i].start && (u128)a + s <= (u128)m->sp[i].start + m->sp[i].size)
			return (long)i;
	return -1;
}

bool model_overlaps_span(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (size_t i = 0; i < m->nsp; i++)
		if ((u128)a < (u128)m->sp[i].start + m->sp[i].size &&
		    (u128)m->sp[i].start < (u128)a + s)
			return true;
	return false;
}

bool model_span_busy(const struct model *m, const struct model_span *s)
{
	for (size_t j = 0; j < m->nal; j++)
		if (m->al[j].addr >= s->start && (u128)m->al[j].addr < (u128)s->start + s->size)
			return true;
	return false;
}

void model_add_span(struct model *m, vmem_addr_t start, vmem_size_t size, bool imported)
{
	if (model_overlaps_span(m, start, size))
		MODEL_FAIL(m, "%s: span [%#" PRIx64 ", +%#" PRIx64 ") overlaps another", m->name,
			   start, size);
	if (m->nsp == m->capsp) {
		m->capsp = m->capsp ? 2 * m->capsp : 32;
		m->sp = realloc(m->sp, m->capsp * sizeof(*m->sp));
		if (m->sp == NULL)
			abort();
	}
	size_t i = m->nsp++;
	while (i > 0 && m->sp[i - 1].start > start) {
		m->sp[i] = m->sp[i - 1];
		i--;
	}
	m->sp[i] = (struct model_span){start, size, imported};
}

void model_remove_span(struct model *m, size_t i)
{
	memmove(&m->sp[i], &m->sp[i + 1], (m->nsp - i - 1) * sizeof(*m->sp));
	m->nsp--;
}

/* Where a belongs in the allocations: its index, or where to insert it. */
static size_t alloc_slot(const struct model *m, vmem_addr_t a)
{
	size_t lo = 0, hi = m->nal;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->al[mid].addr < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

long model_find_alloc(const struct model *m, vmem_addr_t a)
{
	size_t i = alloc_slot(m, a);
	return i < m->nal && m->al[i].addr == a ? (long)i : -1;
}

void model_insert_alloc(struct model *m, vmem_addr_t a, vmem_size_t s, vmem_size_t asked,
			int kind)
{
	if (model_span_of(m, a, s) < 0)
		MODEL_FAIL(m, "%s: [%#" PRIx64 ", +%#" PRIx64 ") does not lie inside one span",
			   m->name, a, s);
	size_t i = alloc_slot(m, a);
	if (i < m->nal && m->al[i].addr == a)
		MODEL_FAIL(m, "%s: %#" PRIx64 " handed out twice", m->name, a);
	if (i > 0 && (u128)m->al[i - 1].addr + m->al[i - 1].size > a)
		MODEL_FAIL(m, "%s: [%#" PRIx64 ", +%#" PRIx64 ") overlaps the allocation at %#" PRIx64,
			   m->name, a, s, m->al[i - 1].addr);
	if (i < m->nal && (u128)a + s > m->al[i].addr)
		MODEL_FAIL(m, "%s: [%#" PRIx64 ", +%#" PRIx64 ") overlaps the allocation at %#" PRIx64,
			   m->name, a, s, m->al[i].addr);
	if (m->nal == m->capal) {
		m->capal = m->capal ? 2 * m->capal : 64;
		m->al = realloc(m->al, m->capal * sizeof(*m->al));
		if (m->al == NULL)
			abort();
	}
	memmove(&m->al[i + 1], &m->al[i], (m->nal - i) * sizeof(*m->al));
	m->al[i] = (struct model_alloc){a, s, asked, kind};
	m->nal++;
}

void model_remove_alloc(struct model *m, size_t i)
{
	memmove(&m->al[i], &m->al[i + 1], (m->nal - i - 1) * sizeof(*m->al));
	m->nal--;
}

void model_note_freed(struct model *m, const struct model_alloc *a)
{
	m->recent[m->nrecent++ % m->recent_cap] = *a;
}

unsigned int model_nrecent(const struct model *m)
{
	return m->nrecent < m->recent_cap ? m->nrecent : m->recent_cap;
}

/* A free run, into the expected walk and the runs. */
static void expect_free(struct model *m, u128 from, u128 to)
{
	seglist_push(&m->expect, (vmem_addr_t)from, (vmem_size_t)(to - from), VMEM_FREE);
	seglist_push(&m->runs, (vmem_addr_t)from, (vmem_size_t)(to - from), VMEM_FREE);
}

void model_expect(struct model *m)
{
	m->expect.n = m->runs.n = 0;
	m->span_total = m->alloc_total = m->import_total = 0;
	m->nimported = 0;
	size_t j = 0;
	for (size_t i = 0; i < m->nsp; i++) {
		const struct model_span *s = &m->sp[i];
		u128 pos = s->start, end = (u128)s->start + s->size;
		seglist_push(&m->expect, s->start, s->size, VMEM_SPAN);
		m->span_total += s->size;
		if (s->imported) {
			m->import_total += s->size;
			m->nimported++;
		}
		while (j < m->nal && m->al[j].addr < end) {
			const struct model_alloc *a = &m->al[j];
			if (a->addr < pos || (u128)a->addr + a->size > end)
				MODEL_FAIL(m, "%s: model inconsistent: allocation %#" PRIx64
					      " not in a span",
					   m->name, a->addr);
			if (a->addr > pos)
				expect_free(m, pos, a->addr);
			seglist_push(&m->expect, a->addr, a->size, VMEM_ALLOC);
			m->alloc_total += a->size;
			pos = (u128)a->addr + a->size;
			j++;
		}
		if (pos < end)
			expect_free(m, pos, end);
	}
	if (j != m->nal)
		MODEL_FAIL(m, "%s: model inconsistent: allocation %#" PRIx64 " outside every span",
			   m->name, m->al[j].addr);
}

static const char *type_name(int t)
{
	return t == VMEM_ALLOC ? "alloc" : t == VMEM_FREE ? "free" : t == VMEM_SPAN ? "span" : "?";
}

/* Into m->walk, every segment of a known type. */
static void model_walk_cb(void *arg, vmem_addr_t addr, vmem_size_t size, int type)
{
	struct model *m = arg;
	if (type != VMEM_ALLOC && type != VMEM_FREE && type != VMEM_SPAN)
		MODEL_FAIL(m, "%s: vmem_walk gave type %d", m->name, type);
	seglist_push(&m->walk, addr, size, type);
}

void model_read_walk(struct model *m)
{
	m->walk.n = 0;
	int e = vmem_walk(m->vm, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, model_walk_cb, m);
	if (e != 0)
		MODEL_FAIL(m, "%s: vmem_walk returned %d", m->name, e);
}

bool model_walk_exact(const struct model *m, const struct seglist *w, char *why, size_t len)
{
	for (size_t i = 0; i < m->expect.n; i++) {
		const struct seg *x = &m->expect.v[i], *g = i < w->n ? &w->v[i] : NULL;
		if (g != NULL && g->addr == x->addr && g->size == x->size && g->type == x->type)
			continue;
		int k = snprintf(why, len, "walk entry %zu: the model has %s [%#" PRIx64 ", +%#" PRIx64
				 "), the arena ",
				 i, type_name(x->type), x->addr, x->size);
		if (g != NULL)
			snprintf(why + k, len - (size_t)k, "%s [%#" PRIx64 ", +%#" PRIx64 ")",
				 type_name(g->type), g->addr, g->size);
		else
			snprintf(why + k, len - (size_t)k, "no more");
		return false;
	}
	if (w->n != m->expect.n) {
		snprintf(why, len, "the walk has %zu entries, the model %zu", w->n, m->expect.n);
		return false;
	}
	return true;
}

void model_walk_loose(const struct model *m, const struct seglist *w)
{
	size_t si = 0, j = 0;
	u128 pos = 0, end = 0; /* the span being tiled */
	for (size_t i = 0; i < w->n; i++) {
		const struct seg *g = &w->v[i];
		if (g->type == VMEM_SPAN) {
			if (pos != end)
				MODEL_FAIL(m, "%s: the segments of the span before %#" PRIx64
					      " end at %#" PRIx64,
					   m->name, g->addr, (uint64_t)pos);
			if (si >= m->nsp || m->sp[si].start != g->addr || m->sp[si].size != g->size)
				MODEL_FAIL(m, "%s: walk shows span [%#" PRIx64 ", +%#" PRIx64
					      "), not in the model",
					   m->name, g->addr, g->size);
			si++;
			pos = g->addr;
			end = (u128)g->addr + g->size;
			continue;
		}
		if (g->addr != pos || (u128)g->addr + g->size > end)
			MODEL_FAIL(m, "%s: segment [%#" PRIx64 ", +%#" PRIx64 ") does not tile its span",
				   m->name, g->addr, g->size);
		pos += g->size;
		/* allocations that start in this segment must end in it, and it
		 * must be allocated */
		while (j < m->nal && (u128)m->al[j].addr < pos) {
			const struct model_alloc *a = &m->al[j];
			if (a->addr < g->addr)
				MODEL_FAIL(m, "%s: allocation %#" PRIx64 " not covered by the walk",
					   m->name, a->addr);
			if (g->type != VMEM_ALLOC || (u128)a->addr + a->size > pos)
				MODEL_FAIL(m, "%s: allocation [%#" PRIx64 ", +%#" PRIx64
					      ") is not inside an allocated segment",
					   m->name, a->addr, a->size);
			j++;
		}
	}
	if (pos != end)
		MODEL_FAIL(m, "%s: the segments of the last span end at %#" PRIx64, m->name,
			   (uint64_t)pos);
	if (si != m->nsp)
		MODEL_FAIL(m, "%s: walk has %zu spans, the model %zu", m->name, si, m->nsp);
	if (j != m->nal)
		MODEL_FAIL(m, "%s: %zu allocations lie outside every segment", m->name, m->nal - j);
}

static void expect_size(struct model *m, int mask, const char *what, vmem_size_t want)
{
	vmem_size_t got = vmem_size(m->vm, mask);
	if (got != want)
		MODEL_FAIL(m, "%s: vmem_size(%s) = %#" PRIx64 ", the statistics say %#" PRIx64,
			   m->name, what, got, want);
}

void model_verify(struct model *m)
{
	char why[600];
	if (!arena_check(m->vm, why, sizeof(why)))
		MODEL_FAIL(m, "%s: %s", m->name, why);
	model_read_walk(m);
	model_expect(m);
	bool exact = model_walk_exact(m, &m->walk, why, sizeof(why));
	if (!exact) {
		if (m->qmax == 0)
			MODEL_FAIL(m, "%s: %s", m->name, why);
		model_walk_loose(m, &m->walk);
	}

	vmem_stats_t st;
	int e = stats_read(m->vm, &st);
	if (e != 0)
		MODEL_FAIL(m, "%s: vmem_get_stats returned %d", m->name, e);
#define EXPECT_STAT(what, got, want)                                                              \
	do {                                                                                      \
		if ((uint64_t)(got) != (uint64_t)(want))                                          \
			MODEL_FAIL(m, "%s: stats.%s = %" PRIu64 ", the model says %" PRIu64,      \
				   m->name, what, (uint64_t)(got), (uint64_t)(want));             \
	} while (0)
	EXPECT_STAT("span_total", st.span_total, m->span_total);
	EXPECT_STAT("import_total", st.import_total, m->import_total);
	EXPECT_STAT("nspans", st.nspans, m->nsp);
	EXPECT_STAT("alloc_total - cached_total", st.alloc_total - st.cached_total, m->alloc_total);
	EXPECT_STAT("free_total", st.free_total, m->span_total - st.alloc_total);
	EXPECT_STAT("allocs", st.allocs, m->allocs);
	EXPECT_STAT("frees", st.frees, m->frees);
	EXPECT_STAT("waits", st.waits, 0);
	EXPECT_STAT("imports", st.imports, m->imports);
	EXPECT_STAT("releases", st.releases, m->releases);
	EXPECT_STAT("imports - releases", st.imports - st.releases, m->nimported);
	if (exact) {
		EXPECT_STAT("nalloc", st.nalloc, m->nal);
		EXPECT_STAT("nfree", st.nfree, m->runs.n);
		EXPECT_STAT("cached_total", st.cached_total, 0);
	}
	if (m->qmax == 0) {
		EXPECT_STAT("qcache_hits", st.qcache_hits, 0);
		EXPECT_STAT("qcache_misses", st.qcache_misses, 0);
	} else if (st.qcache_hits + st.qcache_misses < m->qc_ok ||
		   st.qcache_hits + st.qcache_misses > m->qc_ok + m->qc_fail) {
		MODEL_FAIL(m, "%s: %" PRIu64 " qcache hits + misses for %" PRIu64
			      " cached allocations (%" PRIu64 " failed)",
			   m->name, st.qcache_hits + st.qcache_misses, m->qc_ok, m->qc_fail);
	}
	if (m->fails_loose) {
		if (st.fails < m->fails)
			MODEL_FAIL(m, "%s: stats.fails went back to %" PRIu64, m->name, st.fails);
		m->fails = st.fails;
	} else {
		EXPECT_STAT("fails", st.fails, m->fails);
	}
#undef EXPECT_STAT
	expect_size(m, VMEM_ALLOC, "VMEM_ALLOC", st.alloc_total);
	expect_size(m, VMEM_FREE, "VMEM_FREE", st.free_total);
	expect_size(m, VMEM_ALLOC | VMEM_FREE, "VMEM_ALLOC | VMEM_FREE", st.span_total);
	expect_size(m, VMEM_SPAN, "VMEM_SPAN", st.span_total);
}

static const char *kind_name(int kind)
{
	return kind == MA_ALLOC ? "vmem_alloc" : kind == MA_XALLOC ? "vmem_xalloc" : "import";
}

void model_print(const struct model *m, FILE *f)
{
	fprintf(f,
		"# model %s: quantum %#" PRIx64 ", qcache_max %#" PRIx64 "%s, %zu spans, %zu "
		"allocations, counters %" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
		m->name, m->q, m->qmax, m->debug ? ", debug" : "", m->nsp, m->nal, m->allocs,
		m->frees, m->fails);
	for (size_t i = 0; i < m->nsp; i++)
		fprintf(f, "#   span [%#" PRIx64 ", +%#" PRIx64 ")%s\n", m->sp[i].start,
			m->sp[i].size, m->sp[i].imported ? " imported" : "");
	for (size_t i = 0; i < m->nal && i < 400; i++)
		fprintf(f, "#   alloc [%#" PRIx64 ", +%#" PRIx64 ") %s\n", m->al[i].addr,
			m->al[i].size, kind_name(m->al[i].kind));
	if (m->vm != NULL) {
		fprintf(f, "# the arena:\n");
		vmem_dump(m->vm, f);
	}
}

/* ---- failures ---------------------------------------------------------------------- */

void (*model_failure)(const struct model *m, const char *msg);

void model_fail_at(const struct model *m, const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	const char *base = strrchr(file, '/');
	int k = snprintf(msg, sizeof(msg), "%s:%d: ", base ? base + 1 : file, line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + k, sizeof(msg) - (size_t)k, fmt, ap);
	va_end(ap);
	if (model_failure != NULL) {
		model_failure(m, msg);
	} else {
		fflush(stdout);
		if (m != NULL)
			model_print(m, stderr);
		fprintf(stderr, "%s\n", msg);
	}
	abort();
}
