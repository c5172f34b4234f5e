/*
 * vmem_fuzz.c - libFuzzer targets: input bytes become a sequence of vmem
 * calls, and after every call the arena is compared with a reference model
 * (an interval set of spans and allocations) and the invariant checker
 * (vmem_check) runs.  Any disagreement prints the call, the model and the
 * arena, and aborts, so libFuzzer saves the input.
 *
 * FUZZ_MODE 0 (fuzz_arena): one arena, created with a random quantum, a span
 *   anywhere in the 64-bit space (reaching 2^64 included), quantum caches on
 *   or off, VMC_DEBUG or not; vmem_add, vmem_alloc and vmem_xalloc with
 *   every policy and constraint, frees of every kind (bad ones included),
 *   reaps, failed mappings (os_fault_after), bad arguments, re-creation.
 * FUZZ_MODE 1 (fuzz_import): a child arena importing from a parent with
 *   vmem_set_source, or from a pool arena through vmem_set_import callbacks
 *   that can refuse or hand back unusable spans; operations go to both.
 *
 * What is checked after each call:
 *  - the arena's vmem_walk is exactly the model (spans, allocated and free
 *    segments) and vmem_get_stats/vmem_size agree with it; with quantum
 *    caches on, where segments may be cache slabs, every allocation the
 *    model holds must lie inside an allocated segment instead;
 *  - every result meets its constraints, lies in one free segment that
 *    existed before the call (or in a span the call imported), and is the
 *    lowest (VM_FIRSTFIT), the first after the cursor (VM_NEXTFIT) or in a
 *    smallest fitting segment (VM_BESTFIT);
 *  - ENOMEM only when nothing fits (and, for a child, when its source
 *    cannot meet the request either) or when an injected fault fired;
 *  - EINVAL for every bad argument and bad free, and the arena unchanged;
 *  - imported spans are outstanding allocations of the parent (or imports
 *    of the callback), released whole, with the same address and size;
 *  - all mapped memory comes back after destroy (os_mapped_bytes).
 *
 * The same file builds with any compiler into a replay driver (replay.c)
 * that runs the committed corpus and the regression inputs as a test.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "vmem_impl.h"

#ifndef FUZZ_MODE
#define FUZZ_MODE 0
#endif

typedef unsigned __int128 u128;
#define TOP ((u128)1 << 64)
#define M64 VMEM_ADDR_MAX
#define MAYBE_UNUSED __attribute__((unused)) /* used by one FUZZ_MODE only */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- input -------------------------------------------------------------- */

struct input {
	const uint8_t *p;
	size_t n;
};

static unsigned int in8(struct input *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static unsigned int in16(struct input *in)
{
	unsigned int lo = in8(in);
	return lo | in8(in) << 8;
}

static uint64_t in64(struct input *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)in8(in) << (8 * i);
	return v;
}

/* A number of up to maxbits bits, its width chosen first: small and huge
 * values are equally likely. */
static uint64_t inbits(struct input *in, unsigned int maxbits)
{
	unsigned int k = in8(in) % (maxbits + 1);
	if (k == 0)
		return 0;
	uint64_t v = k <= 8 ? in8(in) : k <= 16 ? in16(in) : in64(in);
	return k >= 64 ? v : v & ((1ull << k) - 1);
}

/* ---- the model ------------------------------------------------------------ */

enum { K_ALLOC = 1, K_XALLOC = 2, K_CHILD = 3 /* a span some child imported */ };

struct mal {
	vmem_addr_t a;
	vmem_size_t s;     /* rounded */
	vmem_size_t asked; /* as passed */
	int kind;
};
struct mspan {
	vmem_addr_t a;
	vmem_size_t s;
	bool imported;
};
struct seg {
	vmem_addr_t a;
	vmem_size_t s;
	int t;
};

#define MAXAL 2048
#define MAXSP 1024
#define MAXSEG (2 * MAXAL + 2 * MAXSP + 64)

struct model {
	const char *role;
	vmem_t *vm;
	vmem_size_t q, qmax; /* qmax as the contract clamps it */
	bool debug;
	struct mspan sp[MAXSP];
	int nsp;
	struct mal al[MAXAL]; /* by address */
	int nal;
	uint64_t allocs, frees, fails, imports, releases;
	bool fails_loose;     /* a parent: the child's failed imports count here */
	bool cursor_known;
	vmem_addr_t cursor;
	uint64_t qc_ok, qc_fail; /* vmem_alloc calls of cached sizes */
	vmem_size_t limit;
	struct seg w[MAXSEG];   /* the arena as last verified */
	int nw;
	struct mal freed[8];    /* recent frees, for double frees */
	unsigned int nfreed;
};

static struct model g_m[3];
static int g_nm;
static unsigned int g_op;
static const char *g_opname = "";
static char g_call[256];
static uint64_t g_fault_at;
static int g_devnull = -1;

static void model_print(const struct model *m)
{
	fprintf(stderr, "== model %s: quantum %#" PRIx64 ", qcache_max %#" PRIx64 "%s, %d spans, "
			"%d allocations, counters %" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
		m->role, m->q, m->qmax, m->debug ? ", debug" : "", m->nsp, m->nal, m->allocs,
		m->frees, m->fails);
	for (int i = 0; i < m->nsp; i++)
		fprintf(stderr, "   span [%#" PRIx64 ", +%#" PRIx64 ")%s\n", m->sp[i].a,
			m->sp[i].s, m->sp[i].imported ? " imported" : "");
	for (int i = 0; i < m->nal && i < 200; i++)
		fprintf(stderr, "   alloc [%#" PRIx64 ", +%#" PRIx64 ") kind %d\n", m->al[i].a,
			m->al[i].s, m->al[i].kind);
	if (m->vm != NULL)
		vmem_dump(m->vm, stderr);
}

static void fuzz_fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fuzz_fail(int line, const char *fmt, ...)
{
	fflush(stdout);
	fprintf(stderr, "\nvmem_fuzz.c:%d: op %u (%s), last call %s:\n  ", line, g_op, g_opname,
		g_call);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	for (int i = 0; i < g_nm; i++)
		model_print(&g_m[i]);
	abort();
}
#define FAIL(...) fuzz_fail(__LINE__, __VA_ARGS__)
/* FUZZ_TRACE=1 prints every call: a reproduction to turn into a test */
static int g_trace = -1;
#define CALL(...)                                                                                \
	do {                                                                                     \
		snprintf(g_call, sizeof(g_call), __VA_ARGS__);                                   \
		if (g_trace)                                                                     \
			fprintf(stderr, "call: %s\n", g_call);                                   \
	} while (0)

/* Debug arenas report misuse on stderr: keep that out of the fuzzer's log. */
static int quiet_begin(const struct model *m)
{
	if (!m->debug && !os_debug_env())
		return -1;
	fflush(stderr);
	int saved = dup(2);
	if (g_devnull < 0)
		g_devnull = open("/dev/null", O_WRONLY);
	dup2(g_devnull, 2);
	return saved;
}

static void quiet_end(int saved)
{
	if (saved < 0)
		return;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
}

/* ---- faults --------------------------------------------------------------- */

static void fault_arm(uint64_t n)
{
	os_fault_after(n);
	g_fault_at = os_map_calls() + n;
}

/* Whether an armed fault fired since the last look; disarms it then. */
static bool fault_fired(void)
{
	if (g_fault_at == 0 || os_map_calls() < g_fault_at)
		return false;
	os_fault_after(0);
	g_fault_at = 0;
	return true;
}

static void fault_disarm(void)
{
	os_fault_after(0);
	g_fault_at = 0;
}

/* ---- fits ------------------------------------------------------------------ */

struct req {
	vmem_size_t size;  /* rounded */
	vmem_size_t align; /* effective, >= quantum */
	vmem_size_t phase, nocross;
	vmem_addr_t min, max;
};

static u128 phase_up(u128 lo, u128 align, u128 phase)
{
	if (lo <= phase)
		return phase;
	return phase + (lo - phase + align - 1) / align * align;
}

/* Lowest a >= lb in [start, start + size) meeting r. */
static bool ref_fit(vmem_addr_t start, vmem_size_t size, const struct req *r, u128 lb,
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
	if (last >= TOP)
		return false;
	if (a % r->align != r->phase)
		return false;
	if (r->nocross && a / r->nocross != (vmem_addr_t)last / r->nocross)
		return false;
	return a >= r->min && last <= r->max;
}

/* Candidate free runs for a request. */
struct runs {
	struct seg v[MAXSEG];
	int n;
};
static struct runs g_pre, g_cand;

static void runs_from_walk(const struct model *m, struct runs *r)
{
	r->n = 0;
	for (int i = 0; i < m->nw; i++)
		if (m->w[i].t == VMEM_FREE)
			r->v[r->n++] = m->w[i];
}

static bool runs_lowest(const struct runs *rs, const struct req *r, u128 lb, vmem_addr_t *ap)
{
	for (int i = 0; i < rs->n; i++) {
		if ((u128)rs->v[i].a + rs->v[i].s <= lb)
			continue;
		if (ref_fit(rs->v[i].a, rs->v[i].s, r, lb, ap))
			return true;
	}
	return false;
}

static int runs_of(const struct runs *rs, vmem_addr_t a, vmem_size_t s)
{
	for (int i = 0; i < rs->n; i++)
		if (a >= rs->v[i].a && (u128)a + s <= (u128)rs->v[i].a + rs->v[i].s)
			return i;
	return -1;
}

/* ---- model updates --------------------------------------------------------- */

static int al_find(const struct model *m, vmem_addr_t a)
{
	int lo = 0, hi = m->nal;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (m->al[mid].a < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->nal && m->al[lo].a == a ? lo : -(lo + 1);
}

static int span_of(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (int i = 0; i < m->nsp; i++)
		if (a >= m->sp[i].a && (u128)a + s <= (u128)m->sp[i].a + m->sp[i].s)
			return i;
	return -1;
}

static void al_insert(struct model *m, vmem_addr_t a, vmem_size_t s, vmem_size_t asked, int kind)
{
	if (m->nal == MAXAL)
		FAIL("model full");
	if (span_of(m, a, s) < 0)
		FAIL("%s: [%#" PRIx64 ", +%#" PRIx64 ") does not lie inside one span", m->role, a, s);
	int i = al_find(m, a);
	if (i >= 0)
		FAIL("%s: %#" PRIx64 " handed out twice", m->role, a);
	i = -i - 1;
	if (i > 0 && (u128)m->al[i - 1].a + m->al[i - 1].s > a)
		FAIL("%s: [%#" PRIx64 ", +%#" PRIx64 ") overlaps the allocation at %#" PRIx64,
		     m->role, a, s, m->al[i - 1].a);
	if (i < m->nal && (u128)a + s > m->al[i].a)
		FAIL("%s: [%#" PRIx64 ", +%#" PRIx64 ") overlaps the allocation at %#" PRIx64,
		     m->role, a, s, m->al[i].a);
	memmove(&m->al[i + 1], &m->al[i], (size_t)(m->nal - i) * sizeof(m->al[0]));
	m->al[i] = (struct mal){a, s, asked, kind};
	m->nal++;
}

static void al_remove(struct model *m, int i)
{
	m->freed[m->nfreed++ % 8] = m->al[i];
	memmove(&m->al[i], &m->al[i + 1], (size_t)(m->nal - i - 1) * sizeof(m->al[0]));
	m->nal--;
}

static bool span_overlaps(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (int i = 0; i < m->nsp; i++)
		if ((u128)a < (u128)m->sp[i].a + m->sp[i].s && (u128)m->sp[i].a < (u128)a + s)
			return true;
	return false;
}

static void sp_insert(struct model *m, vmem_addr_t a, vmem_size_t s, bool imported)
{
	if (m->nsp == MAXSP)
		FAIL("%s: too many spans", m->role);
	if (span_overlaps(m, a, s))
		FAIL("%s: span [%#" PRIx64 ", +%#" PRIx64 ") overlaps another", m->role, a, s);
	int i = m->nsp;
	while (i > 0 && m->sp[i - 1].a > a) {
		m->sp[i] = m->sp[i - 1];
		i--;
	}
	m->sp[i] = (struct mspan){a, s, imported};
	m->nsp++;
}

static void sp_remove(struct model *m, int i)
{
	memmove(&m->sp[i], &m->sp[i + 1], (size_t)(m->nsp - i - 1) * sizeof(m->sp[0]));
	m->nsp--;
}

static vmem_size_t clamp_qmax(vmem_size_t q, vmem_size_t qmax)
{
	if (qmax == 0)
		return 0;
	u128 cap = (u128)VMEM_QCACHE_MAX * q;
	u128 r = ((u128)qmax + q - 1) / q * q;
	if (r > cap)
		r = cap;
	if (r >= TOP)
		r = (TOP - 1) & ~(u128)(q - 1);
	return (vmem_size_t)r;
}

/* Rounded to the quantum; false when that overflows. */
static bool round_q(vmem_size_t s, vmem_size_t q, vmem_size_t *out)
{
	u128 r = ((u128)s + q - 1) / q * q;
	if (r >= TOP)
		return false;
	*out = (vmem_size_t)r;
	return true;
}

/* ---- observing the arena ------------------------------------------------------ */

static void walk_cb(void *arg, vmem_addr_t a, vmem_size_t s, int t)
{
	struct model *m = arg;
	if (m->nw == MAXSEG)
		FAIL("%s: more segments than the model could ever have", m->role);
	if (t != VMEM_ALLOC && t != VMEM_FREE && t != VMEM_SPAN)
		FAIL("%s: vmem_walk gave type %d", m->role, t);
	m->w[m->nw++] = (struct seg){a, s, t};
}

static void capture(struct model *m)
{
	m->nw = 0;
	int e = vmem_walk(m->vm, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, walk_cb, m);
	if (e != 0)
		FAIL("%s: vmem_walk returned %d", m->role, e);
}

static void get_stats(const struct model *m, vmem_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	int e = vmem_get_stats(m->vm, st);
	if (e != 0)
		FAIL("%s: vmem_get_stats returned %d", m->role, e);
}

/* The segments exactly as the model derives them. */
static bool segments_exact(const struct model *m, int *nfree, char *why, size_t len)
{
	int wi = 0, j = 0;
	*nfree = 0;
#define EXPECT(A, S, T)                                                                          \
	do {                                                                                     \
		if (wi >= m->nw || m->w[wi].a != (A) || m->w[wi].s != (S) || m->w[wi].t != (T)) { \
			snprintf(why, len,                                                       \
				 "walk entry %d: expected type %d [%#" PRIx64 ", +%#" PRIx64       \
				 "), arena has %s",                                              \
				 wi, (T), (vmem_addr_t)(A), (vmem_size_t)(S),                    \
				 wi < m->nw ? "another" : "no more");                            \
			return false;                                                            \
		}                                                                                \
		wi++;                                                                            \
	} while (0)
	for (int i = 0; i < m->nsp; i++) {
		const struct mspan *s = &m->sp[i];
		EXPECT(s->a, s->s, VMEM_SPAN);
		u128 pos = s->a, end = (u128)s->a + s->s;
		while (j < m->nal && m->al[j].a < end) {
			if (m->al[j].a > pos) {
				EXPECT(pos, m->al[j].a - pos, VMEM_FREE);
				++*nfree;
			}
			EXPECT(m->al[j].a, m->al[j].s, VMEM_ALLOC);
			pos = (u128)m->al[j].a + m->al[j].s;
			j++;
		}
		if (pos < end) {
			EXPECT(pos, end - pos, VMEM_FREE);
			++*nfree;
		}
	}
#undef EXPECT
	if (wi != m->nw) {
		snprintf(why, len, "the walk has %d entries, the model %d", m->nw, wi);
		return false;
	}
	return true;
}

/* With quantum caches: spans exact, every allocation inside an allocated segment. */
static void segments_loose(const struct model *m)
{
	int si = 0, j = 0;
	for (int i = 0; i < m->nw; i++) {
		const struct seg *g = &m->w[i];
		if (g->t == VMEM_SPAN) {
			if (si >= m->nsp || m->sp[si].a != g->a || m->sp[si].s != g->s)
				FAIL("%s: walk shows span [%#" PRIx64 ", +%#" PRIx64 "), not in the model",
				     m->role, g->a, g->s);
			si++;
			continue;
		}
		/* allocations that start in this segment must end in it, and it must be busy */
		while (j < m->nal && (u128)m->al[j].a < (u128)g->a + g->s) {
			if (m->al[j].a < g->a)
				FAIL("%s: allocation %#" PRIx64 " not covered by the walk", m->role,
				     m->al[j].a);
			if (g->t != VMEM_ALLOC || (u128)m->al[j].a + m->al[j].s > (u128)g->a + g->s)
				FAIL("%s: allocation [%#" PRIx64 ", +%#" PRIx64
				     ") is not inside an allocated segment",
				     m->role, m->al[j].a, m->al[j].s);
			j++;
		}
	}
	if (si != m->nsp)
		FAIL("%s: walk has %d spans, the model %d", m->role, si, m->nsp);
	if (j != m->nal)
		FAIL("%s: %d allocations lie outside every segment", m->role, m->nal - j);
}

static int g_nchecks;

static void verify(struct model *m)
{
	char why[512];
	int inv = vmem_check(m->vm, why, sizeof(why));
	if (inv != 0)
		FAIL("%s: invariant I%d broken: %s", m->role, inv, why);
	capture(m);
	g_nchecks++;

	vmem_size_t span_total = 0, import_total = 0, alloc_total = 0;
	uint64_t nimported = 0;
	for (int i = 0; i < m->nsp; i++) {
		span_total += m->sp[i].s;
		if (m->sp[i].imported) {
			import_total += m->sp[i].s;
			nimported++;
		}
	}
	for (int i = 0; i < m->nal; i++)
		alloc_total += m->al[i].s;

	int nfree = 0;
	bool exact = segments_exact(m, &nfree, why, sizeof(why));
	if (!exact) {
		if (m->qmax == 0)
			FAIL("%s: %s", m->role, why);
		segments_loose(m);
	}

	vmem_stats_t st;
	get_stats(m, &st);
#define EQ(field, want)                                                                          \
	do {                                                                                     \
		if ((uint64_t)st.field != (uint64_t)(want))                                      \
			FAIL("%s: stats." #field " = %" PRIu64 ", model says %" PRIu64, m->role,  \
			     (uint64_t)st.field, (uint64_t)(want));                              \
	} while (0)
	EQ(span_total, span_total);
	EQ(import_total, import_total);
	EQ(nspans, m->nsp);
	EQ(alloc_total - st.cached_total, alloc_total);
	EQ(free_total, span_total - st.alloc_total);
	EQ(allocs, m->allocs);
	EQ(frees, m->frees);
	EQ(waits, 0);
	EQ(imports - st.releases, nimported);
	if (exact) {
		EQ(nalloc, m->nal);
		EQ(nfree, nfree);
		EQ(cached_total, 0);
	}
	if (m->qmax == 0) {
		EQ(qcache_hits, 0);
		EQ(qcache_misses, 0);
	} else if (st.qcache_hits + st.qcache_misses < m->qc_ok ||
		   st.qcache_hits + st.qcache_misses > m->qc_ok + m->qc_fail) {
		FAIL("%s: %" PRIu64 " qcache hits + misses for %" PRIu64 " cached allocations (%" PRIu64
		     " failed)",
		     m->role, st.qcache_hits + st.qcache_misses, m->qc_ok, m->qc_fail);
	}
	if (m->fails_loose) {
		if (st.fails < m->fails)
			FAIL("%s: stats.fails went back to %" PRIu64, m->role, st.fails);
		m->fails = st.fails;
	} else {
		EQ(fails, m->fails);
	}
	if (st.imports < m->imports || st.releases < m->releases)
		FAIL("%s: import counters went back", m->role);
#undef EQ
	if (vmem_size(m->vm, VMEM_ALLOC) != st.alloc_total ||
	    vmem_size(m->vm, VMEM_FREE) != st.free_total ||
	    vmem_size(m->vm, VMEM_ALLOC | VMEM_FREE) != st.span_total ||
	    vmem_size(m->vm, VMEM_SPAN) != st.span_total)
		FAIL("%s: vmem_size disagrees with the statistics", m->role);
}

/* ---- the arenas of a run ------------------------------------------------------- */

#define P (&g_m[0])     /* mode 0: the arena; mode 1: the parent or the pool */
#define C (&g_m[1])     /* mode 1: the child */
static bool g_source;   /* mode 1: C imports from P with vmem_set_source */
static bool g_strict;   /* mode 1: an ENOMEM of C means P could not help */

static bool is_cached(const struct model *m, bool x, vmem_size_t rsize, int policy);

/* Callback imports (mode 1 without a source): P is the pool. */
static struct {
	unsigned int refuse;  /* refuse the next n imports */
	unsigned int garbage; /* 1: misaligned, 2: overlapping a span of C, 3: at the top */
	uint64_t calls;
	uint64_t good; /* usable spans handed out: pool-backed, clear of the child's spans */
	struct mal out[MAXSP];
	int nout;
} g_cb;

static void model_reset(struct model *m, const char *role, vmem_t *vm, vmem_size_t q,
			vmem_size_t qmax, bool debug)
{
	memset(m, 0, offsetof(struct model, w));
	m->role = role;
	m->vm = vm;
	m->q = q;
	m->qmax = clamp_qmax(q, qmax);
	m->debug = debug;
	m->nw = 0;
}

/* Spans of C that appeared or went away during a call: imports and
 * releases.  Returns the new ones in nv (at most 8). */
static int learn_spans(struct seg *nv)
{
	struct model *m = C;
	int nnew = 0, ngone = 0;
	capture(m);
	/* gone */
	for (int i = 0; i < m->nsp; i++) {
		bool seen = false;
		for (int k = 0; k < m->nw && !seen; k++)
			seen = m->w[k].t == VMEM_SPAN && m->w[k].a == m->sp[i].a &&
			       m->w[k].s == m->sp[i].s;
		if (seen)
			continue;
		const struct mspan s = m->sp[i];
		if (!s.imported)
			FAIL("child: added span [%#" PRIx64 ", +%#" PRIx64 ") disappeared", s.a, s.s);
		for (int j = 0; j < m->nal; j++)
			if (m->al[j].a >= s.a && (u128)m->al[j].a < (u128)s.a + s.s)
				FAIL("child: span [%#" PRIx64 ", +%#" PRIx64
				     ") released with allocation %#" PRIx64 " in it",
				     s.a, s.s, m->al[j].a);
		sp_remove(m, i--);
		ngone++;
		if (g_source) {
			int j = al_find(P, s.a);
			if (j < 0 || P->al[j].kind != K_CHILD || P->al[j].asked != s.s)
				FAIL("released span [%#" PRIx64 ", +%#" PRIx64
				     ") was not imported from the parent",
				     s.a, s.s);
			al_remove(P, j);
		}
	}
	/* new */
	for (int k = 0; k < m->nw; k++) {
		const struct seg *g = &m->w[k];
		if (g->t != VMEM_SPAN)
			continue;
		bool known = false;
		for (int i = 0; i < m->nsp && !known; i++)
			known = m->sp[i].a == g->a && m->sp[i].s == g->s;
		if (known)
			continue;
		if (span_overlaps(m, g->a, g->s))
			FAIL("child: span [%#" PRIx64 ", +%#" PRIx64 ") changed shape", g->a, g->s);
		if (g->s % m->q != 0 || g->s == 0)
			FAIL("child: imported span of %#" PRIx64 " units", g->s);
		sp_insert(m, g->a, g->s, true);
		if (nnew < 8)
			nv[nnew] = *g;
		nnew++;
		if (g_source) {
			if (P->nal == MAXAL)
				FAIL("model full");
			/* the parent's segment is checked when the parent is verified;
			 * it is rounded to the parent's quantum */
			vmem_size_t ps;
			if (!round_q(g->s, P->q, &ps))
				FAIL("child: imported span of %#" PRIx64 " units", g->s);
			al_insert(P, g->a, ps, g->s, K_CHILD);
		}
	}
	/* counters: each import is an allocation of the parent, each release a
	 * free; an import the child could not use (it overlapped a span of its
	 * own, or there was no memory for its tags) is both at once */
	vmem_stats_t st;
	get_stats(m, &st);
	if (g_source) {
		vmem_stats_t ps;
		get_stats(P, &ps);
		if (ps.allocs < P->allocs || ps.frees < P->frees ||
		    (int64_t)((ps.allocs - ps.frees) - (P->allocs - P->frees)) != nnew - ngone)
			FAIL("parent counters: %" PRIu64 " allocs, %" PRIu64 " frees, model %" PRIu64
			     "/%" PRIu64 ", %d spans imported and %d released",
			     ps.allocs, ps.frees, P->allocs, P->frees, nnew, ngone);
		/* the contract leaves the policy of an import open: if it was
		 * VM_NEXTFIT, the parent's cursor moved */
		if (ps.allocs != P->allocs)
			P->cursor_known = false;
		P->allocs = ps.allocs;
		P->frees = ps.frees;
	}
	m->imports = st.imports;
	m->releases = st.releases;
	return nnew < 8 ? nnew : 8;
}

static void check_cb_matches(void)
{
	if (g_source || g_nm < 2)
		return;
	int n = 0;
	for (int i = 0; i < C->nsp; i++) {
		if (!C->sp[i].imported)
			continue;
		n++;
		bool found = false;
		for (int k = 0; k < g_cb.nout && !found; k++)
			found = g_cb.out[k].a == C->sp[i].a && g_cb.out[k].s == C->sp[i].s;
		if (!found)
			FAIL("child span [%#" PRIx64 ", +%#" PRIx64
			     ") was not handed out by the import callback",
			     C->sp[i].a, C->sp[i].s);
	}
	if (n != g_cb.nout)
		FAIL("the import callback handed out %d spans, the child holds %d", g_cb.nout, n);
}

static void verify_all(void)
{
	if (FUZZ_MODE == 1 && C->vm != NULL) {
		struct seg nv[8];
		learn_spans(nv);
		check_cb_matches();
		verify(C);
	}
	if (P->vm != NULL)
		verify(P);
}

/* Mode 1, callback imports: the pool is P. */
MAYBE_UNUSED static int cb_import(void *arg, vmem_size_t size, int vmflags, vmem_addr_t *addrp)
{
	(void)arg;
	g_cb.calls++;
	if (size == 0 || size % C->q != 0)
		FAIL("import callback asked for %#" PRIx64 " units (quantum %#" PRIx64 ")", size,
		     C->q);
	if ((vmflags & ~VM_SLEEPFLAGS) != 0)
		FAIL("import callback got flags %#x", vmflags);
	if (g_cb.refuse) {
		g_cb.refuse--;
		return ENOMEM;
	}
	if (g_cb.nout == MAXSP || P->nal == MAXAL)
		return ENOMEM;
	vmem_addr_t a, pa = 0;
	int kind = 0;
	if (g_cb.garbage == 2 && C->nsp > 0) {
		/* a range the child already owns: it must refuse it */
		g_cb.garbage = 0;
		a = C->sp[0].a;
	} else if (g_cb.garbage == 3) {
		g_cb.garbage = 0;
		a = M64 - size + 2; /* wraps unless size == 1 */
		if (size == 1)
			a = M64;
	} else {
		vmem_size_t rs;
		if (!round_q(size, P->q, &rs))
			return ENOMEM;
		int e = vmem_alloc(P->vm, size, VM_NOSLEEP, &a);
		if (e != 0) {
			if (is_cached(P, false, rs, 0))
				P->qc_fail++;
			return e;
		}
		P->allocs++;
		if (is_cached(P, false, rs, 0))
			P->qc_ok++;
		al_insert(P, a, rs, size, K_CHILD);
		pa = a;
		kind = K_CHILD;
		if (g_cb.garbage == 1) {
			g_cb.garbage = 0;
			a += 1; /* misaligned unless quantum 1 */
		} else if (a % C->q == 0 && !span_overlaps(C, a, size)) {
			g_cb.good++;
		}
	}
	g_cb.out[g_cb.nout++] = (struct mal){a, size, pa, kind};
	*addrp = a;
	return 0;
}

MAYBE_UNUSED static void cb_release(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	(void)arg;
	/* two entries can be equal when garbage repeated a span: a rejected
	 * one (not backed by the pool) goes first */
	int k = -1;
	for (int i = 0; i < g_cb.nout; i++)
		if (g_cb.out[i].a == addr && g_cb.out[i].s == size && (k < 0 || g_cb.out[i].kind == 0))
			k = i;
	if (k >= 0) {
		struct mal o = g_cb.out[k];
		g_cb.out[k] = g_cb.out[--g_cb.nout];
		if (o.kind == K_CHILD) {
			int j = al_find(P, o.asked);
			if (j < 0 || P->al[j].kind != K_CHILD || P->al[j].asked != size)
				FAIL("harness: pool allocation %#" PRIx64 " lost", o.asked);
			int e = vmem_free(P->vm, o.asked, size);
			if (e != 0)
				FAIL("pool vmem_free(%#" PRIx64 ") = %d", o.asked, e);
			P->frees++;
			al_remove(P, j);
		}
		return;
	}
	FAIL("release callback got [%#" PRIx64 ", +%#" PRIx64 "), not an outstanding import", addr,
	     size);
}

/* ---- creating arenas --------------------------------------------------------------- */

static vmem_size_t gen_quantum(struct input *in, unsigned int maxshift)
{
	unsigned int b = in8(in);
	if (b < 200)
		return (vmem_size_t)1 << (b % 13 < maxshift ? b % 13 : maxshift);
	return (vmem_size_t)1 << (b % (maxshift + 1));
}

/* A span of whole quanta somewhere in the 64-bit space; it may end at 2^64. */
static void gen_span(struct input *in, vmem_size_t q, vmem_addr_t *ap, vmem_size_t *sp)
{
	unsigned int b = in8(in);
	vmem_size_t n = 1 + inbits(in, 24);
	if (b % 8 == 7)
		n = (vmem_size_t)1 << (inbits(in, 6) % 64);
	u128 s = (u128)n * q;
	if (s >= TOP)
		s = TOP - q;
	vmem_addr_t a;
	switch (b % 5) {
	case 0:
		a = 0;
		break;
	case 1: /* ends exactly at 2^64 */
		a = (vmem_addr_t)(TOP - s);
		break;
	case 2:
		a = inbits(in, 64) & ~(q - 1);
		break;
	case 3: /* the whole space but one quantum */
		s = TOP - q;
		a = b & 0x80 ? q : 0;
		break;
	default:
		a = (vmem_addr_t)q * (1 + in16(in));
		break;
	}
	if ((u128)a + s > TOP)
		a = (vmem_addr_t)(TOP - s);
	*ap = a;
	*sp = (vmem_size_t)s;
}

/* vmem_create with bad arguments: NULL and EINVAL, and nothing mapped. */
MAYBE_UNUSED static void bad_creates(struct input *in)
{
	size_t before = os_mapped_bytes();
	vmem_size_t q = gen_quantum(in, 20);
	struct {
		vmem_addr_t base;
		vmem_size_t size, q;
		int flags;
	} t[] = {
		{0, 16 * q, q == 1 ? 3 : q + 1, 0},           /* quantum not a power of two */
		{0, 16 * q, 0, 0},                            /* quantum 0 */
		{q == 1 ? 1 : q / 2, 16 * q, q == 1 ? 2 : q, 0},     /* base misaligned */
		{0, 16 * q + (q == 1 ? 1 : q / 2), q == 1 ? 2 : q, 0}, /* size misaligned */
		{M64 - q + 1, 2 * q, q, 0},                   /* wraps */
		{2 * q, M64 & ~(q - 1), q, 0},                /* wraps by one quantum */
		{0, 16 * q, q, VM_SLEEP | VM_NOSLEEP},        /* both sleep flags */
		{0, 16 * q, q, VM_BESTFIT},                   /* a policy */
		{0, 16 * q, q, 0x80},                         /* an unknown bit */
	};
	unsigned int k = in8(in) % (sizeof(t) / sizeof(t[0]));
	CALL("vmem_create(%#" PRIx64 ", %#" PRIx64 ", q %#" PRIx64 ", flags %#x) [bad]", t[k].base,
	     t[k].size, t[k].q, t[k].flags);
	errno = 0;
	vmem_t *vm = vmem_create("bad", t[k].base, t[k].size, t[k].q, 0, t[k].flags);
	if (vm != NULL || errno != EINVAL)
		FAIL("a bad vmem_create gave %p, errno %d", (void *)vm, errno);
	if (os_mapped_bytes() != before)
		FAIL("a failed vmem_create left %zu bytes mapped", os_mapped_bytes() - before);
}

/* Create an arena into m (retrying past an injected fault). */
static void create_arena(struct model *m, const char *role, struct input *in, unsigned int maxshift,
			 bool allow_span)
{
	vmem_size_t q = gen_quantum(in, maxshift);
	unsigned int b = in8(in);
	vmem_size_t qmax = b % 3 == 0 ? (vmem_size_t)in8(in) * q / 4 : 0;
	bool debug = b % 16 == 5;
	int flags = (debug ? VMC_DEBUG : 0) | (b & 0x40 ? VM_NOSLEEP : 0);
	vmem_addr_t base = 0;
	vmem_size_t size = 0;
	if (allow_span && b % 7 != 3)
		gen_span(in, q, &base, &size);
	char name[48];
	unsigned int nl = in8(in) % sizeof(name);
	for (unsigned int i = 0; i < nl; i++)
		name[i] = (char)('a' + in8(in) % 26);
	name[nl] = '\0';
	if (nl > 40)
		name[0] = '\0';

	for (int tries = 0;; tries++) {
		size_t before = os_mapped_bytes();
		CALL("vmem_create(%s, %#" PRIx64 ", %#" PRIx64 ", q %#" PRIx64 ", qmax %#" PRIx64
		     ", %#x)",
		     role, base, size, q, qmax, flags);
		errno = 0;
		vmem_t *vm = vmem_create(nl > 40 ? NULL : name, base, size, q, qmax, flags);
		bool fired = fault_fired();
		if (vm == NULL) {
			if (!fired || errno != ENOMEM || tries > 0)
				FAIL("vmem_create failed, errno %d (fault fired: %d)", errno, fired);
			if (os_mapped_bytes() != before)
				FAIL("a failed vmem_create left %zu bytes mapped",
				     os_mapped_bytes() - before);
			continue;
		}
		const char *nm = vmem_name(vm);
		if (strlen(nm) != (nl > 40 ? 0 : nl < VMEM_NAMELEN ? nl : VMEM_NAMELEN - 1) ||
		    (nl <= 40 && strncmp(nm, name, VMEM_NAMELEN - 1) != 0))
			FAIL("vmem_name gave \"%s\" for \"%s\"", nm, nl > 40 ? "(null)" : name);
		model_reset(m, role, vm, q, qmax, debug);
		if (size != 0)
			sp_insert(m, base, size, false);
		verify(m);
		return;
	}
}

static void destroy_arena(struct model *m)
{
	if (m->vm == NULL)
		return;
	CALL("vmem_destroy(%s)", m->role);
	int saved = quiet_begin(m);
	vmem_destroy(m->vm);
	quiet_end(saved);
	m->vm = NULL;
}

/* Destroy the child; its imports go back to the parent or the callback. */
MAYBE_UNUSED static void destroy_child(void)
{
	if (C->vm == NULL)
		return;
	vmem_stats_t st;
	get_stats(C, &st);
	uint64_t outstanding = st.imports - st.releases;
	destroy_arena(C);
	if (g_source) {
		for (int j = 0; j < P->nal; j++)
			if (P->al[j].kind == K_CHILD)
				al_remove(P, j--);
		P->frees += outstanding;
	} else if (g_cb.nout != 0) {
		FAIL("vmem_destroy did not release %d imported spans", g_cb.nout);
	}
	if (P->vm != NULL)
		verify(P);
}

/* ---- requests ---------------------------------------------------------------------- */

static const int policies[] = {0, VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};

static vmem_size_t gen_size(struct input *in, const struct model *m)
{
	unsigned int b = in8(in);
	u128 s;
	switch (b % 8) {
	case 0:
	case 1:
	case 2: /* a few quanta, often cached */
		s = (u128)m->q * (1 + b / 8 % 20);
		break;
	case 3: /* a power of two */
		s = (u128)1 << (in8(in) % 64);
		break;
	case 4: /* anything */
		s = inbits(in, 64);
		break;
	case 5: /* a free segment's size, or a little more */
		s = m->q;
		for (int i = 0; i < m->nw; i++)
			if (m->w[i].t == VMEM_FREE && (in8(in) & 3) == 0) {
				s = (u128)m->w[i].s + (b & 0x80 ? m->q : 0);
				break;
			}
		break;
	default:
		s = (u128)m->q * (1 + inbits(in, 16));
		break;
	}
	/* not always a multiple of the quantum */
	if ((b & 0x40) && m->q > 1 && s > 1)
		s -= 1 + in8(in) % (m->q - 1 < 255 ? m->q - 1 : 255);
	if (s >= TOP)
		s = M64;
	return (vmem_size_t)s;
}

static void gen_bounds(struct input *in, const struct model *m, vmem_addr_t *minp,
		       vmem_addr_t *maxp)
{
	unsigned int b = in8(in);
	vmem_addr_t lo = 0, hi = M64;
	if (b % 4 != 0 && m->nsp > 0) {
		const struct mspan *s = &m->sp[in8(in) % m->nsp];
		lo = s->a + (vmem_addr_t)(((u128)s->s * in8(in)) >> 8);
		hi = lo + (vmem_addr_t)(((u128)(s->a + (u128)s->s - 1 - lo) * in8(in)) >> 8);
		if (b & 0x10)
			lo = s->a;
		if (b & 0x20)
			hi = M64;
		if (b & 0x40)
			lo = lo & ~(m->q - 1);
	} else if (b % 4 == 0 && (b & 0x10)) {
		lo = inbits(in, 64);
		hi = lo + inbits(in, 64);
		if (hi < lo)
			hi = M64;
	}
	*minp = lo;
	*maxp = hi;
}

/* Whether the source could meet r itself (the contract: "a constrained
 * request is met through its source whenever the source can meet it"),
 * within the child's limit.  The span the child asks for may be bigger
 * (import quantum); when that cannot be had, the request still can. */
static bool parent_could(const struct req *r)
{
	if (C->limit != 0) {
		vmem_size_t it = 0;
		for (int i = 0; i < C->nsp; i++)
			if (C->sp[i].imported)
				it += C->sp[i].s;
		if ((u128)it + r->size > C->limit)
			return false;
	}
	struct req pr = *r;
	if (pr.align < C->q) {
		pr.align = C->q; /* spans start on the child's quantum */
		if (pr.phase != 0)
			return false;
	}
	struct runs *pre = &g_cand; /* scratch */
	runs_from_walk(P, pre);
	vmem_addr_t a;
	return runs_lowest(pre, &pr, 0, &a);
}

static bool is_cached(const struct model *m, bool x, vmem_size_t rsize, int policy)
{
	return !x && m->qmax != 0 && rsize <= m->qmax && policy != VM_FIRSTFIT &&
	       policy != VM_NEXTFIT;
}

/* Whether the model has room for one more allocation (and, in a child,
 * the span it may import). */
static bool room(const struct model *m)
{
	return m->nal < MAXAL - 16 && m->nsp < MAXSP - 16 && P->nal < MAXAL - 16;
}

/* One allocation call on m, checked.  Returns true if it succeeded. */
static bool do_alloc(struct model *m, struct input *in, bool x)
{
	bool child = FUZZ_MODE == 1 && m == C;
	vmem_size_t asked = gen_size(in, m);
	unsigned int b = in8(in);
	int policy = policies[b % 5];
	struct req r = {0, m->q, 0, 0, 0, M64};
	vmem_size_t align = 0, phase = 0, nocross = 0;
	if (asked == 0 || !round_q(asked, m->q, &r.size)) {
		/* size 0, or its rounding overflows: EINVAL */
		vmem_addr_t a = 7;
		CALL("vmem_%salloc(%s, %#" PRIx64 ") [bad size]", x ? "x" : "", m->role, asked);
		int rc = x ? vmem_xalloc(m->vm, asked, 0, 0, 0, 0, M64, policy, &a)
			   : vmem_alloc(m->vm, asked, policy, &a);
		if (rc != EINVAL || a != 7)
			FAIL("returned %d", rc);
		return false;
	}
	if (x) {
		unsigned int c = in8(in);
		if (c % 3 != 0) {
			unsigned int k = in8(in) % (c & 0x80 ? 64 : 24);
			align = (u128)m->q << k < TOP ? m->q << k : m->q;
			r.align = align;
			if (c & 0x40)
				phase = (vmem_addr_t)(((u128)(align / m->q) * in8(in)) >> 8) * m->q;
			r.phase = phase;
		}
		if (c % 5 == 1) {
			u128 nc = m->q;
			while (nc < r.size)
				nc <<= 1;
			nc <<= in8(in) % 6;
			if (nc < TOP) {
				nocross = (vmem_size_t)nc;
				r.nocross = nocross;
			}
		}
		gen_bounds(in, m, &r.min, &r.max);
	}
	bool cached = is_cached(m, x, r.size, policy);

	runs_from_walk(m, &g_pre);
	vmem_addr_t lowest = 0;
	bool fit_pre = runs_lowest(&g_pre, &r, 0, &lowest);
	int sleep = b & 0x20 ? VM_NOSLEEP : 0;
	if ((b & 0x40) && fit_pre && !cached)
		sleep = VM_SLEEP; /* surely met at once: exercises the flag without waiting */
	int flags = policy | sleep;

	vmem_addr_t a = 0x5a5a5a5a5a5a5a5aull;
	uint64_t good0 = g_cb.good;
	int rc;
	if (x) {
		CALL("vmem_xalloc(%s, %#" PRIx64 ", align %#" PRIx64 ", phase %#" PRIx64
		     ", nocross %#" PRIx64 ", [%#" PRIx64 ", %#" PRIx64 "], %#x)",
		     m->role, asked, align, phase, nocross, r.min, r.max, flags);
		rc = vmem_xalloc(m->vm, asked, align, phase, nocross, r.min, r.max, flags, &a);
	} else {
		CALL("vmem_alloc(%s, %#" PRIx64 ", %#x)", m->role, asked, flags);
		rc = vmem_alloc(m->vm, asked, flags, &a);
	}
	bool fired = fault_fired();
	struct seg nv[8];
	int nnew = child ? learn_spans(nv) : 0;

	if (rc == ENOMEM) {
		m->fails++;
		if (cached)
			m->qc_fail++;
		if (fired)
			return false;
		if (fit_pre && !cached)
			FAIL("ENOMEM, but [%#" PRIx64 ", +%#" PRIx64 ") fits", lowest, r.size);
		if (child && g_source && g_strict && !cached && parent_could(&r))
			FAIL("ENOMEM, but the source could meet the request");
		/* a callback gets a size big enough for alignment and phase */
		if (child && !g_source && !cached && g_cb.good != good0 && C->limit == 0 &&
		    r.min == 0 && r.max == M64 && r.nocross == 0)
			FAIL("ENOMEM, although the import callback handed out a usable span");
		return false;
	}
	if (rc != 0)
		FAIL("returned %d", rc);
	if (!req_holds(&r, a))
		FAIL("result %#" PRIx64 " breaks the request's constraints", a);
	if (nnew > 0 && fit_pre && !cached)
		FAIL("imported a span although [%#" PRIx64 ", +%#" PRIx64 ") was free", lowest,
		     r.size);
	/* with nothing free, an arena with quantum caches may reap them and
	 * retry, as it may reclaim: the result then lies in units the caches
	 * held (al_insert still checks it is in a span and nobody else's) */
	bool reaped_ok = m->qmax != 0 && !fit_pre;
	if (!cached && !reaped_ok) {
		g_cand.n = 0;
		for (int i = 0; i < g_pre.n; i++)
			g_cand.v[g_cand.n++] = g_pre.v[i];
		for (int i = 0; i < nnew; i++) {
			int k = g_cand.n++;
			while (k > 0 && g_cand.v[k - 1].a > nv[i].a) {
				g_cand.v[k] = g_cand.v[k - 1];
				k--;
			}
			g_cand.v[k] = nv[i];
		}
		int run = runs_of(&g_cand, a, r.size);
		if (run < 0) {
			for (int i = 0; i < g_cand.n; i++)
				fprintf(stderr, "   free before the call: [%#" PRIx64 ", +%#" PRIx64 ")\n",
					g_cand.v[i].a, g_cand.v[i].s);
			FAIL("result [%#" PRIx64 ", +%#" PRIx64 ") was not free", a, r.size);
		}
		vmem_addr_t want;
		if (policy == VM_FIRSTFIT) {
			if (!runs_lowest(&g_cand, &r, 0, &want) || want != a)
				FAIL("VM_FIRSTFIT gave %#" PRIx64 ", the lowest fit is %#" PRIx64, a,
				     want);
		} else if (policy == VM_NEXTFIT && m->cursor_known) {
			if (!runs_lowest(&g_cand, &r, m->cursor, &want) &&
			    !runs_lowest(&g_cand, &r, 0, &want))
				FAIL("no fit in the model");
			if (want != a)
				FAIL("VM_NEXTFIT gave %#" PRIx64 ", the first fit after cursor %#" PRIx64
				     " is %#" PRIx64,
				     a, m->cursor, want);
		} else if (policy == VM_BESTFIT) {
			vmem_size_t best = M64;
			for (int i = 0; i < g_cand.n; i++)
				if (g_cand.v[i].s < best &&
				    ref_fit(g_cand.v[i].a, g_cand.v[i].s, &r, 0, &want))
					best = g_cand.v[i].s;
			if (g_cand.v[run].s != best)
				FAIL("VM_BESTFIT took a segment of %#" PRIx64 " units; one of %#" PRIx64
				     " fits",
				     g_cand.v[run].s, best);
		}
	}
	if (policy == VM_NEXTFIT) {
		m->cursor_known = true;
		m->cursor = a + r.size; /* 2^64 wraps to 0: the start */
	}
	al_insert(m, a, r.size, asked, x ? K_XALLOC : K_ALLOC);
	m->allocs++;
	if (cached)
		m->qc_ok++;
	return true;
}

/* A good free of allocation i. */
static void do_free(struct model *m, int i, unsigned int b)
{
	struct mal al = m->al[i];
	bool xf, maybe = false;
	vmem_size_t size = al.asked;
	if (al.kind == K_ALLOC) {
		xf = (b & 7) == 0;
		maybe = xf; /* vmem_xfree of a vmem_alloc segment: the contract does not say */
	} else {
		/* vmem_free of an xalloc segment above qcache_max acts as vmem_xfree */
		xf = !((b & 1) && (m->qmax == 0 || al.s > m->qmax));
	}
	if ((b & 0x30) == 0x10 && al.s != al.asked) {
		size = al.s; /* the same size once rounded */
		maybe = true;
	}
	CALL("%s(%s, %#" PRIx64 ", %#" PRIx64 ")", xf ? "vmem_xfree" : "vmem_free", m->role, al.a,
	     size);
	int rc = xf ? vmem_xfree(m->vm, al.a, size) : vmem_free(m->vm, al.a, size);
	if (rc == EINVAL && maybe)
		return;
	if (rc != 0)
		FAIL("a good free returned %d", rc);
	al_remove(m, i);
	m->frees++;
}

/* A free that names no outstanding allocation: EINVAL, nothing changes. */
static void do_bad_free(struct model *m, struct input *in)
{
	unsigned int b = in8(in);
	vmem_addr_t a = 0;
	vmem_size_t s = 0;
	bool xf = b & 0x80;
	const struct mal *al = m->nal ? &m->al[in16(in) % m->nal] : NULL;
	switch (b % 10) {
	case 0: /* double free */
		if (m->nfreed == 0)
			return;
		a = m->freed[in8(in) % (m->nfreed < 8 ? m->nfreed : 8)].a;
		s = m->freed[in8(in) % (m->nfreed < 8 ? m->nfreed : 8)].asked;
		break;
	case 1: /* wrong size */
		if (!al)
			return;
		a = al->a;
		s = al->s + m->q * (1 + in8(in) % 4);
		break;
	case 2:
		if (!al || al->s <= m->q)
			return;
		a = al->a;
		s = al->s - m->q;
		break;
	case 3: /* interior */
		if (!al || al->s <= m->q)
			return;
		a = al->a + m->q;
		s = al->s - m->q;
		break;
	case 4: /* free space */
		for (int i = 0; i < m->nw; i++)
			if (m->w[i].t == VMEM_FREE && (in8(in) & 1)) {
				a = m->w[i].a;
				s = m->w[i].s < m->q * 4 ? m->w[i].s : m->q * (1 + in8(in) % 4);
				break;
			}
		if (s == 0)
			return;
		break;
	case 5: /* size 0 */
		if (!al)
			return;
		a = al->a;
		s = 0;
		break;
	case 6: /* vmem_free of a cached-size xalloc segment: an error under VMC_DEBUG */
		if (!al || al->kind != K_XALLOC || !m->debug || m->qmax == 0 || al->s > m->qmax)
			return;
		a = al->a;
		s = al->asked;
		xf = false;
		break;
	case 7: /* a child's span, at the parent, with the wrong size */
		if (!al || al->kind != K_CHILD)
			return;
		a = al->a;
		s = al->s + m->q;
		break;
	default: /* anywhere */
		a = inbits(in, 64);
		s = inbits(in, 64);
		if (b & 0x40)
			a &= ~(m->q - 1);
		break;
	}
	/* must not name an outstanding allocation (of any rounded size) */
	vmem_size_t rs;
	int j = al_find(m, a);
	if (s != 0 && j >= 0 && round_q(s, m->q, &rs) && rs == m->al[j].s &&
	    (b % 10 != 6))
		return;
	/* a size the caches serve is only checked under VMC_DEBUG */
	if (m->qmax != 0 && !m->debug && (!round_q(s, m->q, &rs) || rs <= m->qmax))
		return;
	CALL("%s(%s, %#" PRIx64 ", %#" PRIx64 ") [bad]", xf ? "vmem_xfree" : "vmem_free", m->role,
	     a, s);
	int saved = quiet_begin(m);
	int rc = xf ? vmem_xfree(m->vm, a, s) : vmem_free(m->vm, a, s);
	quiet_end(saved);
	if (rc != EINVAL)
		FAIL("a bad free returned %d", rc);
}

/* Bad arguments: EINVAL and nothing changes. */
static void do_bad_args(struct model *m, struct input *in)
{
	vmem_addr_t a = 7;
	vmem_size_t q = m->q;
	unsigned int k = in8(in) % 20;
	int rc;
	vmem_addr_t sp = m->nsp ? m->sp[0].a : 0;
	CALL("bad argument case %u on %s", k, m->role);
	switch (k) {
	case 0: rc = vmem_alloc(m->vm, 0, VM_NOSLEEP, &a); break;
	case 1: rc = vmem_alloc(m->vm, q, VM_NOSLEEP, NULL); break;
	case 2: rc = vmem_alloc(m->vm, q, VM_SLEEP | VM_NOSLEEP, &a); break;
	case 3: rc = vmem_alloc(m->vm, q, VM_BESTFIT | VM_NEXTFIT, &a); break;
	case 4: rc = vmem_alloc(m->vm, q, 0x8 | (int)(in8(in) << 20), &a); break;
	case 5:
		if (q == 1)
			return;
		rc = vmem_alloc(m->vm, M64 - q + 2 + in8(in) % (q - 1 < 200 ? q - 1 : 200), 0, &a);
		break;
	case 6: rc = vmem_xalloc(m->vm, q, q * 3 == 0 ? 3 : q * 3, 0, 0, 0, M64, 0, &a); break;
	case 7:
		if (q == 1)
			return;
		rc = vmem_xalloc(m->vm, q, q / 2, 0, 0, 0, M64, 0, &a);
		break;
	case 8: rc = vmem_xalloc(m->vm, q, 4 * q, 4 * q, 0, 0, M64, 0, &a); break;
	case 9:
		if (q == 1)
			return;
		rc = vmem_xalloc(m->vm, q, 4 * q, 1, 0, 0, M64, 0, &a);
		break;
	case 10: rc = vmem_xalloc(m->vm, 4 * q, 0, 0, 2 * q, 0, M64, 0, &a); break;
	case 11: rc = vmem_xalloc(m->vm, q, 0, 0, 3 * q, 0, M64, 0, &a); break;
	case 12: rc = vmem_xalloc(m->vm, q, 0, 0, 0, 100, 99, 0, &a); break;
	case 13: rc = vmem_xalloc(m->vm, q, 0, 0, 0, 0, M64, VM_FIRSTFIT | VM_INSTANTFIT, &a); break;
	case 14: rc = vmem_add(m->vm, sp, m->nsp ? q : 0, 0); break; /* overlap, or empty */
	case 15:
		if (q == 1)
			return;
		rc = vmem_add(m->vm, q / 2, q, 0);
		break;
	case 16: rc = vmem_add(m->vm, M64 - q + 1, 2 * q, 0); break;
	case 17: rc = vmem_add(m->vm, 0, q, VM_SLEEP | VM_NOSLEEP); break;
	case 18: {
		vmem_stats_t st;
		memset(&st, 0, sizeof(st));
		st.size = 8 + in8(in) % 100;
		rc = vmem_get_stats(m->vm, &st);
		if (st.span_total != 0)
			FAIL("vmem_get_stats wrote past a short size");
		break;
	}
	default: rc = vmem_walk(m->vm, VMEM_SPAN << 1, walk_cb, m); break;
	}
	if (rc != EINVAL)
		FAIL("returned %d", rc);
	if (a != 7)
		FAIL("a failed call wrote its result");
}

static void do_add(struct model *m, struct input *in)
{
	unsigned int b = in8(in);
	vmem_size_t q = m->q;
	vmem_addr_t a;
	u128 s128 = (u128)q * (1 + inbits(in, 20));
	vmem_size_t s = s128 >= TOP ? q : (vmem_size_t)s128;
	switch (b % 6) {
	case 0: /* next to a span */
		if (m->nsp == 0) {
			a = 0;
			break;
		}
		{
			const struct mspan *x = &m->sp[in8(in) % m->nsp];
			u128 e = (u128)x->a + x->s + (u128)q * (b & 0x80 ? in8(in) : 0);
			if (b & 0x40)
				e = (u128)x->a - s; /* just before it */
			a = (vmem_addr_t)e;
		}
		break;
	case 1: /* ending at 2^64 */
		a = (vmem_addr_t)(TOP - s);
		break;
	case 2:
		a = 0;
		break;
	case 3: /* overlapping a span (or anywhere) */
		a = m->nsp ? m->sp[in8(in) % m->nsp].a + q * in8(in) : 0;
		break;
	case 4: /* misaligned or wrapping: bad */
		a = inbits(in, 64);
		s = inbits(in, 64);
		break;
	default:
		a = inbits(in, 64) & ~(q - 1);
		break;
	}
	int flags = (b & 0x20) ? VM_NOSLEEP : (b & 0x10) ? VM_SLEEP : 0;
	bool good = s != 0 && a % q == 0 && s % q == 0 && (u128)a + s <= TOP &&
		    !span_overlaps(m, a, s);
	if (good && m->nsp >= MAXSP - 8)
		return;
	if (FUZZ_MODE == 1 && good && g_source) {
		/* a span the parent owns may come back as an import: nothing is
		 * wrong with that, but then "the source could meet it" no longer
		 * means the child can use it */
		const struct model *o = m == C ? P : C;
		if (o->vm != NULL && span_overlaps(o, a, s))
			g_strict = false;
	}
	CALL("vmem_add(%s, %#" PRIx64 ", %#" PRIx64 ", %#x)", m->role, a, s, flags);
	int rc = vmem_add(m->vm, a, s, flags);
	bool fired = fault_fired();
	if (!good) {
		if (rc != EINVAL)
			FAIL("a bad vmem_add returned %d", rc);
		return;
	}
	if (rc == ENOMEM && fired)
		return;
	if (rc != 0)
		FAIL("returned %d", rc);
	sp_insert(m, a, s, false);
}

static void do_contains(struct model *m, struct input *in)
{
	vmem_addr_t a;
	vmem_size_t s;
	if (m->nsp && (in8(in) & 1)) {
		const struct mspan *x = &m->sp[in8(in) % m->nsp];
		a = x->a + (vmem_addr_t)(((u128)x->s * in8(in)) >> 8);
		s = (vmem_size_t)(((u128)x->s * in8(in)) >> 7);
	} else {
		a = inbits(in, 64);
		s = inbits(in, 64);
	}
	CALL("vmem_contains(%s, %#" PRIx64 ", %#" PRIx64 ")", m->role, a, s);
	int want = s != 0 && (u128)a + s <= TOP && span_of(m, a, s) >= 0;
	int got = vmem_contains(m->vm, a, s);
	if (got != want)
		FAIL("vmem_contains gave %d, model says %d", got, want);
	vmem_size_t rs;
	bool ok = round_q(s, m->q, &rs);
	if (vmem_roundup_size(m->vm, s) != (ok ? rs : 0))
		FAIL("vmem_roundup_size(%#" PRIx64 ") = %#" PRIx64, s, vmem_roundup_size(m->vm, s));
}

/* Many small allocations (the tag table and the hash grow), then frees. */
static void do_bulk(struct model *m, struct input *in)
{
	unsigned int n = 16 + in8(in) % 200;
	int policy = policies[in8(in) % 5];
	for (unsigned int i = 0; i < n && room(m); i++) {
		runs_from_walk(m, &g_pre);
		vmem_addr_t a;
		CALL("vmem_alloc(%s, %#" PRIx64 ", %#x) [bulk %u]", m->role, m->q, policy, i);
		int rc = vmem_alloc(m->vm, m->q, policy | VM_NOSLEEP, &a);
		bool fired = fault_fired();
		bool cached = is_cached(m, false, m->q, policy);
		if (FUZZ_MODE == 1 && m == C) {
			/* imports: let the full check sort them out */
			struct seg nv[8];
			int nnew = learn_spans(nv);
			for (int k = 0; k < nnew; k++)
				g_pre.v[g_pre.n++] = nv[k];
		}
		if (rc == ENOMEM) {
			m->fails++;
			if (cached)
				m->qc_fail++;
			if (!fired && !cached && g_pre.n > 0 && (FUZZ_MODE == 0 || m != C))
				FAIL("ENOMEM with %d free segments", g_pre.n);
			break;
		}
		if (rc != 0)
			FAIL("returned %d", rc);
		/* (with nothing free, caches may have been reaped for it) */
		if (!cached && runs_of(&g_pre, a, m->q) < 0 && !(m->qmax != 0 && g_pre.n == 0))
			FAIL("result %#" PRIx64 " was not free", a);
		if (policy == VM_NEXTFIT) {
			m->cursor_known = true;
			m->cursor = a + m->q;
		}
		al_insert(m, a, m->q, m->q, K_ALLOC);
		m->allocs++;
		if (cached)
			m->qc_ok++;
		capture(m);
	}
	unsigned int every = 1 + in8(in) % 4;
	for (int i = m->nal - 1; i >= 0; i -= (int)every)
		if (m->al[i].kind != K_CHILD)
			do_free(m, i, 1);
}

/* ---- the run ------------------------------------------------------------------------- */

static void one_op(struct model *m, struct input *in, unsigned int op)
{
	switch (op) {
	case 0:
	case 1:
	case 2:
		g_opname = "alloc";
		if (room(m))
			do_alloc(m, in, false);
		break;
	case 3:
	case 4:
	case 5:
		g_opname = "xalloc";
		if (room(m))
			do_alloc(m, in, true);
		break;
	case 6:
	case 7:
	case 8: {
		g_opname = "free";
		if (m->nal == 0)
			break;
		int i = (int)(in16(in) % (unsigned int)m->nal);
		if (m->al[i].kind == K_CHILD)
			break;
		do_free(m, i, in8(in));
		break;
	}
	case 9:
		g_opname = "bad free";
		do_bad_free(m, in);
		break;
	case 10:
		g_opname = "add";
		do_add(m, in);
		break;
	case 11:
		g_opname = "reap";
		CALL("vmem_reap(%s)", m->role);
		vmem_reap(m->vm);
		break;
	case 12:
		g_opname = "bad arguments";
		do_bad_args(m, in);
		break;
	case 13:
		g_opname = "contains";
		do_contains(m, in);
		break;
	case 14:
		g_opname = "bulk";
		do_bulk(m, in);
		break;
	default:
		break;
	}
}

static uint64_t g_runs, g_ops;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	if (g_trace < 0) {
		const char *e = getenv("FUZZ_TRACE");
		g_trace = e != NULL && *e != '\0' && *e != '0';
	}
	size_t baseline = os_mapped_bytes();
	g_op = 0;
	g_opname = "setup";
	g_nm = 0;
	fault_disarm();
	memset(&g_cb, 0, sizeof(g_cb));
	g_strict = true;
	g_runs++;

#if FUZZ_MODE == 0
	g_nm = 1;
	if (in8(&in) % 8 == 0)
		bad_creates(&in);
	create_arena(P, "arena", &in, 48, true);
#else
	g_nm = 2;
	unsigned int mb = in8(&in);
	g_source = mb % 3 != 2;
	create_arena(P, g_source ? "parent" : "pool", &in, 8, true);
	if (!g_source && P->nsp == 0)
		do_add(P, &in);
	create_arena(C, "child", &in, 12, mb & 0x10);
	if (g_source && C->q % P->q != 0)
		g_strict = false; /* the parent cannot align to the child's quantum */
	for (int i = 0; i < C->nsp; i++)
		if (span_overlaps(P, C->sp[i].a, C->sp[i].s))
			g_strict = false; /* imports could collide with the child's own span */
	P->fails_loose = true; /* the child's failed imports are the parent's (pool's) fails */
	vmem_size_t iq = (mb & 0x20) ? C->q * (1 + in8(&in) % 16) : 0;
	int rc;
	if (g_source) {
		CALL("vmem_set_source(child, parent, %#" PRIx64 ")", iq);
		rc = vmem_set_source(C->vm, P->vm, iq);
	} else {
		CALL("vmem_set_import(child, %#" PRIx64 ")", iq);
		rc = vmem_set_import(C->vm, cb_import, cb_release, NULL, iq);
	}
	if (rc != 0)
		FAIL("returned %d", rc);
	if (g_source) {
		/* a loop is refused; the parent never allocated through it */
		CALL("vmem_set_source(parent, child, 0)");
		rc = vmem_set_source(P->vm, C->vm, 0);
		if (rc != EINVAL && rc != EBUSY)
			FAIL("a source loop returned %d", rc);
	}
	verify_all();
#endif

	while (in.n > 0 && g_op < 400) {
		g_op++;
		g_ops++;
		unsigned int op = in8(&in);
		struct model *m = P;
#if FUZZ_MODE == 1
		m = (op & 0x80) ? P : C;
		op &= 0x7f;
#endif
		switch (op % 24) {
		case 15:
			g_opname = "fault";
			fault_arm(1 + in8(&in) % 4);
			m = (FUZZ_MODE == 1 && (op & 0x40)) ? P : m;
			one_op(m, &in, in8(&in) % 15);
			fault_disarm();
			break;
		case 16:
			g_opname = "recreate";
#if FUZZ_MODE == 0
			destroy_arena(P);
			if (os_mapped_bytes() != baseline)
				FAIL("%zu bytes still mapped after vmem_destroy",
				     os_mapped_bytes() - baseline);
			if (in8(&in) & 1)
				fault_arm(1 + in8(&in) % 4); /* creation fails once, then works */
			create_arena(P, "arena", &in, 48, true);
			fault_disarm();
#else
			if (in8(&in) & 1)
				break;
			destroy_child();
			create_arena(C, "child", &in, 12, false);
			iq = iq ? C->q * (1 + in8(&in) % 16) : 0;
					if (g_source) {
				if (C->q % P->q != 0)
					g_strict = false;
				rc = vmem_set_source(C->vm, P->vm, iq);
			} else {
				rc = vmem_set_import(C->vm, cb_import, cb_release, NULL, iq);
			}
			if (rc != 0)
				FAIL("set source/import on a new child returned %d", rc);
#endif
			break;
#if FUZZ_MODE == 1
		case 17:
			g_opname = "limit";
			C->limit = (in8(&in) & 1) ? 0 : C->q * inbits(&in, 12);
			CALL("vmem_set_limit(child, %#" PRIx64 ")", C->limit);
			if (vmem_set_limit(C->vm, C->limit) != 0)
				FAIL("vmem_set_limit failed");
			break;
		case 18:
			g_opname = "callback misbehaves";
			g_cb.refuse = in8(&in) % 3;
			g_cb.garbage = in8(&in) % 4;
			break;
		case 19:
			g_opname = "busy";
			if (C->allocs == 0)
				break;
			CALL("vmem_set_source/import(child) after allocating");
			rc = g_source ? vmem_set_source(C->vm, P->vm, 0)
				      : vmem_set_import(C->vm, cb_import, cb_release, NULL, 0);
			if (rc != EBUSY)
				FAIL("returned %d, not EBUSY", rc);
			break;
#endif
		default:
			one_op(m, &in, op % 24 < 15 ? op % 24 : in8(&in) % 15);
			break;
		}
		verify_all();
	}

	g_opname = "teardown";
#if FUZZ_MODE == 1
	destroy_child();
	g_nm = 1;
#endif
	destroy_arena(P);
	g_nm = 0;
	if (os_mapped_bytes() != baseline)
		FAIL("%zu bytes still mapped after destroying everything", os_mapped_bytes() - baseline);
	return 0;
}

/* For the replay driver's summary. */
void fuzz_totals(uint64_t *runs, uint64_t *ops, uint64_t *checks);
void fuzz_totals(uint64_t *runs, uint64_t *ops, uint64_t *checks)
{
	*runs = g_runs;
	*ops = g_ops;
	*checks = (uint64_t)g_nchecks;
}
