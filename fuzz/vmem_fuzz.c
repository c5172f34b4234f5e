/*
 * vmem_fuzz.c - libFuzzer targets: input bytes become a sequence of vmem
 * calls, and after every call the arena is compared with a reference model
 * (an interval set of spans and allocations: tests/model.c, which
 * test_model.c shares) and the invariant checker (vmem_check) runs.  Any disagreement prints the call, the model and the
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "model.h"
#include "seams.h"

#ifndef FUZZ_MODE
#define FUZZ_MODE 0
#endif

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

/* ---- the models ------------------------------------------------------------ */

/* Bounds on what a model may hold, so that an input cannot make a run
 * arbitrarily slow; the arena may never show more segments than a model
 * this size could have. */
#define MAXAL 2048
#define MAXSP 1024
#define MAXSEG (2 * MAXAL + 2 * MAXSP + 64)
#define RECENT 8 /* frees remembered for double frees */

static struct model g_m[3];
static int g_nm;
static unsigned int g_op;
static const char *g_opname = "";
static char g_call[256];
static uint64_t g_fault_at;
static int g_devnull = -1;

/* A failed check: the call, every model and arena, then abort, so that
 * libFuzzer keeps the input. */
static void fuzz_failed(const struct model *m, const char *msg)
{
	(void)m;
	fflush(stdout);
	fprintf(stderr, "\n%s\n  op %u (%s), last call %s\n", msg, g_op, g_opname, g_call);
	for (int i = 0; i < g_nm; i++)
		model_print(&g_m[i], stderr);
	abort();
}
#define FAIL(...) MODEL_FAIL(NULL, __VA_ARGS__)
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

/* ---- the model, within bounds ------------------------------------------------- */

/* The free segments of m's walk, as the arena showed them last: where a
 * request may be met (with quantum caches, the model's own free runs may
 * lie inside slabs). */
static struct seglist g_pre, g_cand;

static void runs_from_walk(const struct model *m, struct seglist *r)
{
	r->n = 0;
	for (size_t i = 0; i < m->walk.n; i++)
		if (m->walk.v[i].type == VMEM_FREE)
			seglist_push(r, m->walk.v[i].addr, m->walk.v[i].size, VMEM_FREE);
}

static void al_insert(struct model *m, vmem_addr_t a, vmem_size_t s, vmem_size_t asked, int kind)
{
	if (m->nal == MAXAL)
		FAIL("model full");
	model_insert_alloc(m, a, s, asked, kind);
}

static void al_remove(struct model *m, size_t i)
{
	model_note_freed(m, &m->al[i]);
	model_remove_alloc(m, i);
}

static void sp_insert(struct model *m, vmem_addr_t a, vmem_size_t s, bool imported)
{
	if (m->nsp == MAXSP)
		FAIL("%s: too many spans", m->name);
	model_add_span(m, a, s, imported);
}

/* Read the arena's walk into m->walk. */
static void capture(struct model *m)
{
	model_read_walk(m);
	if (m->walk.n > MAXSEG)
		FAIL("%s: more segments than the model could ever have", m->name);
}

static void get_stats(const struct model *m, vmem_stats_t *st)
{
	int e = stats_read(m->vm, st);
	if (e != 0)
		FAIL("%s: vmem_get_stats returned %d", m->name, e);
}

static int g_nchecks;

/* The arena against its model (model.c), and within the bounds. */
static void verify(struct model *m)
{
	model_verify(m);
	if (m->walk.n > MAXSEG)
		FAIL("%s: more segments than the model could ever have", m->name);
	g_nchecks++;
}

/* ---- the arenas of a run ------------------------------------------------------- */

#define P (&g_m[0])     /* mode 0: the arena; mode 1: the parent or the pool */
#define C (&g_m[1])     /* mode 1: the child */
static bool g_source;   /* mode 1: C imports from P with vmem_set_source */
static bool g_strict;   /* mode 1: an ENOMEM of C means P could not help */

static bool is_cached(const struct model *m, bool x, vmem_size_t rsize, int policy);

/* Callback imports (mode 1 without a source): P is the pool. */
struct handed {
	vmem_addr_t addr;
	vmem_size_t size;
	vmem_addr_t pool_addr; /* where the pool allocated it */
	bool pooled;           /* false: garbage, not backed by the pool */
};

static struct {
	unsigned int refuse;  /* refuse the next n imports */
	unsigned int garbage; /* 1: misaligned, 2: overlapping a span of C, 3: at the top */
	uint64_t calls;
	uint64_t good; /* usable spans handed out: pool-backed, clear of the child's spans */
	struct handed out[MAXSP];
	int nout;
} g_cb;

static void model_start(struct model *m, const char *role, vmem_t *vm, vmem_size_t q,
			vmem_size_t qmax, int flags)
{
	model_reset(m, role, vm, q);
	m->qmax = qcache_max_clamped(q, qmax);
	m->debug = (flags & VMC_DEBUG) != 0;
	m->unchecked = (flags & VMC_UNCHECKED) != 0 && !m->debug && !os_debug_env();
	m->recent_cap = RECENT;
}

/* Whether the span [a, +s) shows in m's walk. */
static bool walk_has_span(const struct model *m, vmem_addr_t a, vmem_size_t s)
{
	for (size_t k = 0; k < m->walk.n; k++)
		if (m->walk.v[k].type == VMEM_SPAN && m->walk.v[k].addr == a &&
		    m->walk.v[k].size == s)
			return true;
	return false;
}

/* Spans of C that appeared or went away during a call: imports and
 * releases.  Returns the new ones in nv (at most 8). */
static int learn_spans(struct seg *nv)
{
	struct model *m = C;
	int nnew = 0, ngone = 0;
	capture(m);
	/* gone */
	for (size_t i = 0; i < m->nsp; i++) {
		const struct model_span s = m->sp[i];
		if (walk_has_span(m, s.start, s.size))
			continue;
		if (!s.imported)
			FAIL("child: added span [%#" PRIx64 ", +%#" PRIx64 ") disappeared", s.start,
			     s.size);
		if (model_span_busy(m, &s))
			FAIL("child: span [%#" PRIx64 ", +%#" PRIx64 ") released with an allocation in it",
			     s.start, s.size);
		model_remove_span(m, i--);
		ngone++;
		if (g_source) {
			long j = model_find_alloc(P, s.start);
			if (j < 0 || P->al[j].kind != MA_IMPORT || P->al[j].asked != s.size)
				FAIL("released span [%#" PRIx64 ", +%#" PRIx64
				     ") was not imported from the parent",
				     s.start, s.size);
			al_remove(P, (size_t)j);
		}
	}
	/* new */
	for (size_t k = 0; k < m->walk.n; k++) {
		const struct seg g = m->walk.v[k];
		if (g.type != VMEM_SPAN)
			continue;
		bool known = false;
		for (size_t i = 0; i < m->nsp && !known; i++)
			known = m->sp[i].start == g.addr && m->sp[i].size == g.size;
		if (known)
			continue;
		if (model_overlaps_span(m, g.addr, g.size))
			FAIL("child: span [%#" PRIx64 ", +%#" PRIx64 ") changed shape", g.addr, g.size);
		if (g.size % m->q != 0 || g.size == 0)
			FAIL("child: imported span of %#" PRIx64 " units", g.size);
		sp_insert(m, g.addr, g.size, true);
		if (nnew < 8)
			nv[nnew] = g;
		nnew++;
		if (g_source) {
			if (P->nal == MAXAL)
				FAIL("model full");
			/* the parent's segment is checked when the parent is verified;
			 * it is rounded to the parent's quantum */
			vmem_size_t ps;
			if (!round_to_quantum(g.size, P->q, &ps))
				FAIL("child: imported span of %#" PRIx64 " units", g.size);
			al_insert(P, g.addr, ps, g.size, MA_IMPORT);
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
	for (size_t i = 0; i < C->nsp; i++) {
		if (!C->sp[i].imported)
			continue;
		n++;
		bool found = false;
		for (int k = 0; k < g_cb.nout && !found; k++)
			found = g_cb.out[k].addr == C->sp[i].start && g_cb.out[k].size == C->sp[i].size;
		if (!found)
			FAIL("child span [%#" PRIx64 ", +%#" PRIx64
			     ") was not handed out by the import callback",
			     C->sp[i].start, C->sp[i].size);
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
	if ((vmflags & ~(VM_SLEEP | VM_NOSLEEP)) != 0)
		FAIL("import callback got flags %#x", vmflags);
	if (g_cb.refuse) {
		g_cb.refuse--;
		return ENOMEM;
	}
	if (g_cb.nout == MAXSP || P->nal == MAXAL)
		return ENOMEM;
	vmem_addr_t a, pa = 0;
	bool pooled = false;
	if (g_cb.garbage == 2 && C->nsp > 0) {
		/* a range the child already owns: it must refuse it */
		g_cb.garbage = 0;
		a = C->sp[0].start;
	} else if (g_cb.garbage == 3) {
		g_cb.garbage = 0;
		a = VMEM_ADDR_MAX - size + 2; /* wraps unless size == 1 */
		if (size == 1)
			a = VMEM_ADDR_MAX;
	} else {
		vmem_size_t rs;
		if (!round_to_quantum(size, P->q, &rs))
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
		al_insert(P, a, rs, size, MA_IMPORT);
		pa = a;
		pooled = true;
		if (g_cb.garbage == 1) {
			g_cb.garbage = 0;
			a += 1; /* misaligned unless quantum 1 */
		} else if (a % C->q == 0 && !model_overlaps_span(C, a, size)) {
			g_cb.good++;
		}
	}
	g_cb.out[g_cb.nout++] = (struct handed){a, size, pa, pooled};
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
		if (g_cb.out[i].addr == addr && g_cb.out[i].size == size &&
		    (k < 0 || !g_cb.out[i].pooled))
			k = i;
	if (k >= 0) {
		struct handed o = g_cb.out[k];
		g_cb.out[k] = g_cb.out[--g_cb.nout];
		if (o.pooled) {
			long j = model_find_alloc(P, o.pool_addr);
			if (j < 0 || P->al[j].kind != MA_IMPORT || P->al[j].asked != size)
				FAIL("harness: pool allocation %#" PRIx64 " lost", o.pool_addr);
			int e = vmem_free(P->vm, o.pool_addr, size);
			if (e != 0)
				FAIL("pool vmem_free(%#" PRIx64 ") = %d", o.pool_addr, e);
			P->frees++;
			al_remove(P, (size_t)j);
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
	if (s >= TOP_END)
		s = TOP_END - q;
	vmem_addr_t a;
	switch (b % 5) {
	case 0:
		a = 0;
		break;
	case 1: /* ends exactly at 2^64 */
		a = (vmem_addr_t)(TOP_END - s);
		break;
	case 2:
		a = inbits(in, 64) & ~(q - 1);
		break;
	case 3: /* the whole space but one quantum */
		s = TOP_END - q;
		a = b & 0x80 ? q : 0;
		break;
	default:
		a = (vmem_addr_t)q * (1 + in16(in));
		break;
	}
	if ((u128)a + s > TOP_END)
		a = (vmem_addr_t)(TOP_END - s);
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
		{VMEM_ADDR_MAX - q + 1, 2 * q, q, 0},                   /* wraps */
		{2 * q, VMEM_ADDR_MAX & ~(q - 1), q, 0},                /* wraps by one quantum */
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
	int flags = (b % 16 == 5 ? VMC_DEBUG : 0) | (b % 16 == 9 ? VMC_UNCHECKED : 0) |
		    (b & 0x40 ? VM_NOSLEEP : 0);
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
		model_start(m, role, vm, q, qmax, flags);
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
	CALL("vmem_destroy(%s)", m->name);
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
		for (size_t j = 0; j < P->nal; j++)
			if (P->al[j].kind == MA_IMPORT)
				al_remove(P, j--);
		P->frees += outstanding;
	} else if (g_cb.nout != 0) {
		FAIL("vmem_destroy did not release %d imported spans", g_cb.nout);
	}
	if (P->vm != NULL)
		verify(P);
}

/* ---- requests ---------------------------------------------------------------------- */

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
		for (size_t i = 0; i < m->walk.n; i++)
			if (m->walk.v[i].type == VMEM_FREE && (in8(in) & 3) == 0) {
				s = (u128)m->walk.v[i].size + (b & 0x80 ? m->q : 0);
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
	if (s >= TOP_END)
		s = VMEM_ADDR_MAX;
	return (vmem_size_t)s;
}

static void gen_bounds(struct input *in, const struct model *m, vmem_addr_t *minp,
		       vmem_addr_t *maxp)
{
	unsigned int b = in8(in);
	vmem_addr_t lo = 0, hi = VMEM_ADDR_MAX;
	if (b % 4 != 0 && m->nsp > 0) {
		const struct model_span *s = &m->sp[in8(in) % m->nsp];
		lo = s->start + (vmem_addr_t)(((u128)s->size * in8(in)) >> 8);
		hi = lo + (vmem_addr_t)(((u128)(s->start + (u128)s->size - 1 - lo) * in8(in)) >> 8);
		if (b & 0x10)
			lo = s->start;
		if (b & 0x20)
			hi = VMEM_ADDR_MAX;
		if (b & 0x40)
			lo = lo & ~(m->q - 1);
	} else if (b % 4 == 0 && (b & 0x10)) {
		lo = inbits(in, 64);
		hi = lo + inbits(in, 64);
		if (hi < lo)
			hi = VMEM_ADDR_MAX;
	}
	*minp = lo;
	*maxp = hi;
}

/* Whether the source could meet r itself (the contract: "a constrained
 * request is met through its source whenever the source can meet it"),
 * within the child's limit.  The span the child asks for may be bigger
 * (import quantum); when that cannot be had, the request still can. */
static bool parent_could(const struct fitq *r)
{
	if (C->limit != 0) {
		vmem_size_t it = 0;
		for (size_t i = 0; i < C->nsp; i++)
			if (C->sp[i].imported)
				it += C->sp[i].size;
		if ((u128)it + r->size > C->limit)
			return false;
	}
	struct fitq pr = *r;
	if (pr.align < C->q) {
		pr.align = C->q; /* spans start on the child's quantum */
		if (pr.phase != 0)
			return false;
	}
	struct seglist *pre = &g_cand; /* scratch */
	runs_from_walk(P, pre);
	vmem_addr_t a;
	return fit_lowest(pre, &pr, 0, &a, NULL);
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
	struct fitq r = {0, m->q, 0, 0, 0, VMEM_ADDR_MAX};
	vmem_size_t align = 0, phase = 0, nocross = 0;
	if (asked == 0 || !round_to_quantum(asked, m->q, &r.size)) {
		/* size 0, or its rounding overflows: EINVAL */
		vmem_addr_t a = 7;
		CALL("vmem_%salloc(%s, %#" PRIx64 ") [bad size]", x ? "x" : "", m->name, asked);
		int rc = x ? vmem_xalloc(m->vm, asked, 0, 0, 0, 0, VMEM_ADDR_MAX, policy, &a)
			   : vmem_alloc(m->vm, asked, policy, &a);
		if (rc != EINVAL || a != 7)
			FAIL("returned %d", rc);
		return false;
	}
	if (x) {
		unsigned int c = in8(in);
		if (c % 3 != 0) {
			unsigned int k = in8(in) % (c & 0x80 ? 64 : 24);
			align = (u128)m->q << k < TOP_END ? m->q << k : m->q;
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
			if (nc < TOP_END) {
				nocross = (vmem_size_t)nc;
				r.nocross = nocross;
			}
		}
		gen_bounds(in, m, &r.min, &r.max);
	}
	bool cached = is_cached(m, x, r.size, policy);

	runs_from_walk(m, &g_pre);
	vmem_addr_t lowest = 0;
	bool fit_pre = fit_lowest(&g_pre, &r, 0, &lowest, NULL);
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
		     m->name, asked, align, phase, nocross, r.min, r.max, flags);
		rc = vmem_xalloc(m->vm, asked, align, phase, nocross, r.min, r.max, flags, &a);
	} else {
		CALL("vmem_alloc(%s, %#" PRIx64 ", %#x)", m->name, asked, flags);
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
		    r.min == 0 && r.max == VMEM_ADDR_MAX && r.nocross == 0)
			FAIL("ENOMEM, although the import callback handed out a usable span");
		return false;
	}
	if (rc != 0)
		FAIL("returned %d", rc);
	if (!fitq_holds(&r, a))
		FAIL("result %#" PRIx64 " breaks the request's constraints", a);
	if (nnew > 0 && fit_pre && !cached)
		FAIL("imported a span although [%#" PRIx64 ", +%#" PRIx64 ") was free", lowest,
		     r.size);
	/* with nothing free, an arena with quantum caches may reap them and
	 * retry, as it may reclaim: the result then lies in units the caches
	 * held (al_insert still checks it is in a span and nobody else's) */
	bool reaped_ok = m->qmax != 0 && !fit_pre;
	if (!cached && !reaped_ok) {
		/* the free segments before the call, and the spans it imported */
		g_cand.n = 0;
		for (size_t i = 0; i < g_pre.n; i++)
			seglist_push(&g_cand, g_pre.v[i].addr, g_pre.v[i].size, VMEM_FREE);
		for (int i = 0; i < nnew; i++) {
			seglist_push(&g_cand, 0, 0, VMEM_FREE);
			size_t k = g_cand.n - 1;
			while (k > 0 && g_cand.v[k - 1].addr > nv[i].addr) {
				g_cand.v[k] = g_cand.v[k - 1];
				k--;
			}
			g_cand.v[k] = nv[i];
		}
		long run = seglist_find(&g_cand, a, r.size);
		if (run < 0) {
			for (size_t i = 0; i < g_cand.n; i++)
				fprintf(stderr, "   free before the call: [%#" PRIx64 ", +%#" PRIx64 ")\n",
					g_cand.v[i].addr, g_cand.v[i].size);
			FAIL("result [%#" PRIx64 ", +%#" PRIx64 ") was not free", a, r.size);
		}
		vmem_addr_t want;
		if (policy == VM_FIRSTFIT) {
			if (!fit_lowest(&g_cand, &r, 0, &want, NULL) || want != a)
				FAIL("VM_FIRSTFIT gave %#" PRIx64 ", the lowest fit is %#" PRIx64, a,
				     want);
		} else if (policy == VM_NEXTFIT && m->cursor_known) {
			if (!fit_lowest(&g_cand, &r, m->cursor, &want, NULL) &&
			    !fit_lowest(&g_cand, &r, 0, &want, NULL))
				FAIL("no fit in the model");
			if (want != a)
				FAIL("VM_NEXTFIT gave %#" PRIx64 ", the first fit after cursor %#" PRIx64
				     " is %#" PRIx64,
				     a, m->cursor, want);
		} else if (policy == VM_BESTFIT) {
			vmem_size_t best = fit_best_size(&g_cand, &r);
			if (g_cand.v[run].size != best)
				FAIL("VM_BESTFIT took a segment of %#" PRIx64 " units; one of %#" PRIx64
				     " fits",
				     g_cand.v[run].size, best);
		}
	}
	if (policy == VM_NEXTFIT) {
		m->cursor_known = true;
		m->cursor = a + r.size; /* 2^64 wraps to 0: the start */
	}
	al_insert(m, a, r.size, asked, x ? MA_XALLOC : MA_ALLOC);
	m->allocs++;
	if (cached)
		m->qc_ok++;
	return true;
}

/* A good free of allocation i. */
static void do_free(struct model *m, size_t i, unsigned int b)
{
	struct model_alloc al = m->al[i];
	bool xf, maybe = false;
	vmem_size_t size = al.asked;
	if (al.kind == MA_ALLOC) {
		xf = (b & 7) == 0;
		maybe = xf; /* vmem_xfree of a vmem_alloc segment: the contract does not say */
	} else {
		/* vmem_free of an xalloc segment above qcache_max acts as vmem_xfree */
		xf = !((b & 1) && (m->qmax == 0 || al.size > m->qmax));
	}
	if ((b & 0x30) == 0x10 && al.size != al.asked) {
		size = al.size; /* the same size once rounded */
		maybe = true;
	}
	CALL("%s(%s, %#" PRIx64 ", %#" PRIx64 ")", xf ? "vmem_xfree" : "vmem_free", m->name, al.addr,
	     size);
	int rc = xf ? vmem_xfree(m->vm, al.addr, size) : vmem_free(m->vm, al.addr, size);
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
	const struct model_alloc *al = m->nal ? &m->al[in16(in) % m->nal] : NULL;
	switch (b % 10) {
	case 0: /* double free */
		if (model_nrecent(m) == 0)
			return;
		a = m->recent[in8(in) % model_nrecent(m)].addr;
		s = m->recent[in8(in) % model_nrecent(m)].asked;
		break;
	case 1: /* wrong size */
		if (!al)
			return;
		a = al->addr;
		s = al->size + m->q * (1 + in8(in) % 4);
		break;
	case 2:
		if (!al || al->size <= m->q)
			return;
		a = al->addr;
		s = al->size - m->q;
		break;
	case 3: /* interior */
		if (!al || al->size <= m->q)
			return;
		a = al->addr + m->q;
		s = al->size - m->q;
		break;
	case 4: /* free space */
		for (size_t i = 0; i < m->walk.n; i++)
			if (m->walk.v[i].type == VMEM_FREE && (in8(in) & 1)) {
				a = m->walk.v[i].addr;
				s = m->walk.v[i].size < m->q * 4 ? m->walk.v[i].size : m->q * (1 + in8(in) % 4);
				break;
			}
		if (s == 0)
			return;
		break;
	case 5: /* size 0 */
		if (!al)
			return;
		a = al->addr;
		s = 0;
		break;
	case 6: /* vmem_free of a cached-size xalloc segment: an error */
		if (!al || al->kind != MA_XALLOC || m->qmax == 0 || al->size > m->qmax)
			return;
		a = al->addr;
		s = al->asked;
		xf = false;
		break;
	case 7: /* a child's span, at the parent, with the wrong size */
		if (!al || al->kind != MA_IMPORT)
			return;
		a = al->addr;
		s = al->size + m->q;
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
	int j = model_find_alloc(m, a);
	if (s != 0 && j >= 0 && round_to_quantum(s, m->q, &rs) && rs == m->al[j].size &&
	    (b % 10 != 6))
		return;
	/* a size the caches serve is checked, but for VMC_UNCHECKED */
	if (m->qmax != 0 && m->unchecked && (!round_to_quantum(s, m->q, &rs) || rs <= m->qmax))
		return;
	CALL("%s(%s, %#" PRIx64 ", %#" PRIx64 ") [bad]", xf ? "vmem_xfree" : "vmem_free", m->name,
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
	vmem_addr_t sp = m->nsp ? m->sp[0].start : 0;
	CALL("bad argument case %u on %s", k, m->name);
	switch (k) {
	case 0: rc = vmem_alloc(m->vm, 0, VM_NOSLEEP, &a); break;
	case 1: rc = vmem_alloc(m->vm, q, VM_NOSLEEP, NULL); break;
	case 2: rc = vmem_alloc(m->vm, q, VM_SLEEP | VM_NOSLEEP, &a); break;
	case 3: rc = vmem_alloc(m->vm, q, VM_BESTFIT | VM_NEXTFIT, &a); break;
	case 4: rc = vmem_alloc(m->vm, q, 0x8 | (int)(in8(in) << 20), &a); break;
	case 5:
		if (q == 1)
			return;
		rc = vmem_alloc(m->vm, VMEM_ADDR_MAX - q + 2 + in8(in) % (q - 1 < 200 ? q - 1 : 200), 0, &a);
		break;
	case 6: rc = vmem_xalloc(m->vm, q, q * 3 == 0 ? 3 : q * 3, 0, 0, 0, VMEM_ADDR_MAX, 0, &a); break;
	case 7:
		if (q == 1)
			return;
		rc = vmem_xalloc(m->vm, q, q / 2, 0, 0, 0, VMEM_ADDR_MAX, 0, &a);
		break;
	case 8: rc = vmem_xalloc(m->vm, q, 4 * q, 4 * q, 0, 0, VMEM_ADDR_MAX, 0, &a); break;
	case 9:
		if (q == 1)
			return;
		rc = vmem_xalloc(m->vm, q, 4 * q, 1, 0, 0, VMEM_ADDR_MAX, 0, &a);
		break;
	case 10: rc = vmem_xalloc(m->vm, 4 * q, 0, 0, 2 * q, 0, VMEM_ADDR_MAX, 0, &a); break;
	case 11: rc = vmem_xalloc(m->vm, q, 0, 0, 3 * q, 0, VMEM_ADDR_MAX, 0, &a); break;
	case 12: rc = vmem_xalloc(m->vm, q, 0, 0, 0, 100, 99, 0, &a); break;
	case 13: rc = vmem_xalloc(m->vm, q, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_FIRSTFIT | VM_INSTANTFIT, &a); break;
	case 14: rc = vmem_add(m->vm, sp, m->nsp ? q : 0, 0); break; /* overlap, or empty */
	case 15:
		if (q == 1)
			return;
		rc = vmem_add(m->vm, q / 2, q, 0);
		break;
	case 16: rc = vmem_add(m->vm, VMEM_ADDR_MAX - q + 1, 2 * q, 0); break;
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
	default: rc = seglist_walk(m->vm, VMEM_SPAN << 1, &g_cand); break; /* scratch */
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
	vmem_size_t s = s128 >= TOP_END ? q : (vmem_size_t)s128;
	switch (b % 6) {
	case 0: /* next to a span */
		if (m->nsp == 0) {
			a = 0;
			break;
		}
		{
			const struct model_span *x = &m->sp[in8(in) % m->nsp];
			u128 e = (u128)x->start + x->size + (u128)q * (b & 0x80 ? in8(in) : 0);
			if (b & 0x40)
				e = (u128)x->start - s; /* just before it */
			a = (vmem_addr_t)e;
		}
		break;
	case 1: /* ending at 2^64 */
		a = (vmem_addr_t)(TOP_END - s);
		break;
	case 2:
		a = 0;
		break;
	case 3: /* overlapping a span (or anywhere) */
		a = m->nsp ? m->sp[in8(in) % m->nsp].start + q * in8(in) : 0;
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
	bool good = s != 0 && a % q == 0 && s % q == 0 && (u128)a + s <= TOP_END &&
		    !model_overlaps_span(m, a, s);
	if (good && m->nsp >= MAXSP - 8)
		return;
	if (FUZZ_MODE == 1 && good && g_source) {
		/* a span the parent owns may come back as an import: nothing is
		 * wrong with that, but then "the source could meet it" no longer
		 * means the child can use it */
		const struct model *o = m == C ? P : C;
		if (o->vm != NULL && model_overlaps_span(o, a, s))
			g_strict = false;
	}
	CALL("vmem_add(%s, %#" PRIx64 ", %#" PRIx64 ", %#x)", m->name, a, s, flags);
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
		const struct model_span *x = &m->sp[in8(in) % m->nsp];
		a = x->start + (vmem_addr_t)(((u128)x->size * in8(in)) >> 8);
		s = (vmem_size_t)(((u128)x->size * in8(in)) >> 7);
	} else {
		a = inbits(in, 64);
		s = inbits(in, 64);
	}
	CALL("vmem_contains(%s, %#" PRIx64 ", %#" PRIx64 ")", m->name, a, s);
	int want = s != 0 && (u128)a + s <= TOP_END && model_span_of(m, a, s) >= 0;
	int got = vmem_contains(m->vm, a, s);
	if (got != want)
		FAIL("vmem_contains gave %d, model says %d", got, want);
	vmem_size_t rs;
	bool ok = round_to_quantum(s, m->q, &rs);
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
		CALL("vmem_alloc(%s, %#" PRIx64 ", %#x) [bulk %u]", m->name, m->q, policy, i);
		int rc = vmem_alloc(m->vm, m->q, policy | VM_NOSLEEP, &a);
		bool fired = fault_fired();
		bool cached = is_cached(m, false, m->q, policy);
		if (FUZZ_MODE == 1 && m == C) {
			/* imports: let the full check sort them out */
			struct seg nv[8];
			int nnew = learn_spans(nv);
			for (int k = 0; k < nnew; k++)
				seglist_push(&g_pre, nv[k].addr, nv[k].size, VMEM_FREE);
		}
		if (rc == ENOMEM) {
			m->fails++;
			if (cached)
				m->qc_fail++;
			if (!fired && !cached && g_pre.n > 0 && (FUZZ_MODE == 0 || m != C))
				FAIL("ENOMEM with %zu free segments", g_pre.n);
			break;
		}
		if (rc != 0)
			FAIL("returned %d", rc);
		/* (with nothing free, caches may have been reaped for it) */
		if (!cached && seglist_find(&g_pre, a, m->q) < 0 && !(m->qmax != 0 && g_pre.n == 0))
			FAIL("result %#" PRIx64 " was not free", a);
		if (policy == VM_NEXTFIT) {
			m->cursor_known = true;
			m->cursor = a + m->q;
		}
		al_insert(m, a, m->q, m->q, MA_ALLOC);
		m->allocs++;
		if (cached)
			m->qc_ok++;
		capture(m);
	}
	unsigned int every = 1 + in8(in) % 4;
	for (long i = (long)m->nal - 1; i >= 0; i -= (long)every)
		if (m->al[i].kind != MA_IMPORT)
			do_free(m, (size_t)i, 1);
}

/* ---- the run ------------------------------------------------------------------------- */

/* What op (below 15) does: an allocation (3 in 15), a constrained one (3),
 * a free (3), a bad free, a span, a reap, bad arguments, vmem_contains, a
 * bulk of allocations. */
static const char *const op_names[15] = {
	"alloc", "alloc", "alloc", "xalloc", "xalloc", "xalloc", "free", "free", "free",
	"bad free", "add", "reap", "bad arguments", "contains", "bulk",
};

static void one_op(struct model *m, struct input *in, unsigned int op)
{
	g_opname = op_names[op];
	if (op < 6) {
		if (room(m))
			do_alloc(m, in, op >= 3);
	} else if (op < 9) {
		if (m->nal == 0)
			return;
		size_t i = in16(in) % m->nal;
		if (m->al[i].kind != MA_IMPORT)
			do_free(m, i, in8(in));
	} else if (op == 9) {
		do_bad_free(m, in);
	} else if (op == 10) {
		do_add(m, in);
	} else if (op == 11) {
		CALL("vmem_reap(%s)", m->name);
		vmem_reap(m->vm);
	} else if (op == 12) {
		do_bad_args(m, in);
	} else if (op == 13) {
		do_contains(m, in);
	} else {
		do_bulk(m, in);
	}
}

static uint64_t g_runs, g_ops;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	model_failure = fuzz_failed;
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
	for (size_t i = 0; i < C->nsp; i++)
		if (model_overlaps_span(P, C->sp[i].start, C->sp[i].size))
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
