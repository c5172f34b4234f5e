/*
 * vmem.c - the front door: every public entry point of libvmem.
 *
 * ==== Layers ================================================================
 *
 * libvmem is four layers, and each calls only the layers below it:
 *
 *   1. The front door (this file).  It checks arguments, serves a cache hit
 *      inline, and sends everything else down: sizes up to qcache_max to
 *      the caches, the rest to the arena.  It owns struct vmem (the caches
 *      and the arena side by side), creation and destruction, the list of
 *      arenas and the fork handlers.
 *   2. The quantum caches (qcache.c, qcache.h; their common paths are the
 *      restartable sequences in rseq.h).  Per-CPU magazines, a depot and
 *      slabs.  They reach the arena only through arena.h: slabs and their
 *      cookies, single objects, sleeping, waking, counting a failure.
 *   3. The arena (arena.c, with seg.c, import.c, introspect.c and its
 *      structures tagslab.c, bt.c, freelist.c, tree.c, hash.c, fit.c, all
 *      under arena_impl.h).  Spans, boundary tags, the policies, sources;
 *      its Big Theory Statement is at the top of arena.c.  It knows nothing
 *      of the caches.  Two things cross upward, and both are installed by
 *      this file (arena_set_caches): the caches' reap, a hook the arena
 *      calls before an allocation sleeps or fails, and the free gate
 *      below, a field the arena keeps and this file reads.  An arena also
 *      calls its source arena, and callers' callbacks, through the public
 *      API: the one call from a lower layer into a higher one, and always
 *      into another arena (a chain of sources cannot loop).
 *   4. The OS layer (os.c, os.h): mappings, locks, the environment, the
 *      CPU, rseq and its fence.  It calls nothing of libvmem.
 *
 * check.c stands beside them: the invariant checker, which reads every
 * layer's structures (I1..I11 in arena.c, Q1..Q7 in qcache.c) and is
 * called only by tests (seams.h).
 *
 * ==== The free gate =========================================================
 *
 * vmem_free gets an address and a size, and for a cached size the common
 * path pushes the address into this CPU's magazine without asking anyone.
 * That is right only if the address is a cache object.  It may instead be
 * the arena's own segment of a cached size: first fit, next fit and
 * vmem_xalloc allocate from the arena directly, and so does a cache that
 * could get no slab.  So the arena counts its own segments of cached sizes
 * and keeps a gate: arena.free_gate is the caches' alloc_max while that
 * count is 0, and 0 while it is not (Q2).  The common path runs only for
 * size - 1 < free_gate, one compare; a closed gate sends cached frees the
 * long way, where the arena says whose the address is (arena_free_small).
 * The arena changes the count and the gate under its lock, before the
 * allocation that closes it returns, so no caller can hold such a segment
 * while the gate is open.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <string.h>

#include "rseq.h"
#include "vmem_impl.h"

#ifndef VMEM_VERSION_STRING
#define VMEM_VERSION_STRING "1.0.0"
#endif

/* ---- the global list, for fork ------------------------------------------ */

static pthread_mutex_t arenas_lock = PTHREAD_MUTEX_INITIALIZER;
static vmem_t *arenas;

static void vmem_atfork_prepare(void)
{
	pthread_mutex_lock(&arenas_lock);
	for (vmem_t *vm = arenas; vm != NULL; vm = vm->gnext) {
		qcache_lock_all(&vm->qc); /* the caches' locks come first */
		arena_fork_prepare(&vm->arena);
	}
}

static void vmem_atfork_parent(void)
{
	for (vmem_t *vm = arenas; vm != NULL; vm = vm->gnext) {
		arena_fork_parent(&vm->arena);
		qcache_unlock_all(&vm->qc);
	}
	pthread_mutex_unlock(&arenas_lock);
}

static void vmem_atfork_child(void)
{
	/* Only this thread survives, and it holds every lock (prepare took
	 * them); whether rseq still works is the kernel's to say again. */
	os_rseq_child();
	for (vmem_t *vm = arenas; vm != NULL; vm = vm->gnext) {
		arena_fork_child(&vm->arena);
		qcache_child(&vm->qc);
		if (vm->qc.map != NULL)
			arena_set_caches(&vm->arena, vm->qc.max, vm->qc.alloc_max, qcache_reap,
					 &vm->qc);
	}
	pthread_mutex_unlock(&arenas_lock);
}

__attribute__((constructor)) static void vmem_library_init(void)
{
	pthread_atfork(vmem_atfork_prepare, vmem_atfork_parent, vmem_atfork_child);
}

/* ---- arenas -------------------------------------------------------------- */

/* qcache_max rounded up to the quantum and clamped to VMEM_QCACHE_MAX quanta. */
static vmem_size_t vmem_qcache_max(vmem_size_t qcache_max, vmem_size_t quantum)
{
	if (qcache_max == 0)
		return 0;
	vmem_size_t cap = quantum > VMEM_ADDR_MAX / VMEM_QCACHE_MAX
				  ? VMEM_ADDR_MAX & ~(quantum - 1)
				  : (vmem_size_t)VMEM_QCACHE_MAX * quantum;
	if (qcache_max >= cap)
		return cap;
	return (qcache_max + quantum - 1) & ~(quantum - 1);
}

VMEM_API vmem_t *vmem_create(const char *name, vmem_addr_t base, vmem_size_t size,
			     vmem_size_t quantum, vmem_size_t qcache_max, int flags)
{
	if (!vmem_is_pow2(quantum) || (base & (quantum - 1)) != 0 || (size & (quantum - 1)) != 0 ||
	    (size != 0 && size - 1 > VMEM_ADDR_MAX - base) ||
	    arena_flags_check(flags & ~(VMC_DEBUG | VMC_UNCHECKED), VM_SLEEPFLAGS) != 0) {
		errno = EINVAL;
		return NULL;
	}

	size_t bytes = os_round_page(sizeof(struct vmem));
	vmem_t *vm = os_map(bytes);
	if (vm == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memset(vm, 0, sizeof(*vm));
	vm->self_bytes = bytes;
	vm->debug = os_debug_mode();
	if ((flags & VMC_DEBUG) != 0 && vm->debug == OS_DEBUG_OFF)
		vm->debug = OS_DEBUG_REPORT;
	if (arena_init(&vm->arena, vm, name, base, size, quantum, vm->debug) != 0)
		goto fail;
	vmem_size_t qmax = qcache_fit_max(vmem_qcache_max(qcache_max, quantum), quantum);
	if (qmax != 0) {
		if (qcache_init(&vm->qc, &vm->arena, qmax, quantum, vm->debug,
				(flags & VMC_UNCHECKED) == 0) != 0)
			goto fail;
		arena_set_caches(&vm->arena, qmax, vm->qc.alloc_max, qcache_reap, &vm->qc);
	}

	pthread_mutex_lock(&arenas_lock);
	vm->gnext = arenas;
	if (arenas != NULL)
		arenas->gprev = vm;
	arenas = vm;
	pthread_mutex_unlock(&arenas_lock);
	return vm;

fail:
	qcache_fini(&vm->qc);
	arena_fini(&vm->arena);
	os_unmap(vm, bytes);
	errno = ENOMEM;
	return NULL;
}

/* Name every allocation still outstanding.  The caches give back what
 * they hold first, so that their slabs, which are nobody's allocation, do
 * not show as leaks; the objects callers still hold in them do. */
static void vmem_report_leaks(vmem_t *vm)
{
	unsigned int shown = 0;
	uint64_t n = 0;
	vmem_size_t units = 0;
	if (vm->qc.map != NULL) {
		qcache_reap(&vm->qc);
		qcache_report_leaks(&vm->qc, &shown, &n, &units);
	}
	arena_report_leaks(&vm->arena, &shown, &n, &units);
	if (n > shown || (n != 0 && shown > VMEM_LEAKS_SHOWN))
		fprintf(stderr, "vmem: arena \"%s\": ... and %llu more\n", arena_name(&vm->arena),
			(unsigned long long)(n - VMEM_LEAKS_SHOWN));
	if (n != 0)
		fprintf(stderr, "vmem: arena \"%s\": %llu allocations, %llu units outstanding at destroy\n",
			arena_name(&vm->arena), (unsigned long long)n, (unsigned long long)units);
}

VMEM_API void vmem_destroy(vmem_t *vm)
{
	if (vm == NULL)
		return;
	pthread_mutex_lock(&arenas_lock);
	if (vm->gprev != NULL)
		vm->gprev->gnext = vm->gnext;
	else
		arenas = vm->gnext;
	if (vm->gnext != NULL)
		vm->gnext->gprev = vm->gprev;
	pthread_mutex_unlock(&arenas_lock);

	if (vm->debug != OS_DEBUG_OFF)
		vmem_report_leaks(vm);
	arena_fini(&vm->arena);
	qcache_fini(&vm->qc);
	os_unmap(vm, vm->self_bytes);
}

VMEM_API const char *vmem_name(const vmem_t *vm)
{
	return vm != NULL ? arena_name(&vm->arena) : "";
}

VMEM_API const char *vmem_version(void)
{
	return VMEM_VERSION_STRING;
}

VMEM_API vmem_size_t vmem_roundup_size(const vmem_t *vm, vmem_size_t size)
{
	return vm != NULL ? arena_round(&vm->arena, size) : 0;
}

/* ---- vmem_alloc and vmem_free ----------------------------------------------- */

/* &vm->arena, for a slow path that has done with the rest of vm.  The
 * empty asm hides that the result is vm plus a constant: the compiler
 * then keeps one pointer live across the arena's lock calls, not both vm
 * and the arena, and the hot arena paths save a register less. */
static inline struct arena *arena_of(vmem_t *vm)
{
	struct arena *ar = &vm->arena;
	__asm__("" : "+r"(ar));
	return ar;
}

/* Everything that is not a cache hit: the checks left (vm and addrp are
 * not NULL: the caller saw to that), then the caches' other paths or the
 * arena.  Out of line, so that the hit needs no stack frame. */
static NOINLINE int vmem_alloc_slow(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	if (unlikely(arena_flags_check(flags, VM_ALLOCFLAGS) != 0))
		return EINVAL;
	/* first and next fit bypass the caches (they promise an address);
	 * size - 1 < max rules out size 0 */
	if (size - 1 < vm->qc.max && (flags & (VM_FIRSTFIT | VM_NEXTFIT)) == 0)
		return qcache_alloc(&vm->qc, arena_round(&vm->arena, size), flags, addrp);
	/* 0 for size 0 as for a size that rounds past 2^64 */
	size = arena_round(&vm->arena, size);
	if (unlikely(size == 0))
		return EINVAL;
	return arena_alloc(arena_of(vm), size, flags, addrp);
}

VMEM_API int vmem_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	unsigned int f = (unsigned int)flags;
	if (unlikely(vm == NULL || addrp == NULL))
		return EINVAL;
	/* size - 1 < alloc_max rules out size 0; the flags: VM_SLEEP or
	 * VM_NOSLEEP or neither, and no policy but instant fit (best fit
	 * takes the longer way to the same caches) */
	if (likely(size - 1 < vm->qc.alloc_max &&
		   (f & ~(unsigned int)VM_INSTANTFIT) < VM_SLEEPFLAGS)) {
		struct qcache *c = qcache_of(&vm->qc, size);
		vmem_addr_t a;
		uint8_t *st;
		if (likely(qc_pop_rseq(&vm->qc, c, &a, &st))) {
			/* the object is the caller's now: say so (qstate.h) */
			if (likely(vm->qc.checked))
				qstate_alloc(st, (uint8_t)(((size - 1) >> vm->qc.qshift) + 1));
			*addrp = a;
			return 0;
		}
		return qcache_alloc_miss(&vm->qc, c, flags, addrp);
	}
	return vmem_alloc_slow(vm, size, flags, addrp);
}

/* A free of a cached size that did not take the common path: the
 * caches', unless the arena holds segments of cached sizes of its own
 * (the gate, above).  Out of line, so that vmem_free_slow's arena path
 * keeps a small frame. */
static NOINLINE int vmem_free_cached(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	size = arena_round(&vm->arena, size);
	if (!arena_holds_small(&vm->arena))
		return qcache_free(&vm->qc, addr, size);
	return qcache_free_shared(&vm->qc, addr, size);
}

/* vm is not NULL: the caller saw to that. */
static NOINLINE int vmem_free_slow(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	if (unlikely(size == 0))
		return EINVAL;
	if (size - 1 < vm->qc.max)
		return vmem_free_cached(vm, addr, size);
	return arena_free(arena_of(vm), addr, arena_round(&vm->arena, size), false);
}

static NOINLINE int vmem_wake(vmem_t *vm)
{
	arena_wake(&vm->arena);
	return 0;
}

VMEM_API int vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	if (unlikely(vm == NULL))
		return EINVAL;
	if (likely(size - 1 < __atomic_load_n(&vm->arena.free_gate, __ATOMIC_RELAXED))) {
		/* exactly one outstanding allocation of this size, or the long
		 * way, which says EINVAL (qstate.h: one compare-and-exchange) */
		uint8_t *st = NULL;
		if (likely(vm->qc.checked) &&
		    unlikely((st = qstate_free(&vm->qc.state, addr, vm->qc.qshift,
					       (uint8_t)(((size - 1) >> vm->qc.qshift) + 1))) == NULL))
			return vmem_free_slow(vm, addr, size);
		struct qcache *c = qcache_of(&vm->qc, size);
		if (likely(qc_push_rseq(&vm->qc, c, addr, st))) {
			/* a waiter may want what this free made available */
			if (unlikely(__atomic_load_n(&vm->arena.nwaiters, __ATOMIC_RELAXED) != 0))
				return vmem_wake(vm);
			return 0;
		}
		return qcache_push_miss(&vm->qc, c, addr, st);
	}
	return vmem_free_slow(vm, addr, size);
}

/* ---- the rest of the API: checks, then one layer ------------------------------ */

VMEM_API int vmem_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
			 vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr, int flags,
			 vmem_addr_t *addrp)
{
	if (vm == NULL)
		return EINVAL;
	return arena_xalloc(&vm->arena, size, align, phase, nocross, minaddr, maxaddr, flags,
			    addrp);
}

VMEM_API int vmem_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	if (vm == NULL || size == 0)
		return EINVAL;
	return arena_xfree(&vm->arena, addr, size);
}

VMEM_API int vmem_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, int flags)
{
	if (vm == NULL)
		return EINVAL;
	return arena_add(&vm->arena, addr, size, flags);
}

VMEM_API int vmem_set_import(vmem_t *vm, vmem_import_fn *importfn, vmem_release_fn *releasefn,
			     void *arg, vmem_size_t import_quantum)
{
	if (vm == NULL || importfn == NULL)
		return EINVAL;
	return arena_set_import(&vm->arena, NULL, NULL, importfn, releasefn, arg, import_quantum);
}

VMEM_API int vmem_set_source(vmem_t *vm, vmem_t *source, vmem_size_t import_quantum)
{
	if (vm == NULL || source == NULL)
		return EINVAL;
	return arena_set_import(&vm->arena, source, &source->arena, NULL, NULL, NULL,
				import_quantum);
}

VMEM_API int vmem_set_limit(vmem_t *vm, vmem_size_t limit)
{
	if (vm == NULL)
		return EINVAL;
	arena_set_limit(&vm->arena, limit);
	return 0;
}

VMEM_API int vmem_set_reclaim(vmem_t *vm, vmem_reclaim_fn *fn, void *arg)
{
	if (vm == NULL)
		return EINVAL;
	arena_set_reclaim(&vm->arena, fn, arg);
	return 0;
}

VMEM_API void vmem_reap(vmem_t *vm)
{
	if (vm == NULL)
		return;
	if (vm->qc.map != NULL)
		qcache_reap(&vm->qc);
	arena_wake(&vm->arena);
}

/* ---- looking inside ---------------------------------------------------------- */

VMEM_API vmem_size_t vmem_size(vmem_t *vm, int typemask)
{
	return vm != NULL ? arena_size(&vm->arena, typemask) : 0;
}

VMEM_API int vmem_contains(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	return vm != NULL ? arena_contains(&vm->arena, addr, size) : 0;
}

VMEM_API int vmem_walk(vmem_t *vm, int typemask, vmem_walk_fn *fn, void *arg)
{
	if (vm == NULL)
		return EINVAL;
	return arena_walk(&vm->arena, typemask, fn, arg);
}

/* Every figure, the caches' and the arena's. */
static void vmem_stats_take(vmem_t *vm, vmem_stats_t *full)
{
	vmem_stats_t qc;
	memset(&qc, 0, sizeof(qc));
	/* the caches first: their locks come before the arena's */
	if (vm->qc.map != NULL)
		qcache_stats(&vm->qc, &qc);
	arena_stats(&vm->arena, full);
	full->allocs += qc.allocs;
	full->frees += qc.frees;
	full->cached_total = qc.cached_total;
	full->qcache_hits = qc.qcache_hits;
	full->qcache_misses = qc.qcache_misses;
	full->arena_bytes += vm->self_bytes + qcache_bytes(&vm->qc);
}

VMEM_API int vmem_get_stats(vmem_t *vm, vmem_stats_t *st)
{
	if (vm == NULL || st == NULL || st->size < offsetof(vmem_stats_t, hash_bytes))
		return EINVAL;
	vmem_stats_t full;
	vmem_stats_take(vm, &full);
	uint32_t n = st->size < sizeof(full) ? st->size : (uint32_t)sizeof(full);
	/* size and reserved are the caller's; copy the rest up to n */
	memcpy((char *)st + offsetof(vmem_stats_t, span_total),
	       (const char *)&full + offsetof(vmem_stats_t, span_total),
	       n - offsetof(vmem_stats_t, span_total));
	return 0;
}

VMEM_API int vmem_dump(vmem_t *vm, FILE *fp)
{
	if (vm == NULL || fp == NULL)
		return EINVAL;
	vmem_stats_t st;
	vmem_stats_take(vm, &st);
	/* the name comes first, so a reader (and grep) can tell dumps apart */
	fprintf(fp, "%s: vmem arena, quantum %llu, qcache_max %llu%s\n", arena_name(&vm->arena),
		(unsigned long long)arena_quantum(&vm->arena), (unsigned long long)vm->qc.max,
		vm->debug != OS_DEBUG_OFF ? ", debug" : vm->qc.map != NULL && !vm->qc.checked ? ", unchecked" : "");
	fprintf(fp, "  units: %llu in spans, %llu allocated, %llu free, %llu cached, %llu imported\n",
		(unsigned long long)st.span_total, (unsigned long long)st.alloc_total,
		(unsigned long long)st.free_total, (unsigned long long)st.cached_total,
		(unsigned long long)st.import_total);
	fprintf(fp, "  segments: %llu spans, %llu allocated, %llu free\n",
		(unsigned long long)st.nspans, (unsigned long long)st.nalloc,
		(unsigned long long)st.nfree);
	fprintf(fp,
		"  calls: %llu allocs, %llu frees, %llu fails; %llu imports, %llu releases, "
		"%llu waits; qcache %llu hits, %llu misses\n",
		(unsigned long long)st.allocs, (unsigned long long)st.frees,
		(unsigned long long)st.fails, (unsigned long long)st.imports,
		(unsigned long long)st.releases, (unsigned long long)st.waits,
		(unsigned long long)st.qcache_hits, (unsigned long long)st.qcache_misses);
	arena_dump(&vm->arena, fp);
	qcache_dump(&vm->qc, fp);
	return ferror(fp) ? EIO : 0;
}
