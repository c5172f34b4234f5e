/*
 * vmem.h - libvmem, the vmem resource allocator of Bonwick and Adams
 * (USENIX 2001) as a Linux userspace library.
 *
 * An arena hands out ranges of 64-bit integers: IDs, PIDs, block numbers,
 * address ranges.  The managed range need not be memory: libvmem never
 * touches the resources it hands out.
 *
 * Error convention (one for the whole library): every function returning
 * int returns 0 on success or a positive errno value (EINVAL, ENOMEM,
 * EBUSY), never -1.  vmem_create returns NULL and sets errno.  A call that
 * fails leaves the arena as it was; only ENOMEM bumps the "fails" counter.
 * Argument errors (EINVAL) are checked before state errors (EBUSY).
 *
 * Every free is checked: one that is not exactly one outstanding
 * allocation of this arena (never allocated, freed twice, wrong size,
 * inside another allocation, another arena's, outside every span) returns
 * EINVAL and changes nothing, for sizes served by the quantum caches too,
 * unless the arena was created with VMC_UNCHECKED.
 *
 * No function prints, aborts or exits because of its arguments; only arenas
 * created with VMC_DEBUG (or every arena when VMEM_DEBUG=1 is in the
 * environment) report misuse, naming the mistake, and leaks on stderr, and
 * only VMEM_DEBUG=abort (the caller's own request) makes the first misuse
 * abort, so that the core dump shows the caller.
 *
 * Thread safety: every function may be called from any thread; each arena
 * has its own lock.  vmem_destroy must not overlap other calls on its arena.
 * A child of fork() may go on using every arena.  No function is
 * async-signal-safe: do not call them from a signal handler.
 *
 * To reserve one particular ID or address, ask vmem_xalloc for it with
 * minaddr == maxaddr (for a range, maxaddr = minaddr + size - 1): it
 * returns it, or ENOMEM if it is taken.
 *
 * Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_H
#define VMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMEM_VERSION_MAJOR 1
#define VMEM_VERSION_MINOR 0 /* grows when symbols are added */
#define VMEM_VERSION_PATCH 0

typedef struct vmem vmem_t;   /* opaque */
typedef uint64_t vmem_addr_t; /* a resource: address, ID, block number... */
typedef uint64_t vmem_size_t; /* a count of resource units */

#define VMEM_ADDR_MIN ((vmem_addr_t)0)
#define VMEM_ADDR_MAX (~(vmem_addr_t)0)
#define VMEM_NAMELEN 32    /* names are truncated to VMEM_NAMELEN-1 */
#define VMEM_QCACHE_MAX 16 /* quantum caches cover sizes up to this many quanta */

/* Allocation flags (vmem_alloc, vmem_xalloc, vmem_add, import callbacks). */
#define VM_SLEEP 0x00000001      /* wait until the request can be met */
#define VM_NOSLEEP 0x00000002    /* fail at once with ENOMEM (the default) */
#define VM_INSTANTFIT 0x00000100 /* default: O(1), first segment of a freelist that surely fits */
#define VM_BESTFIT 0x00000200    /* smallest free segment that fits */
#define VM_FIRSTFIT 0x00000400   /* lowest-addressed free segment that fits */
#define VM_NEXTFIT 0x00000800    /* first fit after the previous allocation, wrapping (PID-style) */

/* Arena creation flags (vmem_create only). */
#define VMC_DEBUG 0x00010000 /* report misuse (naming it) and leaks on stderr */
/* Skip the bad-free check on sizes served by the quantum caches: a little
 * faster, and a double free of such a size then returns 0 and hands the
 * same ID out twice later.  At the caller's risk; other sizes stay checked. */
#define VMC_UNCHECKED 0x00020000

/* Segment types (vmem_size, vmem_walk). */
#define VMEM_ALLOC 0x01
#define VMEM_FREE 0x02
#define VMEM_SPAN 0x04

/* Import a span of at least size units; store its start in *addrp; 0 or an errno. */
typedef int vmem_import_fn(void *arg, vmem_size_t size, int vmflags, vmem_addr_t *addrp);
/* Give back a span exactly as the import callback returned it. */
typedef void vmem_release_fn(void *arg, vmem_addr_t addr, vmem_size_t size);
/* Asked to free resources before an allocation sleeps or fails. */
typedef void vmem_reclaim_fn(vmem_t *vm, void *arg, int vmflags);
/* Called by vmem_walk for each segment, in address order. */
typedef void vmem_walk_fn(void *arg, vmem_addr_t addr, vmem_size_t size, int type);

/* ---- Arenas ------------------------------------------------------------ */

/*
 * Create an arena managing [base, base + size).  quantum is a power of two;
 * base and size are multiples of it; size 0 means no initial span.  A span
 * may end exactly at 2^64.  qcache_max (0: off) is rounded up to the quantum
 * and clamped to VMEM_QCACHE_MAX quanta.  name may be NULL; it is copied and
 * cut to VMEM_NAMELEN-1 bytes.  flags: VMC_DEBUG, VMC_UNCHECKED, and
 * VM_SLEEP or VM_NOSLEEP (ignored).  Returns NULL with errno EINVAL or ENOMEM.
 */
vmem_t *vmem_create(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t quantum,
		    vmem_size_t qcache_max, int flags);

/*
 * Destroy an arena: imported spans go back to their source, every page the
 * arena mapped is unmapped, outstanding allocations are dropped (reported on
 * stderr under VMC_DEBUG).  NULL does nothing.
 */
void vmem_destroy(vmem_t *vm);

/* The arena's name ("" for a nameless arena). */
const char *vmem_name(const vmem_t *vm);

/* The version of the library actually loaded, "MAJOR.MINOR.PATCH". */
const char *vmem_version(void);

/* ---- Allocation -------------------------------------------------------- */

/*
 * Allocate size units (rounded up to the quantum) and store the start in
 * *addrp.  flags: at most one of VM_SLEEP/VM_NOSLEEP and at most one policy.
 * Returns 0, EINVAL (bad arguments) or ENOMEM (cannot be met now).
 */
int vmem_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp);

/* Free what vmem_alloc returned; size as given at allocation.  0, or EINVAL
 * for anything but exactly one outstanding allocation (see the top). */
int vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);

/*
 * Constrained allocation.  The result a satisfies all at once:
 * a % align == phase (align 0 means the quantum); a and a + size - 1 lie in
 * one nocross-aligned block (nocross 0: no constraint); minaddr <= a and
 * a + size - 1 <= maxaddr (inclusive; VMEM_ADDR_MIN/VMEM_ADDR_MAX: no bound).
 * Never served from quantum caches.  Returns 0, EINVAL or ENOMEM.
 */
int vmem_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
		vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr, int flags,
		vmem_addr_t *addrp);

/* Free what vmem_xalloc returned.  0 or EINVAL. */
int vmem_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);

/* size rounded up to the arena's quantum; 0 if that would overflow. */
vmem_size_t vmem_roundup_size(const vmem_t *vm, vmem_size_t size);

/* ---- Spans and sources ------------------------------------------------- */

/* Add the span [addr, addr + size).  0, EINVAL (misaligned, empty, wrapping,
 * overlapping) or ENOMEM. */
int vmem_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, int flags);

/*
 * Import spans through callbacks when the arena's own spans cannot meet a
 * request.  releasefn (may be NULL: spans are then kept) gets back exactly
 * what importfn gave.  import_quantum is 0 or a multiple of the quantum.
 * EBUSY once the arena has allocated.
 */
int vmem_set_import(vmem_t *vm, vmem_import_fn *importfn, vmem_release_fn *releasefn, void *arg,
		    vmem_size_t import_quantum);

/* Import spans from another arena, passing constraints on.  EINVAL if the
 * chain of sources would loop; EBUSY once the arena has allocated. */
int vmem_set_source(vmem_t *vm, vmem_t *source, vmem_size_t import_quantum);

/* Stop importing once the imported total would exceed limit (0: no limit). */
int vmem_set_limit(vmem_t *vm, vmem_size_t limit);

/* Call fn (lock not held) before an allocation sleeps or fails, then retry once. */
int vmem_set_reclaim(vmem_t *vm, vmem_reclaim_fn *fn, void *arg);

/* Return everything the quantum caches hold to the arena. */
void vmem_reap(vmem_t *vm);

/* ---- Looking inside ---------------------------------------------------- */

/* VMEM_ALLOC: units allocated; VMEM_FREE: units free; both: all units. */
vmem_size_t vmem_size(vmem_t *vm, int typemask);

/* 1 if [addr, addr + size) lies inside one span, else 0 (also for size 0). */
int vmem_contains(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);

/* Call fn for each segment whose type is in typemask, in address order,
 * with the arena locked: fn must not call into the same arena.  0 or EINVAL. */
int vmem_walk(vmem_t *vm, int typemask, vmem_walk_fn *fn, void *arg);

/* Print a human-readable picture of the arena to fp.  0 or EINVAL/EIO. */
int vmem_dump(vmem_t *vm, FILE *fp);

typedef struct vmem_stats {
	uint32_t size;            /* in: sizeof(vmem_stats_t) as the caller was built */
	uint32_t reserved;
	vmem_size_t span_total;   /* units in all spans */
	vmem_size_t alloc_total;  /* units allocated, quantum-cache holdings included */
	vmem_size_t free_total;   /* units free in the arena */
	vmem_size_t cached_total; /* units held by quantum caches */
	vmem_size_t import_total; /* units in spans imported from a source */
	uint64_t nspans, nalloc, nfree;    /* segments now */
	uint64_t allocs, frees, fails;     /* calls since creation */
	uint64_t imports, releases, waits; /* events since creation */
	uint64_t tag_bytes;                /* bytes of mmap'd tag slabs */
	uint64_t qcache_hits, qcache_misses;
	/* Fields after this line are libvmem 1.0 additions beyond the contract;
	 * later versions append fields here. */
	uint64_t hash_bytes;   /* bytes of the allocated-segment hash table */
	uint64_t arena_bytes;  /* all bytes this arena has mapped */
} vmem_stats_t;

/* Fill *st up to st->size bytes.  EINVAL if st->size is smaller than the
 * version-1 structure (up to qcache_misses). */
int vmem_get_stats(vmem_t *vm, vmem_stats_t *st);

#ifdef __cplusplus
}
#endif

#endif /* VMEM_H */
