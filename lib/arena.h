/*
 * arena.h - what the arena offers the layers above it: the front door
 * (vmem.c) and the quantum caches (qcache.c).  struct arena is opaque
 * here: a layer that includes only this header cannot touch tags, the hash
 * or the arena's lock, and does not need to.  The arena layer's own files
 * include arena_impl.h.
 *
 * Every function takes and releases the arena's lock itself; none is
 * called with it held, and none calls back up except through the two
 * hooks the front door installs (arena_set_caches): the caches' reap, and
 * the free gate the front door reads.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_ARENA_H
#define VMEM_ARENA_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmem.h"

struct arena;

#define VM_SLEEPFLAGS (VM_SLEEP | VM_NOSLEEP)
#define VM_POLICIES (VM_INSTANTFIT | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT)
#define VM_ALLOCFLAGS (VM_SLEEPFLAGS | VM_POLICIES)

static inline bool vmem_is_pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* 0 when flags has no bit outside allowed, at most one sleep flag and at
 * most one policy; else EINVAL. */
static inline int arena_flags_check(int flags, int allowed)
{
	unsigned int f = (unsigned int)flags;
	/* Once no flag outside allowed is set (allowed lies within
	 * VM_ALLOCFLAGS), f is s | n << 8: s the sleep bits (0 to 3), n the
	 * policy bits (0 to 15).  (f >> 8 | f << 4) & 63 is then n + 16 s,
	 * and bit n + 16 s of ok says whether s has at most one sleep flag
	 * and n at most one policy: 0x0117 has bits 0, 1, 2, 4 and 8 (no
	 * policy or one), in the rows s = 0, 1, 2 but not 3 (both sleep
	 * flags).  Two tests where the plain expression takes a dozen steps
	 * on every allocation past the caches. */
	_Static_assert(VM_SLEEP == 1 && VM_NOSLEEP == 2, "the sleep flags are bits 0 and 1");
	_Static_assert(VM_POLICIES == 0xf00, "the policies are bits 8 to 11");
	const uint64_t ok = 0x0117ull | 0x0117ull << 16 | 0x0117ull << 32;
	unsigned int idx = (f >> 8 | f << 4) & 63;
	if ((f & ~(unsigned int)allowed) != 0 || ((ok >> idx) & 1) == 0)
		return EINVAL;
	return 0;
}

/* ---- life cycle ---------------------------------------------------------- */

/* Set up ar (zeroed memory) for vmem_create's arguments, already checked;
 * self is the handle passed to reclaim callbacks, debug an OS_DEBUG_*
 * mode.  0 or ENOMEM (then arena_fini undoes what was done). */
int arena_init(struct arena *ar, vmem_t *self, const char *name, vmem_addr_t base,
	       vmem_size_t size, vmem_size_t quantum, int debug);
/* Give imported spans back, unmap everything. */
void arena_fini(struct arena *ar);
const char *arena_name(const struct arena *ar);
vmem_size_t arena_quantum(const struct arena *ar);
/* size rounded up to the quantum; 0 if that would pass 2^64 */
vmem_size_t arena_round(const struct arena *ar, vmem_size_t size);

/* The caches' hooks, installed once by the front door before any call.
 * small_max: sizes up to it are the caches'; while the arena holds none of
 * its own segments of such sizes, arena_free_gate(ar) reads gate_open,
 * else 0.  reap: before an allocation sleeps or fails, the arena calls it
 * (its lock not held) to bring back what the caches hold; true if that
 * freed anything. */
typedef bool arena_reap_fn(void *arg);
void arena_set_caches(struct arena *ar, vmem_size_t small_max, vmem_size_t gate_open,
		      arena_reap_fn *reap, void *reap_arg);

/* The arena holds segments of its own of sizes up to small_max: a free of
 * such a size may be the arena's rather than a cache's.  Read without the
 * lock, for a decision the free path makes again under it. */
bool arena_holds_small(const struct arena *ar);

/* ---- allocation and free, for the front door ----------------------------- */

/* vmem_alloc of a size the caches do not serve, flags and size checked,
 * size rounded. */
int arena_alloc(struct arena *ar, vmem_size_t size, int flags, vmem_addr_t *addrp);
/* vmem_xalloc: checks every argument itself. */
int arena_xalloc(struct arena *ar, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
		 vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr, int flags,
		 vmem_addr_t *addrp);
/* vmem_free of an arena segment, size rounded: 0 or EINVAL.  With cached
 * set (a size the caches serve), a vmem_xalloc segment is EINVAL under
 * debug (it should have been given back by vmem_xfree). */
int arena_free(struct arena *ar, vmem_addr_t addr, vmem_size_t size, bool cached);
int arena_xfree(struct arena *ar, vmem_addr_t addr, vmem_size_t size);
int arena_add(struct arena *ar, vmem_addr_t addr, vmem_size_t size, int flags);
/* Wake every thread asleep in the arena. */
void arena_wake(struct arena *ar);

/* ---- slabs, for the caches ------------------------------------------------ */

/* A slab: size units aligned to align, as an allocated segment that is no
 * caller's allocation.  Never sleeps; 0 or ENOMEM. */
int arena_slab_alloc(struct arena *ar, vmem_size_t size, vmem_size_t align, vmem_addr_t *addrp);
/* The slab at base carries cookie (its cache's record, not 0) until freed. */
void arena_slab_set_cookie(struct arena *ar, vmem_addr_t base, uintptr_t cookie);
void arena_slab_free(struct arena *ar, vmem_addr_t addr);
/* The cookie of each object's slab: the slab of size slabsize starting at
 * obj[k] & ~(slabalign - 1), or 0 where there is none. */
void arena_slab_cookies(struct arena *ar, vmem_size_t slabsize, vmem_size_t slabalign,
			const vmem_addr_t *obj, uint32_t n, uintptr_t *cookies);
/* A free of a cached size while the gate is closed: if [addr, addr + size)
 * is the arena's own segment, free it (0); if addr lies in a slab of
 * slabsize, leave it to the caches (ARENA_SLAB_OBJECT); else EINVAL. */
#define ARENA_SLAB_OBJECT (-1)
int arena_free_small(struct arena *ar, vmem_addr_t addr, vmem_size_t size,
		     vmem_size_t slabsize, vmem_size_t slabalign);
/* One object of a cached size straight from the arena, when no slab can
 * be had: an arena allocation (freed by the arena path) whose failure the
 * caller counts.  0 or ENOMEM. */
int arena_small_alloc(struct arena *ar, vmem_size_t size, vmem_addr_t *addrp);
/* A cached allocation failed with ENOMEM: count it. */
void arena_count_fail(struct arena *ar);
/* A cached VM_SLEEP allocation waits: until a wake-up or ms milliseconds. */
void arena_sleep(struct arena *ar, unsigned int ms);

/* ---- debug reports --------------------------------------------------------- */

/* Under debug, report on stderr that fn(addr, size) was a misuse, and why;
 * with VMEM_DEBUG=abort, then abort.  Quiet otherwise. */
void arena_misuse(const struct arena *ar, const char *fn, vmem_addr_t addr, vmem_size_t size,
		  const char *why);
/* What lies at addr, for a report: outside every span, in a free segment,
 * in an allocated segment or in a cache's slab ([*startp, + *sizep)). */
enum arena_where { ARENA_OUTSIDE, ARENA_IN_FREE, ARENA_IN_ALLOC, ARENA_IN_SLAB };
enum arena_where arena_whereis(struct arena *ar, vmem_addr_t addr, vmem_addr_t *startp,
			       vmem_size_t *sizep);
/* At destroy, under debug: name each outstanding allocation that is not a
 * slab on stderr, up to *shown < VMEM_LEAKS_SHOWN lines in all; add them
 * to *n and their units to *units. */
#define VMEM_LEAKS_SHOWN 16
void arena_report_leaks(struct arena *ar, unsigned int *shown, uint64_t *n, vmem_size_t *units);

/* ---- sources --------------------------------------------------------------- */

/* vmem_set_import (src NULL) and vmem_set_source (src_ar the source's
 * arena, src its handle): EINVAL or EBUSY as the contract says. */
int arena_set_import(struct arena *ar, vmem_t *src, struct arena *src_ar,
		     vmem_import_fn *importfn, vmem_release_fn *releasefn, void *arg,
		     vmem_size_t import_quantum);
void arena_set_limit(struct arena *ar, vmem_size_t limit);
void arena_set_reclaim(struct arena *ar, vmem_reclaim_fn *fn, void *arg);

/* ---- looking inside (introspect.c) ------------------------------------------ */

vmem_size_t arena_size(struct arena *ar, int typemask);
int arena_contains(struct arena *ar, vmem_addr_t addr, vmem_size_t size);
int arena_walk(struct arena *ar, int typemask, vmem_walk_fn *fn, void *arg);
/* The arena's figures into *st (every field; the caches add theirs). */
void arena_stats(struct arena *ar, vmem_stats_t *st);
/* Tags, hash, freelists and segments, after the header vmem_dump prints. */
void arena_dump(struct arena *ar, FILE *fp);

/* ---- fork ------------------------------------------------------------------- */

void arena_fork_prepare(struct arena *ar); /* takes the lock */
void arena_fork_parent(struct arena *ar);  /* releases it */
void arena_fork_child(struct arena *ar);   /* the only thread left: a fresh lock */

#endif /* VMEM_ARENA_H */
