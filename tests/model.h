/*
 * model.h - what a correct arena shows and answers, for the cmocka suites
 * and the fuzzer alike (it needs no cmocka).
 *
 *  - 128-bit arithmetic and the two tops of the 64-bit space;
 *  - the policies, by name;
 *  - the arena as it shows itself: its vmem_walk as a list of segments,
 *    its statistics, its invariant checker's verdict;
 *  - the fit oracle: the lowest address of a free run that meets a
 *    request, in 128 bits so that nothing wraps;
 *  - the reference model of one arena: its spans and its allocations,
 *    from which the free runs, the exact vmem_walk and the statistics
 *    follow.  model_verify() compares the arena with it.
 *
 * A failed check goes to model_failure(), which the test or the fuzzer
 * sets; unset, the message goes to stderr and the process aborts.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_TEST_MODEL_H
#define VMEM_TEST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmem.h"

typedef unsigned __int128 u128;

/* The top of the space, two ways: its last unit, which an arena can hand
 * out, and its end, one past that, which only 128 bits can hold.  A span
 * [a, a + s) may end exactly at TOP_END. */
#define TOP_LAST VMEM_ADDR_MAX
#define TOP_END ((u128)1 << 64)

/* ---- policies ------------------------------------------------------------ */

#define POLICY_MASK (VM_INSTANTFIT | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT)
#define NPOLICIES 5
/* Every policy, the default (0) first. */
extern const int policies[NPOLICIES];
const char *policy_name(int flags);

/* ---- the arena as it shows itself -------------------------------------------- */

struct seg {
	vmem_addr_t addr;
	vmem_size_t size;
	int type; /* VMEM_ALLOC, VMEM_FREE or VMEM_SPAN */
};

/* A growable list of segments, in the order vmem_walk gives them. */
struct seglist {
	struct seg *v;
	size_t n, cap;
};

void seglist_grow(struct seglist *l);
static inline void seglist_push(struct seglist *l, vmem_addr_t addr, vmem_size_t size, int type)
{
	if (l->n == l->cap)
		seglist_grow(l);
	l->v[l->n++] = (struct seg){addr, size, type};
}
/* The arena's vmem_walk(mask) into l, replacing what l held; vmem_walk's
 * return value. */
int seglist_walk(vmem_t *vm, int mask, struct seglist *l);
/* The entry that wholly holds [a, a + s), or -1. */
long seglist_find(const struct seglist *l, vmem_addr_t a, vmem_size_t s);
void seglist_free(struct seglist *l);

/* The whole vmem_get_stats; its return value. */
int stats_read(vmem_t *vm, vmem_stats_t *st);

/* vmem_check: true when every invariant holds; else false, and msg says
 * which one broke, named as the Theory Statements name it (I1..I12 for
 * the arena, Q1.. for the caches). */
bool arena_check(vmem_t *vm, char *msg, size_t len);
/* The name of invariant number inv as vmem_check returns it: "I3", "Q2"
 * ("none" for 0). */
const char *invariant_name(int inv, char *buf, size_t len);

/* ---- the fit oracle --------------------------------------------------------- */

/* A request as the oracle sees it: size rounded to the quantum, align the
 * effective one (at least the quantum, never 0), min and max inclusive. */
struct fitq {
	vmem_size_t size, align, phase, nocross;
	vmem_addr_t min, max;
};

/* a meets every constraint of r, and [a, a + r->size) does not wrap. */
bool fitq_holds(const struct fitq *r, vmem_addr_t a);
/* The lowest a >= lb in [start, start + size) that meets r. */
bool fit_lowest_in(vmem_addr_t start, vmem_size_t size, const struct fitq *r, u128 lb,
		   vmem_addr_t *ap);
/* The lowest a >= lb in any of the free runs (a list in address order);
 * *runp, when not NULL, gets the run's index. */
bool fit_lowest(const struct seglist *runs, const struct fitq *r, u128 lb, vmem_addr_t *ap,
		size_t *runp);
/* The size of the smallest run that can hold r (VMEM_ADDR_MAX if none):
 * what VM_BESTFIT must choose. */
vmem_size_t fit_best_size(const struct seglist *runs, const struct fitq *r);

/* s rounded up to the quantum q; false when that passes 2^64 - 1. */
bool round_to_quantum(vmem_size_t s, vmem_size_t q, vmem_size_t *out);
/* qcache_max as vmem_create clamps it: rounded to the quantum, at most
 * VMEM_QCACHE_MAX quanta. */
vmem_size_t qcache_max_clamped(vmem_size_t q, vmem_size_t qmax);

/* ---- the reference model of an arena ------------------------------------------- */

enum model_kind {
	MA_ALLOC = 1, /* from vmem_alloc */
	MA_XALLOC,    /* from vmem_xalloc */
	MA_IMPORT,    /* a span a child imported: the child's, not ours to free */
};

struct model_span {
	vmem_addr_t start;
	vmem_size_t size;
	bool imported;
};

struct model_alloc {
	vmem_addr_t addr;
	vmem_size_t size;  /* rounded to the quantum */
	vmem_size_t asked; /* as passed to the allocator */
	int kind;          /* enum model_kind */
};

#define MODEL_RECENT 16

struct model {
	const char *name;
	vmem_t *vm;
	vmem_size_t q;
	vmem_size_t qmax; /* as clamped; with caches, slabs hide the exact walk */
	bool debug;       /* VMC_DEBUG: misuse is reported on stderr */
	bool unchecked;   /* VMC_UNCHECKED: bad frees of cached sizes are not caught */
	bool fails_loose; /* stats.fails may grow by itself (a source: its child's failed imports) */
	struct model_span *sp; /* by address */
	size_t nsp, capsp;
	struct model_alloc *al; /* by address */
	size_t nal, capal;
	/* what the statistics must count */
	uint64_t allocs, frees, fails, imports, releases;
	uint64_t qc_ok, qc_fail; /* vmem_alloc calls the caches served, or failed */
	/* VM_NEXTFIT: where the next search starts, when known */
	bool cursor_known;
	vmem_addr_t cursor;
	vmem_size_t limit;
	/* the last frees, for double frees: recent[i % recent_cap] */
	struct model_alloc recent[MODEL_RECENT];
	unsigned int nrecent, recent_cap;
	/* derived by model_expect() */
	struct seglist expect; /* the exact vmem_walk(ALLOC | FREE | SPAN) */
	struct seglist runs;   /* the free runs */
	vmem_size_t span_total, alloc_total, import_total;
	uint64_t nimported;
	/* the arena's own walk, as model_read_walk() last read it */
	struct seglist walk;
};

/* Empty the model for a new arena; the buffers are kept (m must be zeroed
 * or have been used before).  qmax 0, not debug, recent_cap MODEL_RECENT. */
void model_reset(struct model *m, const char *name, vmem_t *vm, vmem_size_t q);
void model_fini(struct model *m);

/* Spans. */
long model_span_of(const struct model *m, vmem_addr_t a, vmem_size_t s);
bool model_overlaps_span(const struct model *m, vmem_addr_t a, vmem_size_t s);
/* An allocation starts inside s. */
bool model_span_busy(const struct model *m, const struct model_span *s);
void model_add_span(struct model *m, vmem_addr_t start, vmem_size_t size, bool imported);
void model_remove_span(struct model *m, size_t i);

/* Allocations.  Insertion fails the check when [a, a + s) is not inside one
 * span or overlaps another allocation: a unit handed out twice. */
long model_find_alloc(const struct model *m, vmem_addr_t a);
void model_insert_alloc(struct model *m, vmem_addr_t a, vmem_size_t s, vmem_size_t asked,
			int kind);
void model_remove_alloc(struct model *m, size_t i);
/* Remember a free for double frees; how many are remembered. */
void model_note_freed(struct model *m, const struct model_alloc *a);
unsigned int model_nrecent(const struct model *m);

/* Derive the expected walk, the free runs and the totals. */
void model_expect(struct model *m);
/* Read the arena's walk into m->walk (every segment of a known type). */
void model_read_walk(struct model *m);
/* The walk w is exactly the model's (after model_expect); else why. */
bool model_walk_exact(const struct model *m, const struct seglist *w, char *why, size_t len);
/* With quantum caches: the spans exact, the segments tiling them, every
 * allocation inside an allocated segment. */
void model_walk_loose(const struct model *m, const struct seglist *w);
/* The whole check: the invariants, the walk (exact, or loose with
 * caches), the statistics and vmem_size against the model. */
void model_verify(struct model *m);

void model_print(const struct model *m, FILE *f);

/* ---- failures ---------------------------------------------------------------------- */

/* Called with the model concerned (or NULL) and "file:line: message".
 * If it returns, the process aborts. */
extern void (*model_failure)(const struct model *m, const char *msg);
void model_fail_at(const struct model *m, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));
#define MODEL_FAIL(m, ...) model_fail_at((m), __FILE__, __LINE__, __VA_ARGS__)

#endif /* VMEM_TEST_MODEL_H */
