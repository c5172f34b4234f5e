/*
 * qcache.h - the quantum caches' interface (qcache.c explains them).  The
 * structures are here rather than in qcache.c because the front door
 * inlines a cache hit (rseq.h) and the checker verifies Q1..Q7: both need
 * the layout.  The caches sit on the arena and reach it only through
 * arena.h; the front door is the only layer above them.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_QCACHE_H
#define VMEM_QCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "os.h"
#include "qstate.h"

#define QCACHE_SLAB_OBJS 64u /* a slab's free map is one word */
#define QC_MAG_MIN 8u
#define QC_MAG_MAX 64u
#define QC_MAX_CPUS 64u

/* A magazine: a stack of free objects, and beside each (where frees are
 * checked) where its state byte is, which the free that pushed it found,
 * so that the allocation that pops it need not look for it again. */
struct qc_mag {
	struct qc_mag *next;
	uint32_t rounds;
	vmem_addr_t obj[QC_MAG_MAX];
	uint8_t *state[QC_MAG_MAX];
};

/* A slab's record: which of its objects are free in it.  The arena keeps
 * its address as the slab segment's cookie. */
struct qc_slab {
	vmem_addr_t base;
	uint64_t freemap; /* bit i: object i is in the slab, free */
	struct qc_slab *next, *prev; /* partial list: slabs with free objects */
	uint32_t nfree;
};

/* One CPU's slot of one cache: its loaded and previous magazines. */
struct qc_cpu {
	atomic_int lock;
	uint32_t cap; /* rounds the loaded magazine may hold */
	struct qc_mag *loaded, *prev;
	uint64_t bias, pops, pushes; /* rounds = bias + pushes - pops: a commit is one store */
} __attribute__((aligned(64)));
#define QC_CPU_SHIFT 6 /* the rseq sequences index slots by shifting */
_Static_assert(sizeof(struct qc_cpu) == 1u << QC_CPU_SHIFT, "struct qc_cpu is one line");

/* One cache: objects of one size. */
struct qcache {
	pthread_mutex_t lock; /* depot and slabs */
	vmem_size_t objsize, slabsize, slabalign;
	uint32_t magsize;
	uint32_t waits;
	struct qc_mag *full, *empty, *magpool;
	uint64_t nfull, nempty, nmags;
	struct qc_slab *partial, *slabpool;
	uint64_t nslabs;
	uint64_t allocs, frees, misses; /* calls served below the CPU layer */
	void *chunks; /* mapped chunks, chained through their first word */
	size_t chunk_bytes;
	struct qc_cpu cpu[];
};

/* An arena's caches: one per multiple of the quantum up to max. */
struct qcaches {
	/* read by every cached vmem_alloc and vmem_free */
	vmem_size_t alloc_max; /* the common path serves size - 1 < alloc_max: max, or 0
				  where it may not run (no rseq, VMC_DEBUG) */
	ptrdiff_t rseq_off;    /* __rseq_offset, read here rather than through the GOT */
	unsigned int ncpu, qshift;
	bool checked; /* frees of cached sizes are checked (not VMC_UNCHECKED) */
	struct qcache *tab[VMEM_QCACHE_MAX]; /* by (size - 1) >> qshift */
	struct qstate state; /* with checked: every object's state (qstate.h) */

	struct arena *ar;
	vmem_size_t max; /* qcache_max, rounded and clamped */
	void *map;       /* the caches, stride bytes apart */
	size_t stride, bytes;
	unsigned int n;
	bool rseq; /* the CPU layer runs as rseq sequences (os.c) */
	int debug; /* OS_DEBUG_*: the common path does not run; misuse is reported */
};

static inline struct qcache *qcache_of(const struct qcaches *qs, vmem_size_t size)
{
	return qs->tab[(size - 1) >> qs->qshift]; /* size need not be rounded */
}

/* The largest cached size, at most max (a multiple of quantum), whose
 * slab's size and alignment fit in 64 bits; 0: none. */
vmem_size_t qcache_fit_max(vmem_size_t max, vmem_size_t quantum);
/* Set up qs for arena ar, max from qcache_fit_max, debug an OS_DEBUG_*
 * mode (0 or ENOMEM; qcache_fini undoes). */
int qcache_init(struct qcaches *qs, struct arena *ar, vmem_size_t max, vmem_size_t quantum,
		int debug, bool checked);
void qcache_fini(struct qcaches *qs);
/* A cached size, rounded, any flags: the caches' every path. */
int qcache_alloc(struct qcaches *qs, vmem_size_t size, int flags, vmem_addr_t *addrp);
/* What the inline hit could not do: the CPU slot locked, the depot, slabs,
 * the arena. */
int qcache_alloc_miss(struct qcaches *qs, struct qcache *c, int flags, vmem_addr_t *addrp);
/* A free of a cached size that can only be a cache object (the gate is
 * open), or, with qcache_free_shared, that may be the arena's own segment:
 * checked (unless VMC_UNCHECKED), then into a magazine.  0 or EINVAL. */
int qcache_free(struct qcaches *qs, vmem_addr_t addr, vmem_size_t size);
int qcache_free_shared(struct qcaches *qs, vmem_addr_t addr, vmem_size_t size);
/* The inline free checked the object (its state byte at st) but could not
 * push it: the slot locked, magazines exchanged with the depot.  Returns 0. */
int qcache_push_miss(struct qcaches *qs, struct qcache *c, vmem_addr_t addr, uint8_t *st);
/* At destroy, after a reap, under debug: name the objects callers still
 * hold, as arena_report_leaks does for the arena's segments. */
void qcache_report_leaks(struct qcaches *qs, unsigned int *shown, uint64_t *n,
			 vmem_size_t *units);
/* Everything cached goes back to the arena; true if a slab was freed.
 * Takes every lock of the caches: call with none held.  Its argument is
 * the struct qcaches, so that the arena can call it as its reap hook. */
bool qcache_reap(void *qs);
void qcache_lock_all(struct qcaches *qs);
void qcache_unlock_all(struct qcaches *qs);
void qcache_child(struct qcaches *qs); /* after fork: unlock, and rseq or not anew */
void qcache_stats(struct qcaches *qs, vmem_stats_t *st); /* adds the caches' figures */
void qcache_dump(struct qcaches *qs, FILE *fp);
size_t qcache_bytes(const struct qcaches *qs);

/* One cache's contents (size: a cached size), for vmem_dump and tests.  In
 * a quiet arena, objects are conserved (Q1): nslabs * QCACHE_SLAB_OBJS
 * equals slab_free + cpu_rounds + depot_rounds + the objects callers hold. */
struct qcache_info {
	vmem_size_t objsize, slabsize, slabalign;
	uint32_t magsize;
	uint64_t cpu_rounds; /* objects in the CPUs' magazines */
	uint64_t nfull, nempty, depot_rounds;
	uint64_t nslabs, npartial, slab_free;
	uint64_t allocs, frees, hits, misses;
	vmem_size_t cached; /* units in slabs that no caller holds */
};
int qcache_info(struct qcaches *qs, vmem_size_t size, struct qcache_info *qi); /* 0 or EINVAL */
void qcache_depot_hold(struct qcaches *qs, vmem_size_t size, bool hold); /* test seam */

#endif /* VMEM_QCACHE_H */
