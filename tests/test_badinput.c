/*
 * test_badinput.c - every argument error the contract names, and every kind
 * of bad free, against arenas in several states.
 *
 * The states: an empty arena (no span, never allocated); a fresh one with
 * a span; a fragmented one (many spans, one ending at 2^64, allocations and
 * holes); a child with imported spans and its parent; a child importing
 * through callbacks; an arena with quantum caches (qcache_max > 0) holding
 * cached sizes; a VMC_DEBUG arena with caches.  Each case runs against
 * every state it applies to.  Before and after the call every arena of the
 * state is photographed (the whole vmem_get_stats and the whole vmem_walk)
 * and the two must be byte-for-byte equal; the call must return exactly the
 * errno the contract names; vmem_check must pass.  While the cases run,
 * stderr goes to a file: arenas without VMC_DEBUG must not have written a
 * byte, and the debug arena must have reported its bad frees.
 *
 * Prints "# figure: bad inputs tried N".
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- arena states ------------------------------------------------------------- */

struct state {
	const char *name;
	vmem_t *vm;        /* the arena the cases run against */
	vmem_t *other;     /* a parent or pool that must not change either */
	vmem_t *extra;     /* another arena (destroyed with the state) */
	vmem_size_t q, qmax;
	bool debug, allocated, has_source;
	/* outstanding: a vmem_alloc and a vmem_xalloc segment above qcache_max */
	vmem_addr_t busy, xbusy;
	vmem_size_t busy_s, xbusy_s;
	/* outstanding cached sizes (qmax > 0): vmem_alloc and vmem_xalloc */
	vmem_addr_t cbusy, cxbusy;
	vmem_size_t cbusy_s, cxbusy_s;
	/* freed already (double free); 0 size: none */
	vmem_addr_t freed;
	vmem_size_t freed_s;
	bool freed_cached;
	/* a span, and an address outside every span */
	vmem_addr_t span;
	vmem_size_t span_s;
	bool has_span;
	vmem_addr_t outside;
	/* the parent's copy of an imported span (child states) */
	vmem_addr_t imp;
	vmem_size_t imp_s;
};

static vmem_addr_t must_alloc(vmem_t *vm, vmem_size_t s, int flags)
{
	vmem_addr_t a;
	int rc = vmem_alloc(vm, s, flags | VM_NOSLEEP, &a);
	if (rc != 0)
		fail_msg("setup: vmem_alloc(%s, %#" PRIx64 ") = %d", vmem_name(vm), s, rc);
	return a;
}

static vmem_addr_t must_xalloc(vmem_t *vm, vmem_size_t s, vmem_size_t align)
{
	vmem_addr_t a;
	int rc = vmem_xalloc(vm, s, align, 0, 0, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &a);
	if (rc != 0)
		fail_msg("setup: vmem_xalloc(%s, %#" PRIx64 ") = %d", vmem_name(vm), s, rc);
	return a;
}

/* The common tail of every state: allocations of each kind, one freed. */
static void populate(struct state *s, uint64_t *rng)
{
	vmem_size_t q = s->q;
	vmem_size_t big = s->qmax + 3 * q; /* above the caches */
	/* some noise first, so the arena is fragmented */
	vmem_addr_t noise[64];
	vmem_size_t nsz[64];
	for (int i = 0; i < 64; i++) {
		nsz[i] = q * (1 + rand_next(rng) % 9) + s->qmax;
		noise[i] = must_alloc(s->vm, nsz[i], i % 2 ? VM_BESTFIT : VM_FIRSTFIT);
	}
	s->busy_s = big;
	s->busy = must_alloc(s->vm, big, VM_FIRSTFIT);
	s->xbusy_s = big + q;
	s->xbusy = must_xalloc(s->vm, s->xbusy_s, 4 * q);
	if (s->qmax != 0) {
		s->cbusy_s = q;
		s->cbusy = must_alloc(s->vm, q, 0);
		s->cxbusy_s = 2 * q;
		s->cxbusy = must_xalloc(s->vm, 2 * q, 0);
	}
	vmem_addr_t f = must_alloc(s->vm, big, 0);
	assert_int_equal(vmem_free(s->vm, f, big), 0);
	s->freed = f;
	s->freed_s = big;
	for (int i = 0; i < 64; i += 2)
		assert_int_equal(vmem_free(s->vm, noise[i], nsz[i]), 0);
	s->allocated = true;
}

enum { S_EMPTY, S_FRESH, S_FRAGMENTED, S_CHILD, S_CALLBACK, S_QCACHE, S_DEBUG, S_NSTATES };

/* The arena a state's cases run against: one span [base, base + size)
 * unless size is 0, and an address outside every span. */
static void state_arena(struct state *s, const char *name, const char *arena, vmem_addr_t base,
			vmem_size_t size, vmem_size_t q, vmem_size_t qmax, int flags,
			vmem_addr_t outside)
{
	s->name = name;
	s->q = q;
	s->qmax = qmax;
	s->debug = flags & VMC_DEBUG;
	s->vm = arena_new(arena, base, size, q, qmax, flags);
	s->has_span = size != 0;
	s->span = base;
	s->span_s = size;
	s->outside = outside;
}

static void state_make(struct state *s, int kind, uint64_t *rng)
{
	memset(s, 0, sizeof(*s));
	switch (kind) {
	case S_EMPTY:
		state_arena(s, "empty", "bad-empty", 0, 0, 16, 0, 0, 0x1000);
		break;
	case S_FRESH:
		state_arena(s, "fresh", "bad-fresh", 100, 1000, 1, 0, 0, 5000);
		break;
	case S_FRAGMENTED:
		state_arena(s, "fragmented", "bad-frag", 0x100000, 0x1000000, 4096, 0, 0, 0x4000000);
		assert_int_equal(vmem_add(s->vm, (vmem_addr_t)(TOP_END - 0x100000), 0x100000, 0), 0);
		assert_int_equal(vmem_add(s->vm, 0x1100000, 0x100000, 0), 0); /* adjacent */
		s->span = 0x1100000; /* the cases' span: that one */
		s->span_s = 0x100000;
		populate(s, rng);
		/* and an allocation in the span at the top */
		vmem_addr_t t;
		assert_int_equal(vmem_xalloc(s->vm, 0x2000, 0, 0, 0, (vmem_addr_t)(TOP_END - 0x100000),
					     VMEM_ADDR_MAX, VM_FIRSTFIT, &t),
				 0);
		break;
	case S_CHILD: {
		s->other = arena_new("bad-parent", 0x10000, 0x100000, 16, 0, 0);
		state_arena(s, "child with a source", "bad-child", 0, 0, 16, 0, 0, 0x8000000);
		assert_int_equal(vmem_set_source(s->vm, s->other, 1024), 0);
		s->has_source = true;
		populate(s, rng);
		struct seg f;
		assert_true(walk_first(s->vm, VMEM_SPAN, &f));
		s->has_span = true;
		s->span = f.addr;
		s->span_s = f.size;
		s->imp = f.addr; /* the parent holds it as an allocation of the same size */
		s->imp_s = f.size;
		break;
	}
	case S_CALLBACK:
		s->other = arena_new("bad-pool", 0x40000000, 0x1000000, 64, 0, 0);
		state_arena(s, "child with import callbacks", "bad-cb", 0, 0, 64, 0, 0, 0x10);
		assert_int_equal(
			vmem_set_import(s->vm, import_from_pool, release_to_pool, s->other, 4096), 0);
		s->has_source = true;
		populate(s, rng);
		break;
	case S_QCACHE:
		state_arena(s, "quantum caches", "bad-qcache", 0x800, 0x80000, 8, 64, 0, 0x100000);
		populate(s, rng);
		break;
	case S_DEBUG:
		state_arena(s, "VMC_DEBUG", "bad-debug", 0x800, 0x80000, 8, 64, VMC_DEBUG, 0x100000);
		populate(s, rng);
		/* a freed cached size, for a double free the debug checks see */
		vmem_addr_t c = must_alloc(s->vm, 16, 0);
		assert_int_equal(vmem_free(s->vm, c, 16), 0);
		s->freed = c;
		s->freed_s = 16;
		s->freed_cached = true;
		break;
	default:
		fail();
	}
	if (s->other == NULL) {
		/* an unrelated arena, for source loops */
		s->extra = arena_new("bad-extra", 0, 1 << 20, s->q, 0, 0);
	}
	CHECK_ARENA(s->vm);
}

static void state_free(struct state *s)
{
	vmem_destroy(s->vm);
	vmem_destroy(s->other);
	vmem_destroy(s->extra);
}

/* The same state, seen from the child's source: the cases run against
 * the parent, and the child must not change either. */
static struct state parent_state(const struct state *s)
{
	struct state p = *s;
	p.vm = s->other;
	p.other = s->vm;
	p.name = "parent of a child";
	return p;
}

/* ---- running a case ------------------------------------------------------------- */

static uint64_t g_tried;
static struct snapshot g_before, g_before_other;
static vmem_stats_t g_st;

/* vm must show what *before saw; else fail, naming it. */
static void unchanged(struct state *s, vmem_t *vm, struct snapshot *before, const char *which,
		      const char *what, int line)
{
	char why[600];
	if (!arena_unchanged(vm, before, 0, why, sizeof(why)))
		fail_msg("state \"%s\", line %d: after %s, the %s: %s", s->name, line, what, which,
			 why);
}

/* rc must be want (or want2 when that is not 0); nothing may change. */
static void expect_at(struct state *s, int rc, int want, int want2, const char *what, int line)
{
	g_tried++;
	if (rc != want && (want2 == 0 || rc != want2))
		fail_msg("state \"%s\", line %d: %s returned %d, expected %d", s->name, line, what,
			 rc, want);
	unchanged(s, s->vm, &g_before, "arena", what, line);
	if (s->other)
		unchanged(s, s->other, &g_before_other, s->has_source ? "source" : "other arena",
			  what, line);
}

static void before(struct state *s)
{
	snapshot_take(s->vm, &g_before);
	if (s->other)
		snapshot_take(s->other, &g_before_other);
}

/* One row of the table: run call when cond holds; it must give want. */
#define ROW(cond, want, call)                                                                    \
	do {                                                                                     \
		if (cond) {                                                                      \
			before(s);                                                               \
			int rc_ = (call);                                                        \
			expect_at(s, rc_, (want), 0, #call, __LINE__);                           \
		}                                                                                \
	} while (0)
#define ROW2(cond, want, want2, call)                                                            \
	do {                                                                                     \
		if (cond) {                                                                      \
			before(s);                                                               \
			int rc_ = (call);                                                        \
			expect_at(s, rc_, (want), (want2), #call, __LINE__);                     \
		}                                                                                \
	} while (0)

static int walk_noop_calls;
static void walk_noop(void *arg, vmem_addr_t a, vmem_size_t sz, int t)
{
	(void)arg;
	(void)a;
	(void)sz;
	(void)t;
	walk_noop_calls++;
}

/* vmem_get_stats with a short size: EINVAL and not a byte written. */
static int short_stats(vmem_t *vm, uint32_t size)
{
	vmem_stats_t st;
	memset(&st, 0xa5, sizeof(st));
	st.size = size;
	int rc = vmem_get_stats(vm, &st);
	const unsigned char *p = (const unsigned char *)&st;
	for (size_t i = 8; i < sizeof(st); i++)
		if (p[i] != 0xa5)
			return -1;
	return rc;
}

static int rc_of_contains(int c)
{
	return c == 0 ? EINVAL : 0; /* 0 is what these must say: map it onto the table */
}

static const int policy_bits[] = {VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};

static void run_rows(struct state *s)
{
	vmem_t *vm = s->vm;
	vmem_size_t q = s->q;
	vmem_addr_t a = 0x5a5a;
	const vmem_size_t big = s->qmax + 3 * q; /* a size above the caches */
	/* bad frees of cached sizes are checked, as every other free */
	const bool chk_cached = true;

	/* ---- vmem_alloc -------------------------------------------------------- */
	ROW(true, EINVAL, vmem_alloc(vm, 0, VM_NOSLEEP, &a));
	ROW(true, EINVAL, vmem_alloc(vm, 0, VM_SLEEP, &a));
	ROW(true, EINVAL, vmem_alloc(vm, q, VM_NOSLEEP, NULL));
	ROW(true, EINVAL, vmem_alloc(vm, big, VM_NOSLEEP, NULL));
	ROW(true, EINVAL, vmem_alloc(NULL, q, VM_NOSLEEP, &a));
	ROW(q > 1, EINVAL, vmem_alloc(vm, VMEM_ADDR_MAX, VM_NOSLEEP, &a));
	ROW(q > 1, EINVAL, vmem_alloc(vm, VMEM_ADDR_MAX - q + 2, VM_NOSLEEP, &a));
	ROW(true, EINVAL, vmem_alloc(vm, q, VM_SLEEP | VM_NOSLEEP, &a));
	ROW(true, EINVAL, vmem_alloc(vm, big, VM_SLEEP | VM_NOSLEEP | VM_FIRSTFIT, &a));
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++) {
			ROW(true, EINVAL, vmem_alloc(vm, q, policy_bits[i] | policy_bits[j], &a));
			ROW(true, EINVAL,
			    vmem_alloc(vm, big, policy_bits[i] | policy_bits[j] | VM_NOSLEEP, &a));
		}
	ROW(true, EINVAL, vmem_alloc(vm, q, VM_INSTANTFIT | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT, &a));
	ROW(true, EINVAL, vmem_alloc(vm, q, VMC_DEBUG, &a));
	ROW(true, EINVAL, vmem_alloc(vm, q, -1, &a));
	ROW(true, EINVAL, vmem_alloc(vm, q, INT_MIN, &a));
	/* every bit that is not a sleep flag or a policy */
	for (int bit = 0; bit < 31; bit++) {
		int f = 1 << bit;
		if (f & (VM_SLEEP | VM_NOSLEEP | VM_INSTANTFIT | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT))
			continue;
		ROW(true, EINVAL, vmem_alloc(vm, q, f | VM_NOSLEEP, &a));
		ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 0, 0, VMEM_ADDR_MAX, f, &a));
		ROW(true, EINVAL, vmem_add(vm, 0x7000000000000000ull, q, f));
	}

	/* ---- vmem_xalloc ------------------------------------------------------- */
	ROW(true, EINVAL, vmem_xalloc(vm, 0, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, NULL));
	ROW(true, EINVAL, vmem_xalloc(NULL, q, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(q > 1, EINVAL, vmem_xalloc(vm, VMEM_ADDR_MAX, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(q > 1, EINVAL, vmem_xalloc(vm, VMEM_ADDR_MAX - q + 2, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	/* align: a power of two and a multiple of the quantum */
	ROW(true, EINVAL, vmem_xalloc(vm, q, 3 * q, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 6 * q, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 3, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(q > 1, EINVAL, vmem_xalloc(vm, q, q / 2, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(q > 2, EINVAL, vmem_xalloc(vm, q, 1, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, VMEM_ADDR_MAX, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, (vmem_size_t)(TOP_END / 2 + q), 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	/* phase: a multiple of the quantum below max(align, quantum) */
	ROW(true, EINVAL, vmem_xalloc(vm, q, 4 * q, 4 * q, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 4 * q, 8 * q, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, q, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, q, q, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(q > 1, EINVAL, vmem_xalloc(vm, q, 4 * q, 1, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(q > 1, EINVAL, vmem_xalloc(vm, q, 4 * q, q + q / 2, 0, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, VMEM_ADDR_MAX, 0, 0, VMEM_ADDR_MAX, 0, &a));
	/* nocross: a power of two, a multiple of the quantum, at least the size */
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 3 * q, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, 4 * q, 0, 0, 2 * q, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, 4 * q + 1, 0, 0, 4 * q, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(q > 1, EINVAL, vmem_xalloc(vm, 1, 0, 0, q / 2, 0, VMEM_ADDR_MAX, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, VMEM_ADDR_MAX, 0, VMEM_ADDR_MAX, 0, &a));
	/* bounds */
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 0, 0x2000, 0x1fff, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 0, VMEM_ADDR_MAX, 0, 0, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 0, 1, 0, VM_FIRSTFIT, &a));
	/* flags */
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_SLEEP | VM_NOSLEEP, &a));
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			ROW(true, EINVAL,
			    vmem_xalloc(vm, q, 0, 0, 0, 0, VMEM_ADDR_MAX, policy_bits[i] | policy_bits[j], &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 0, 0, 0, 0, VMEM_ADDR_MAX, VMC_DEBUG, &a));
	ROW(true, EINVAL, vmem_xalloc(vm, q, 4 * q, 8 * q, 3 * q, 1, 0, -1, &a)); /* everything */
	assert_true(a == 0x5a5a); /* no failed call wrote a result */

	/* ---- frees --------------------------------------------------------------- */
	ROW(true, EINVAL, vmem_free(NULL, s->busy, s->busy_s));
	ROW(true, EINVAL, vmem_xfree(NULL, s->xbusy, s->xbusy_s));
	ROW(true, EINVAL, vmem_free(vm, s->outside, big));
	ROW(true, EINVAL, vmem_xfree(vm, s->outside, big));
	ROW(true, EINVAL, vmem_free(vm, VMEM_ADDR_MAX - q + 1, q + s->qmax));
	ROW(true, EINVAL, vmem_free(vm, VMEM_ADDR_MAX, VMEM_ADDR_MAX));
	ROW(true, EINVAL, vmem_free(vm, 0, big));
	ROW(true, EINVAL, vmem_xfree(vm, 0, 0));
	ROW(s->has_span, EINVAL, vmem_free(vm, s->span, s->span_s)); /* a span is not a segment */
	ROW(s->has_span, EINVAL, vmem_xfree(vm, s->span, s->span_s));
	if (s->allocated) {
		/* the right address, a wrong size */
		ROW(true, EINVAL, vmem_free(vm, s->busy, 0));
		ROW(true, EINVAL, vmem_free(vm, s->busy, s->busy_s + q));
		ROW(true, EINVAL, vmem_free(vm, s->busy, s->busy_s - q));
		ROW(true, EINVAL, vmem_free(vm, s->busy, 2 * s->busy_s));
		ROW(true, EINVAL, vmem_free(vm, s->busy, VMEM_ADDR_MAX));
		ROW(true, EINVAL, vmem_xfree(vm, s->xbusy, 0));
		ROW(true, EINVAL, vmem_xfree(vm, s->xbusy, s->xbusy_s + q));
		ROW(true, EINVAL, vmem_xfree(vm, s->xbusy, s->xbusy_s - q));
		ROW(true, EINVAL, vmem_free(vm, s->xbusy, s->xbusy_s - q));
		/* part of a segment */
		ROW(true, EINVAL, vmem_free(vm, s->busy + q, s->busy_s - q));
		ROW(true, EINVAL, vmem_free(vm, s->busy + q, s->busy_s));
		ROW(q > 1, EINVAL, vmem_free(vm, s->busy + 1, s->busy_s));
		ROW(true, EINVAL, vmem_xfree(vm, s->xbusy + q, q));
		ROW(true, EINVAL, vmem_xfree(vm, s->xbusy + s->xbusy_s - q, q));
		/* freed already, never allocated */
		ROW(!s->freed_cached || chk_cached, EINVAL, vmem_free(vm, s->freed, s->freed_s));
		ROW(!s->freed_cached || chk_cached, EINVAL, vmem_xfree(vm, s->freed, s->freed_s));
		ROW(true, EINVAL, vmem_free(vm, s->freed + q, big));
		/* cached sizes: checked under VMC_DEBUG */
		if (s->qmax != 0 && chk_cached) {
			ROW(true, EINVAL, vmem_free(vm, s->cbusy, 2 * q));
			ROW(true, EINVAL, vmem_free(vm, s->cbusy + q, q));
			ROW(true, EINVAL, vmem_free(vm, s->cbusy, 0));
			ROW(true, EINVAL, vmem_free(vm, s->cxbusy, q));
			/* vmem_free of a vmem_xalloc segment of a cached size */
			ROW(true, EINVAL, vmem_free(vm, s->cxbusy, s->cxbusy_s));
		}
		/* a free segment's start */
		struct seg f;
		if (walk_first(vm, VMEM_FREE, &f)) {
			ROW(chk_cached, EINVAL, vmem_free(vm, f.addr, q));
			ROW(true, EINVAL, vmem_free(vm, f.addr, big));
			ROW(true, EINVAL, vmem_xfree(vm, f.addr, big));
		}
	}
	/* the parent's copy of a child's import is the child's, and only at its size */
	if (s->imp_s != 0) {
		struct state p = parent_state(s), *saved = s;
		s = &p;
		ROW(true, EINVAL, vmem_xfree(s->vm, saved->imp, saved->imp_s + saved->q));
		ROW(true, EINVAL, vmem_xfree(s->vm, saved->imp, saved->imp_s - saved->q));
		ROW(true, EINVAL, vmem_xfree(s->vm, saved->imp + saved->q, saved->imp_s));
		s = saved;
	}

	/* ---- vmem_add ------------------------------------------------------------- */
	ROW(true, EINVAL, vmem_add(NULL, 0x7000000000000000ull, q, 0));
	ROW(true, EINVAL, vmem_add(vm, 0x7000000000000000ull, 0, 0));
	ROW(q > 1, EINVAL, vmem_add(vm, 0x7000000000000000ull + q / 2, q, 0));
	ROW(q > 1, EINVAL, vmem_add(vm, 0x7000000000000000ull, q + q / 2, 0));
	ROW(true, EINVAL, vmem_add(vm, VMEM_ADDR_MAX - q + 1, 2 * q, 0));      /* wraps */
	ROW(true, EINVAL, vmem_add(vm, 2 * q, VMEM_ADDR_MAX & ~(q - 1), 0));    /* wraps by a quantum */
	ROW(q == 1, EINVAL, vmem_add(vm, 2, VMEM_ADDR_MAX, 0));                 /* ends at 2^64 + 1 */
	ROW(true, EINVAL, vmem_add(vm, 0x7000000000000000ull, q, VM_SLEEP | VM_NOSLEEP));
	ROW(true, EINVAL, vmem_add(vm, 0x7000000000000000ull, q, VM_FIRSTFIT | VM_BESTFIT));
	if (s->has_span) {
		vmem_addr_t sa = s->span;
		vmem_size_t ss = s->imp_s ? s->imp_s : s->span_s;
		ROW(true, EINVAL, vmem_add(vm, sa, ss, 0));                 /* the same */
		ROW(true, EINVAL, vmem_add(vm, sa, q, 0));                  /* its first quantum */
		ROW(true, EINVAL, vmem_add(vm, sa + ss - q, q, 0));         /* its last */
		ROW(sa >= q, EINVAL, vmem_add(vm, sa - q, 2 * q, 0));       /* over its start */
		ROW(true, EINVAL, vmem_add(vm, sa + ss - q, 2 * q, 0));     /* over its end */
		ROW(sa >= q, EINVAL, vmem_add(vm, sa - q, ss + 2 * q, 0));  /* around it */
		ROW(true, EINVAL, vmem_add(vm, 0, VMEM_ADDR_MAX & ~(q - 1), 0));      /* around all */
	}

	/* ---- sources ------------------------------------------------------------------ */
	vmem_t *src = s->other ? s->other : s->extra;
	ROW(true, EINVAL, vmem_set_import(NULL, import_from_pool, release_to_pool, src, 0));
	ROW(true, EINVAL, vmem_set_import(vm, NULL, release_to_pool, src, 0));
	ROW(true, EINVAL, vmem_set_source(NULL, src, 0));
	ROW(true, EINVAL, vmem_set_source(vm, NULL, 0));
	ROW(q > 1, EINVAL, vmem_set_import(vm, import_from_pool, release_to_pool, src, q / 2));
	ROW(q > 1, EINVAL, vmem_set_import(vm, import_from_pool, release_to_pool, src, q + 1));
	ROW(q > 1, EINVAL, vmem_set_source(vm, src, q / 2));
	/* a loop: itself, or through its source; once allocated EBUSY may come first */
	ROW2(true, EINVAL, s->allocated ? EBUSY : 0, vmem_set_source(vm, vm, 0));
	if (s->has_source && s->other && !s->imp_s) {
		/* callback child: no loop possible through callbacks */
	} else if (s->has_source && s->other) {
		struct state p = parent_state(s), *saved = s;
		s = &p;
		/* the parent allocated on behalf of the child: EBUSY or EINVAL */
		ROW2(true, EINVAL, EBUSY, vmem_set_source(s->vm, saved->vm, 0));
		s = saved;
	}
	if (s->allocated) {
		ROW(true, EBUSY, vmem_set_import(vm, import_from_pool, release_to_pool, src, 0));
		ROW(s->extra != NULL, EBUSY, vmem_set_source(vm, s->extra, 0));
	}
	ROW(true, EINVAL, vmem_set_limit(NULL, 0));
	ROW(true, EINVAL, vmem_set_reclaim(NULL, NULL, NULL));

	/* ---- looking inside: errors, and answers that mean "no" --------------------- */
	ROW(true, EINVAL, vmem_get_stats(NULL, &g_st));
	ROW(true, EINVAL, vmem_get_stats(vm, NULL));
	ROW(true, EINVAL, short_stats(vm, 0));
	ROW(true, EINVAL, short_stats(vm, 8));
	ROW(true, EINVAL, short_stats(vm, offsetof(vmem_stats_t, qcache_misses)));
	ROW(true, EINVAL, short_stats(vm, offsetof(vmem_stats_t, qcache_misses) + 7));
	walk_noop_calls = 0;
	ROW(true, EINVAL, vmem_walk(NULL, VMEM_ALLOC, walk_noop, NULL));
	ROW(true, EINVAL, vmem_walk(vm, VMEM_ALLOC, NULL, NULL));
	ROW(true, EINVAL, vmem_walk(vm, 0x08, walk_noop, NULL));
	ROW(true, EINVAL, vmem_walk(vm, VMEM_ALLOC | 0x100, walk_noop, NULL));
	ROW(true, EINVAL, vmem_walk(vm, -1, walk_noop, NULL));
	assert_int_equal(walk_noop_calls, 0);
	ROW(true, EINVAL, vmem_dump(NULL, stdout));
	ROW(true, EINVAL, vmem_dump(vm, NULL));
	ROW(true, EINVAL, rc_of_contains(vmem_contains(vm, s->span, 0)));
	ROW(true, EINVAL, rc_of_contains(vmem_contains(vm, VMEM_ADDR_MAX - q + 1, 2 * q)));
	ROW(true, EINVAL, rc_of_contains(vmem_contains(vm, s->outside, q)));
	ROW(true, EINVAL, rc_of_contains(vmem_contains(NULL, s->span, q)));
	ROW(true, EINVAL, vmem_roundup_size(vm, VMEM_ADDR_MAX) == 0 || q == 1 ? EINVAL : 0);
	ROW(q > 1, EINVAL, vmem_roundup_size(vm, VMEM_ADDR_MAX - q + 2) == 0 ? EINVAL : 0);
	ROW(true, EINVAL, vmem_roundup_size(NULL, q) == 0 ? EINVAL : 0);
	ROW(true, EINVAL, vmem_size(NULL, VMEM_ALLOC) == 0 ? EINVAL : 0);
	ROW(true, EINVAL, strcmp(vmem_name(NULL), "") == 0 ? EINVAL : 0);
	ROW(true, EINVAL, (vmem_reap(NULL), vmem_destroy(NULL), EINVAL));
}

/* vmem_create: NULL with EINVAL, nothing mapped. */
static void create_rows(void)
{
	struct {
		vmem_addr_t base;
		vmem_size_t size, q, qmax;
		int flags;
	} t[] = {
		{0, 4096, 0, 0, 0},
		{0, 4096, 3, 0, 0},
		{0, 4096, 24, 0, 0},
		{0, 4096, 4096 + 1, 0, 0},
		{0, 4096, VMEM_ADDR_MAX, 0, 0},
		{0, 4096, (vmem_size_t)(TOP_END / 2 + 1), 0, 0},
		{8, 4096, 16, 0, 0},
		{0, 4100, 16, 0, 0},
		{0, 4096, 16, 64, VM_SLEEP | VM_NOSLEEP},
		{0, 4096, 16, 0, VM_INSTANTFIT},
		{0, 4096, 16, 0, VM_NEXTFIT | VMC_DEBUG},
		{0, 4096, 16, 0, 0x4},
		{0, 4096, 16, 0, VMC_DEBUG | 0x40000},
		{0, 4096, 16, 16, VMC_UNCHECKED | 0x4},
		{0, 4096, 16, 0, -1},
		{VMEM_ADDR_MAX - 15, 32, 16, 0, 0},
		{32, VMEM_ADDR_MAX & ~15ull, 16, 0, 0},
		{2, VMEM_ADDR_MAX, 1, 0, 0},
		{(vmem_addr_t)(TOP_END / 2), (vmem_size_t)(TOP_END / 2 + 4096), 4096, 0, 0},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t mapped = os_mapped_bytes();
		errno = 0;
		vmem_t *vm = vmem_create("bad", t[i].base, t[i].size, t[i].q, t[i].qmax, t[i].flags);
		g_tried++;
		if (vm != NULL || errno != EINVAL)
			fail_msg("vmem_create row %zu: %p, errno %d (want NULL, EINVAL)", i, (void *)vm,
				 errno);
		assert_int_equal(os_mapped_bytes(), mapped);
	}
	/* and the corners that are allowed */
	vmem_destroy(arena_new(NULL, (vmem_addr_t)(TOP_END - 4096), 4096, 4096, 0, VM_SLEEP | VMC_DEBUG));
	vmem_destroy(arena_new("", 1, VMEM_ADDR_MAX, 1, VMEM_ADDR_MAX, VM_NOSLEEP));
	vmem_destroy(arena_new("unchecked", 0, 4096, 16, 64, VMC_UNCHECKED | VMC_DEBUG));
}

/* ---- regressions found by the fuzzers (fuzz/regressions/) and the long
 * runs of the reliability script; each reproduces one library bug ---------- */

/* An import callback that hands its flags on to vmem_alloc (as illumos
 * callbacks do) must only ever see flags vmem_alloc accepts.  fuzz_import
 * found the quantum caches' fallback passing an internal bit (0x40000000):
 * the callback's vmem_alloc said EINVAL and the allocation failed although
 * the pool had room. */
static int fwd_import(void *arg, vmem_size_t n, int vmflags, vmem_addr_t *a)
{
	int *bad = (int *)((void **)arg)[1];
	if ((vmflags & ~(VM_SLEEP | VM_NOSLEEP)) != 0)
		*bad = vmflags;
	return vmem_alloc(((void **)arg)[0], n, vmflags, a);
}

static void fwd_release(void *arg, vmem_addr_t a, vmem_size_t n)
{
	if (vmem_free(((void **)arg)[0], a, n) != 0)
		abort();
}

TEST(test_regress_callback_flags)
{
	int bad = 0;
	vmem_t *pool = arena_new("pool", 0, 0x800, 0x100, 0, 0);
	vmem_t *vm = arena_new("child", 0, 0, 0x400, 0x2400, 0);
	void *arg[2] = {pool, &bad};
	assert_int_equal(vmem_set_import(vm, fwd_import, fwd_release, arg, 0), 0);
	vmem_addr_t a[2];
	/* a cached size whose slab cannot be imported, then one more */
	for (int i = 0; i < 2; i++) {
		int rc = vmem_alloc(vm, 0x400, i ? VM_NOSLEEP : 0, &a[i]);
		if (bad != 0)
			fail_msg("the import callback got flags %#x", bad);
		assert_int_equal(rc, 0);
	}
	free_each(vm, a, 2, 0x400, 1, 0, 1);
	vmem_reap(vm);
	CHECK_ARENA(pool);
	CHECK_AND_DESTROY(vm);
	expect_empty(pool);
	vmem_destroy(pool);
}

/* A child whose import limit is held by idle quantum-cache slabs: the
 * arena reaps its caches (the slabs go back to the source), and must then
 * import and succeed, not return ENOMEM (found by fuzz_import). */
TEST(test_regress_reap_then_import)
{
	vmem_t *p = arena_new("parent", 0x10000, 0x10000, 1, 0, 0);
	vmem_t *c = arena_child("child", p, 1, 16, 0);
	vmem_addr_t a, b;
	assert_int_equal(vmem_alloc(c, 8, VM_NOSLEEP, &a), 0); /* cached: a slab comes in */
	assert_int_equal(vmem_free(c, a, 8), 0);               /* and sits idle */
	assert_int_equal(vmem_set_limit(c, 100), 0);
	vmem_stats_t st = stats_of(c);
	/* whatever the caches hold, one import of 2 units fits once they are reaped */
	int rc = vmem_alloc(c, 2, VM_NEXTFIT | VM_NOSLEEP, &b);
	if (rc != 0)
		fail_msg("vmem_alloc(2, VM_NEXTFIT) = %d with %" PRIu64 " units imported for the "
			 "caches (limit 100): they must be reaped and the import retried",
			 rc, st.import_total);
	assert_int_equal(vmem_free(c, b, 2), 0);
	vmem_reap(c);
	CHECK_AND_DESTROY(c);
	CHECK_ARENA(p);
	assert_int_equal(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(p);
}

/* A constrained request a source can meet, through a child whose import
 * quantum is bigger than the request: the child asked the source for a
 * span of the import quantum with the request's phase and nocross for the
 * whole span, which no block can hold, and failed (found by test_faults at
 * VMEM_TEST_SCALE=10).  The source has room for 240 units at 16 mod 64 in
 * one 256-unit block. */
TEST(test_regress_import_nocross)
{
	vmem_t *p = arena_new("parent", 0x100000, 1 << 28, 16, 0, 0);
	vmem_t *c = arena_child("child", p, 16, 0, 256);
	vmem_addr_t a;
	assert_int_equal(vmem_xalloc(p, 0xf0, 0x40, 0x10, 0x100, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_xfree(p, a, 0xf0), 0);
	static const int pol[] = {0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};
	for (int i = 0; i < 4; i++) {
		int rc = vmem_xalloc(c, 0xf0, 0x40, 0x10, 0x100, 0, VMEM_ADDR_MAX, pol[i] | VM_NOSLEEP, &a);
		if (rc != 0)
			fail_msg("policy %#x: the child returned %d; its source can meet the request",
				 pol[i], rc);
		assert_int_equal(a % 0x40, 0x10);
		assert_int_equal(a / 0x100, (a + 0xef) / 0x100);
		CHECK_ARENA(c);
		assert_int_equal(vmem_xfree(c, a, 0xf0), 0);
	}
	CHECK_AND_DESTROY(c);
	CHECK_AND_DESTROY(p);
}

/* A child whose import quantum is bigger than anything its source has
 * left: a request the source can meet must still be met ("whenever the
 * source can meet it"; the import quantum is a preference), as it is for
 * nocross requests above (found by fuzz_import). */
TEST(test_regress_import_quantum_fallback)
{
	vmem_t *p = arena_new("parent", 0, 0x400, 8, 0, 0);
	vmem_t *c = arena_child("child", p, 0x100, 0, 0x1000);
	vmem_addr_t a[4];
	static const int pol[] = {0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};
	for (int i = 0; i < 4; i++) {
		int rc = vmem_alloc(c, 0x100, pol[i] | VM_NOSLEEP, &a[i]);
		if (rc != 0)
			fail_msg("allocation %d (policy %#x) returned %d; the parent had %#" PRIx64
				 " units free",
				 i, pol[i], rc, vmem_size(p, VMEM_FREE));
		CHECK_ARENA(c);
	}
	vmem_addr_t x;
	assert_int_equal(vmem_alloc(c, 0x100, VM_NOSLEEP, &x), ENOMEM); /* now it is full */
	free_each(c, a, 4, 0x100, 1, 0, 1);
	CHECK_ARENA(c);
	assert_int_equal(vmem_size(c, VMEM_ALLOC | VMEM_FREE), 0); /* all went back */
	vmem_destroy(c);
	CHECK_AND_DESTROY(p);
}

/* A request so close to 2^64 that rounding it up to the import quantum
 * overflows: the import must fall back to the request itself rather than
 * give up, because the source can still meet it (found by fuzz_import). */
TEST(test_regress_import_near_top)
{
	vmem_t *p = arena_new("parent", 8, VMEM_ADDR_MAX - 7, 8, 0, 0); /* [8, 2^64) */
	vmem_t *c = arena_child("child", p, 0x1000, 0, 0x10000);
	const vmem_size_t want = 0xffffffffffff81ffULL; /* the child rounds it to 4 KiB */
	static const int pol[] = {0, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT};
	for (int i = 0; i < 4; i++) {
		vmem_addr_t a = 0;
		int rc = vmem_alloc(c, want, pol[i] | VM_NOSLEEP, &a);
		if (rc != 0)
			fail_msg("policy %#x: vmem_alloc returned %d", pol[i], rc);
		assert_int_equal(a & 0xfff, 0);
		assert_true(a - 1 <= VMEM_ADDR_MAX - want); /* ends at or below 2^64 */
		CHECK_ARENA(c);
		CHECK_ARENA(p);
		assert_int_equal(vmem_free(c, a, want), 0);
		assert_int_equal(vmem_size(c, VMEM_ALLOC | VMEM_FREE), 0); /* span went back */
		assert_int_equal(vmem_size(p, VMEM_ALLOC), 0);
	}
	vmem_destroy(c);
	CHECK_AND_DESTROY(p);
}

/* ---- the table, in every state ----------------------------------------------------- */

TEST(test_bad_input)
{
	uint64_t rng = test_seed(0xbad);
	/* everything the library writes to stderr while bad input runs */
	struct redirect log;
	redirect_begin(&log, 2);

	create_rows();
	long written[S_NSTATES];
	for (int k = 0; k < S_NSTATES; k++) {
		struct state s;
		state_make(&s, k, &rng);
		long before_rows = redirect_bytes(&log);
		uint64_t n0 = g_tried;
		run_rows(&s);
		written[k] = redirect_bytes(&log) - before_rows;
		print_message("# state \"%s\": %" PRIu64 " bad inputs\n", s.name, g_tried - n0);
		/* the arena still works */
		vmem_addr_t a;
		if (k != S_EMPTY) {
			assert_int_equal(vmem_alloc(s.vm, s.q, VM_NOSLEEP, &a), 0);
			assert_int_equal(vmem_free(s.vm, a, s.q), 0);
		}
		CHECK_ARENA(s.vm);
		state_free(&s); /* the debug arena's leak report goes to the log */
	}
	redirect_end(&log);

	bool env_debug = os_debug_env();
	for (int k = 0; k < S_NSTATES; k++) {
		if (k == S_DEBUG) {
			if (written[k] == 0)
				fail_msg("the VMC_DEBUG arena reported none of its bad frees");
		} else if (!env_debug && written[k] != 0) {
			fail_msg("state %d wrote %ld bytes to stderr without VMC_DEBUG", k, written[k]);
		}
	}
	printf("# figure: bad inputs tried %" PRIu64 "\n", g_tried);
	fflush(stdout);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_regress_callback_flags),
		cmocka_unit_test(test_regress_reap_then_import),
		cmocka_unit_test(test_regress_import_nocross),
		cmocka_unit_test(test_regress_import_quantum_fallback),
		cmocka_unit_test(test_regress_import_near_top),
	};
	return cmocka_run_group_tests_name("badinput", tests, NULL, NULL);
}
