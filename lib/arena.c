/*
 * arena.c - arenas: creation, destruction, allocation and freeing.
 *
 * ==== Big Theory Statement ==================================================
 *
 * Arenas, spans, segments.  An arena manages integers, not memory: a
 * resource is a 64-bit number, and 0 and 2^64-1 are as good as any other.
 * The integers an arena owns come in spans, added by vmem_create/vmem_add
 * or imported from a source.  Each span is cut into segments, free or
 * allocated, that tile it exactly.  Spans never merge, even when adjacent,
 * so a segment never straddles two of them and an imported span can go
 * back to its source whole.
 *
 * Boundary tags.  Every span and every segment is described by a tag (a
 * struct bt).  Tags are kept in one doubly linked list in address order; a
 * span's marker comes first, then its segments.  A free therefore finds its
 * neighbours in O(1) and coalesces with them.  Tags are metadata kept out
 * of band, in a table the arena maps for itself (tagslab.c): the resources
 * may not be memory at all, and libvmem must be able to sit under a malloc.
 * Tags refer to each other by 32-bit index, which keeps a tag at 48 bytes.
 *
 * Freelists.  A free segment of size s sits on freelist floor(log2 s), and
 * a 64-bit bitmap says which lists are non-empty.  Instant fit (the
 * default) takes the first segment of the smallest list whose every member
 * is big enough: one find-first-set, O(1) however fragmented the arena is.
 * Best fit scans the smallest list that can hold a fit.  The lists are
 * built on the first instant or best fit search, so an arena used only
 * with next or first fit never keeps them (freelist.c).  When no list
 * surely fits, the search falls back to the treap, so an allocation fails
 * only when no free segment can hold it.
 *
 * The treap.  Free segments are also nodes of a treap ordered by address,
 * each node caching the largest free size below it (tree.c).  First fit
 * (the lowest address that fits), next fit (the first fit at or after the
 * end of the previous next-fit allocation, wrapping) and constrained
 * requests descend it, skipping subtrees that are too small: O(log n).
 * The next-fit rotor is an address, not a tag, so it never keeps two free
 * segments from coalescing, and it moves only when an allocation succeeds.
 *
 * The hash.  Allocated segments are found by start address in a hash table
 * (hash.c) that grows and shrinks inline with the number of allocations,
 * so a free is O(1) at 10^7 live segments and no timer thread is needed.
 * A free must name exactly one outstanding allocation; anything else is
 * EINVAL and changes nothing.
 *
 * Constraints.  vmem_xalloc's alignment, phase, nocross, minaddr and
 * maxaddr are all decided by one pure function (fit.c) that works on
 * inclusive last units, so a span that ends at 2^64 is ordinary and no
 * arithmetic wraps.
 *
 * Sources.  When the spans cannot meet a request, the arena imports a
 * span big enough for it, constraints included (import.c), from a source
 * arena (constraints passed on) or a callback (sized for alignment and
 * phase).  A span that becomes wholly free goes straight back.  No arena
 * lock is held across a callback or a call into the source, so arenas never
 * hold two locks and there is no lock order to respect.
 *
 * Locking.  One pthread mutex per arena guards everything in it; VM_SLEEP
 * waiters sleep on the arena's condition variable, and every free, add and
 * release wakes them.  A global list of arenas, under its own lock, lets
 * pthread_atfork handlers take every arena lock before fork and reset them
 * in the child, which can go on using every arena.
 *
 * Quantum caches.  Sizes up to qcache_max go through per-CPU magazines, a
 * depot and slabs of 64 objects imported from the arena (qcache.c, which
 * explains the layers).  Their common path takes no lock at all: it is a
 * restartable sequence (rseq) on the CPU's magazine, and whatever touches
 * a CPU's magazines from elsewhere takes that slot's spinlock and fences
 * the CPU with membarrier (os.c); without rseq the slot's spinlock is
 * taken every time.  That sequence is inlined into vmem_alloc and
 * vmem_free, which therefore live in qcache.c; what is not a cache hit
 * continues in arena_vmem_alloc/arena_vmem_free here.  Lock order: slot
 * spinlock, cache mutex, arena mutex.  Objects held by caches count as
 * allocated until a reap; an allocation that is about to fail or sleep
 * reaps first.  First-fit, next-fit and constrained requests go to the
 * arena, since their addresses are the point.
 *
 * Failure.  Every operation reserves the tags it may need before it
 * changes anything, so running out of memory for tags gives ENOMEM and an
 * untouched arena, never half a split.  Hash resizing is best effort and
 * never fails an operation.
 *
 * ==== Invariants (checked by check.c, cited as I1..I12) ====================
 *
 * I1  The address list is a circular doubly linked list through BT_HEAD;
 *     prev and next agree, and starts never decrease along it.
 * I2  Spans do not overlap; the span list and the span treap hold exactly
 *     the span markers, in address order.  The segments after a marker tile its span exactly.
 * I3  No two free segments are adjacent within a span.
 * I4  Once built, free segment of size s is on freelist floor(log2 s) and
 *     on no other; bit k of fl_bitmap is set iff freelist k is non-empty.
 *     Before, every list is empty.
 * I5  Once built, the treap holds exactly the free segments, in address
 *     order, with the heap property on priorities; each node's max is the
 *     largest size in its subtree; BT_NIL's max is 0.  Before, it is empty.
 * I6  The hash holds exactly the allocated segments, each in the bucket of
 *     its start; nalloc is their number.
 * I7  Every tag is either a sentinel, in the address list, or on the unused
 *     chain; in use plus unused equals tags mapped.  The treap fields of a
 *     busy or unused tag are clear, but for a quantum-cache slab's left and
 *     right, which hold its record (qcache.c) until the slab is freed.
 * I8  Every span and segment is non-empty, starts on a quantum boundary
 *     and has a size that is a multiple of the quantum; no span wraps.
 * I9  span_total, free_total, alloc_total, import_total, nspans, nfree and
 *     nalloc equal what the tags say (free_total is derived: span_total -
 *     alloc_total).
 * I10 When the arena can release, no imported span is wholly free between
 *     calls.
 * I11 The hash load stays within [1/8, 1] (or the table is at its minimum
 *     or maximum size, or a resize could not be mapped).
 * I12 An operation that fails changes nothing but the fails counter.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "vmem_impl.h"

#ifndef VMEM_VERSION_STRING
#define VMEM_VERSION_STRING "1.0.0"
#endif

/* ---- the global list, for fork ------------------------------------------ */

static pthread_mutex_t arenas_lock = PTHREAD_MUTEX_INITIALIZER;
static vmem_t *arenas;

static void arena_atfork_prepare(void)
{
	pthread_mutex_lock(&arenas_lock);
	for (vmem_t *vm = arenas; vm != NULL; vm = vm->gnext) {
		qcache_lock_all(vm);
		pthread_mutex_lock(&vm->lock);
	}
}

static void arena_atfork_parent(void)
{
	for (vmem_t *vm = arenas; vm != NULL; vm = vm->gnext) {
		pthread_mutex_unlock(&vm->lock);
		qcache_unlock_all(vm);
	}
	pthread_mutex_unlock(&arenas_lock);
}

static void arena_atfork_child(void)
{
	/* Only this thread survives, and it holds every lock (prepare took
	 * them): release them.  Waiters are gone, so the condition variables
	 * start afresh. */
	os_rseq_child();
	for (vmem_t *vm = arenas; vm != NULL; vm = vm->gnext) {
		pthread_cond_destroy(&vm->cv);
		os_cond_init(&vm->cv);
		vm->nwaiters = 0;
		pthread_mutex_unlock(&vm->lock);
		qcache_child(vm);
	}
	pthread_mutex_unlock(&arenas_lock);
}

__attribute__((constructor)) static void arena_library_init(void)
{
	pthread_atfork(arena_atfork_prepare, arena_atfork_parent, arena_atfork_child);
}

/* ---- helpers --------------------------------------------------------------- */

static inline bool is_pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* 0 when the flags are well formed, else EINVAL. */
static int flags_check(int flags, int allowed)
{
	if ((flags & ~allowed) != 0)
		return EINVAL;
	if ((flags & VM_SLEEPFLAGS) == VM_SLEEPFLAGS)
		return EINVAL;
	int p = flags & VM_POLICIES;
	if ((p & (p - 1)) != 0)
		return EINVAL;
	return 0;
}

static inline vmem_size_t round_q(const vmem_t *vm, vmem_size_t size)
{
	vmem_size_t q1 = vm->quantum - 1;
	if (size > VMEM_ADDR_MAX - q1)
		return 0;
	return (size + q1) & ~q1;
}

void arena_wakeup(vmem_t *vm)
{
	if (vm->nwaiters != 0)
		pthread_cond_broadcast(&vm->cv);
}

static void arena_wait(vmem_t *vm)
{
	vm->waits++;
	__atomic_fetch_add(&vm->nwaiters, 1, __ATOMIC_RELAXED);
	if (vm->source != NULL || vm->importfn != NULL || vm->qc != NULL) {
		/* a source's frees, and a cache free that races with our wait,
		 * may not signal us: look again now and then */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 20 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm->cv, &vm->lock, &ts);
	} else {
		pthread_cond_wait(&vm->cv, &vm->lock);
	}
	__atomic_fetch_sub(&vm->nwaiters, 1, __ATOMIC_RELAXED);
}

/* Take an imported span out again if it is still wholly free; lock held,
 * dropped around the release. */
static void arena_unimport(vmem_t *vm, bt_idx si, vmem_addr_t addr, vmem_size_t size)
{
	const struct bt *s = BT(vm, si);
	QUIET_BEGIN(vm); /* the span may be gone, its tag unused */
	bool same = s->type == BT_SPAN_IMPORT && s->start == addr && s->size == size;
	QUIET_END(vm);
	if (!same)
		return;
	if (!seg_span_free(vm, si))
		return;
	vm->releases++;
	pthread_mutex_unlock(&vm->lock);
	import_release(vm, addr, size);
	pthread_mutex_lock(&vm->lock);
}

/* ---- arenas -------------------------------------------------------------- */

VMEM_API vmem_t *vmem_create(const char *name, vmem_addr_t base, vmem_size_t size,
			     vmem_size_t quantum, vmem_size_t qcache_max, int flags)
{
	if (!is_pow2(quantum) || (base & (quantum - 1)) != 0 || (size & (quantum - 1)) != 0 ||
	    (size != 0 && size - 1 > VMEM_ADDR_MAX - base) ||
	    flags_check(flags & ~VMC_DEBUG, VM_SLEEPFLAGS) != 0) {
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
	if (tagslab_init(vm) != 0 || hash_init(vm) != 0)
		goto fail;
	os_lock_init(&vm->lock, &vm->cv);
	vm->quantum = quantum;
	vm->qshift = (unsigned int)__builtin_ctzll(quantum);
	vm->tree_seed = (uint64_t)(uintptr_t)vm * 0x9e3779b97f4a7c15ull;
	vm->debug = (flags & VMC_DEBUG) != 0 || os_debug_env();
	if (qcache_max != 0) {
		vmem_size_t cap = quantum > VMEM_ADDR_MAX / VMEM_QCACHE_MAX
					  ? VMEM_ADDR_MAX & ~(quantum - 1)
					  : (vmem_size_t)VMEM_QCACHE_MAX * quantum;
		vm->qcache_max = qcache_max >= cap ? cap : round_q(vm, qcache_max);
	}
	if (name != NULL) {
		strncpy(vm->name, name, VMEM_NAMELEN - 1);
		vm->name[VMEM_NAMELEN - 1] = '\0';
	}
	if (size != 0 && seg_add_span(vm, base, size, false, NULL) != 0)
		goto fail;
	if (vm->qcache_max != 0 && qcache_init(vm) != 0)
		goto fail;

	pthread_mutex_lock(&arenas_lock);
	vm->gnext = arenas;
	if (arenas != NULL)
		arenas->gprev = vm;
	arenas = vm;
	pthread_mutex_unlock(&arenas_lock);
	return vm;

fail:
	qcache_fini(vm);
	hash_fini(vm);
	tagslab_fini(vm);
	os_unmap(vm, bytes);
	errno = ENOMEM;
	return NULL;
}

static void arena_report_leaks(vmem_t *vm)
{
	unsigned long n = 0;
	for (bt_idx i = BT(vm, BT_HEAD)->next; i != BT_HEAD; i = BT(vm, i)->next) {
		const struct bt *b = BT(vm, i);
		if (!bt_is_busy(b))
			continue;
		if (n++ < 16)
			fprintf(stderr, "vmem: arena \"%s\": leaked [%#llx, %#llx] (%llu units)\n",
				vm->name, (unsigned long long)b->start,
				(unsigned long long)bt_last(b), (unsigned long long)b->size);
	}
	if (n != 0)
		fprintf(stderr, "vmem: arena \"%s\": %lu allocations, %llu units outstanding at destroy\n",
			vm->name, n, (unsigned long long)vm->alloc_total);
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

	if (vm->debug)
		arena_report_leaks(vm);
	/* nobody else may use the arena now: release without the lock */
	for (bt_idx si = BT(vm, BT_HEAD)->lnext; si != BT_HEAD; si = BT(vm, si)->lnext) {
		const struct bt *s = BT(vm, si);
		if (s->type == BT_SPAN_IMPORT)
			import_release(vm, s->start, s->size);
	}
	pthread_cond_destroy(&vm->cv);
	pthread_mutex_destroy(&vm->lock);
	qcache_fini(vm);
	hash_fini(vm);
	tagslab_fini(vm);
	os_unmap(vm, vm->self_bytes);
}

VMEM_API const char *vmem_name(const vmem_t *vm)
{
	return vm != NULL ? vm->name : "";
}

VMEM_API const char *vmem_version(void)
{
	return VMEM_VERSION_STRING;
}

VMEM_API vmem_size_t vmem_roundup_size(const vmem_t *vm, vmem_size_t size)
{
	if (vm == NULL)
		return 0;
	return round_q(vm, size);
}

/* ---- allocation ------------------------------------------------------------ */

/* A request anywhere in the arena, aligned to align. */
static inline struct fitreq fitreq_any(vmem_size_t size, vmem_size_t align)
{
	return (struct fitreq){
		.size = size,
		.align = align,
		.phase = 0,
		.nocross = 0,
		.minaddr = VMEM_ADDR_MIN,
		.maxaddr = VMEM_ADDR_MAX,
	};
}

/* Bookkeeping of a successful allocation, lock held. */
static inline void arena_allocated(vmem_t *vm, vmem_size_t size, unsigned int type)
{
	vm->ever_allocated = true;
	if (type == BT_BUSY_QC)
		return; /* a slab: the cache counts its callers' calls */
	vm->allocs++;
	if (size <= vm->qcache_max &&
	    __atomic_fetch_add(&vm->arena_small, 1, __ATOMIC_RELAXED) == 0)
		qcache_gate_free(vm, false);
}

/* A next-fit allocation [a, a + size) succeeded in busy tag bi: the rotor
 * moves to its end (and only on success). */
static inline void arena_rotor_move(vmem_t *vm, vmem_addr_t a, vmem_size_t size, bt_idx bi)
{
	vm->rotor = a + size;
	vm->rotor_hint = BT(vm, bi)->next;
	vm->rotor_last = a;
}

/* Lock held on entry, dropped on return. */
static int arena_alloc_locked(vmem_t *vm, const struct fitreq *req, int flags, unsigned int type,
			      vmem_addr_t *addrp)
{
	int policy = flags & VM_POLICIES;
	bool imported = false, reclaimed = false, reaped = false;
	bt_idx newspan = BT_NIL;
	vmem_addr_t ns_addr = 0;
	vmem_size_t ns_size = 0;

	for (;;) {
		vmem_addr_t a;
		bt_idx fi = seg_find(vm, req, policy, &a);
		if (fi != BT_NIL) {
			bt_idx bi;
			if (seg_carve(vm, fi, a, req->size, type, &bi) != 0)
				break; /* no memory for tags: fail, however we sleep */
			if (policy == VM_NEXTFIT)
				arena_rotor_move(vm, a, req->size, bi);
			arena_allocated(vm, req->size, type);
			/* the search may have found room elsewhere, freed while the
			 * lock was dropped for the import: keep I10 */
			if (newspan != BT_NIL)
				arena_unimport(vm, newspan, ns_addr, ns_size);
			pthread_mutex_unlock(&vm->lock);
			*addrp = a;
			return 0;
		}
		if (newspan != BT_NIL) {
			/* the import did not help (a callback ignored the
			 * constraints, or others took it): give it back */
			arena_unimport(vm, newspan, ns_addr, ns_size);
			newspan = BT_NIL;
		}
		if (!imported && (vm->source != NULL || vm->importfn != NULL)) {
			imported = true;
			if (import_span(vm, req, flags, &newspan) == 0) {
				ns_addr = BT(vm, newspan)->start;
				ns_size = BT(vm, newspan)->size;
				continue;
			}
			newspan = BT_NIL;
		}
		if (!reaped && vm->qc != NULL) {
			/* objects idle in the caches may be what is missing */
			reaped = true;
			pthread_mutex_unlock(&vm->lock);
			bool freed = qcache_reap(vm);
			pthread_mutex_lock(&vm->lock);
			if (freed)
				imported = false; /* released spans make room under the limit */
			continue;
		}
		if (!reclaimed && vm->reclaimfn != NULL) {
			vmem_reclaim_fn *fn = vm->reclaimfn;
			void *arg = vm->reclaim_arg;
			reclaimed = true;
			pthread_mutex_unlock(&vm->lock);
			fn(vm, arg, flags);
			pthread_mutex_lock(&vm->lock);
			continue;
		}
		if (!(flags & VM_SLEEP))
			break;
		arena_wait(vm);
		imported = reclaimed = reaped = false;
	}
	if (newspan != BT_NIL)
		arena_unimport(vm, newspan, ns_addr, ns_size);
	if (type != BT_BUSY_QC && !(flags & VM_NOFAILCOUNT))
		vm->fails++;
	pthread_mutex_unlock(&vm->lock);
	return ENOMEM;
}

static int arena_alloc(vmem_t *vm, const struct fitreq *req, int flags, unsigned int type,
		       vmem_addr_t *addrp)
{
	pthread_mutex_lock(&vm->lock);
	return arena_alloc_locked(vm, req, flags, type, addrp);
}

/* The end of arena_alloc_any's fast paths, lock held, dropped on return:
 * vmem_alloc's [start of fi, + size), which a search of the policy would
 * have found too. */
static HOT_INLINE int arena_alloc_take(vmem_t *vm, bt_idx fi, vmem_size_t size, bool nextfit,
				       vmem_addr_t *addrp)
{
	vmem_addr_t a = BT(vm, fi)->start;
	bt_idx bi;
	int err = seg_carve(vm, fi, a, size, BT_BUSY, &bi);
	if (likely(err == 0)) {
		if (nextfit)
			arena_rotor_move(vm, a, size, bi);
		arena_allocated(vm, size, BT_BUSY);
	} else {
		vm->fails++; /* no memory for tags, as in arena_alloc */
	}
	pthread_mutex_unlock(&vm->lock);
	if (likely(err == 0))
		*addrp = a;
	return err;
}

/* vmem_alloc past the caches: the common instant-fit and next-fit cases
 * inline, the rest by arena_alloc. */
static HOT_INLINE int arena_alloc_any(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	int policy = flags & VM_POLICIES;
	if (likely(policy == 0 || policy == VM_INSTANTFIT)) {
		/* the common case in one breath: a list that surely fits */
		unsigned int k = freelist_class(size) + ((size & (size - 1)) != 0);
		pthread_mutex_lock(&vm->lock);
		uint64_t m = k < 64 ? vm->fl_bitmap >> k : 0;
		if (likely(m != 0))
			return arena_alloc_take(vm, vm->fl_head[k + (unsigned int)__builtin_ctzll(m)],
						size, false, addrp);
		pthread_mutex_unlock(&vm->lock);
	} else if (policy == VM_NEXTFIT) {
		/* PID-style: the previous allocation mostly left a free
		 * segment at the rotor, and its start is the answer.  The
		 * general path (a request, the policy switch, the import
		 * loop) costs more than this allocation itself. */
		pthread_mutex_lock(&vm->lock);
		bt_idx fi = seg_nextfit_hint(vm, size);
		if (likely(fi != BT_NIL))
			return arena_alloc_take(vm, fi, size, true, addrp);
		struct fitreq req = fitreq_any(size, vm->quantum);
		return arena_alloc_locked(vm, &req, flags, BT_BUSY, addrp);
	}
	struct fitreq req = fitreq_any(size, vm->quantum);
	return arena_alloc(vm, &req, flags, BT_BUSY, addrp);
}

/* vmem_alloc (in qcache.c) past the caches' common path: out of line, so
 * that the cached path needs no stack frame. */
NOINLINE int arena_vmem_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	if (unlikely(vm == NULL || addrp == NULL || size == 0 ||
		     flags_check(flags, VM_ALLOCFLAGS) != 0))
		return EINVAL;
	/* first and next fit bypass the caches (they promise an address) */
	if (size - 1 < vm->qcache_max && (flags & (VM_FIRSTFIT | VM_NEXTFIT)) == 0)
		return qcache_alloc(vm, round_q(vm, size), flags, addrp);
	size = round_q(vm, size);
	if (unlikely(size == 0))
		return EINVAL;
	return arena_alloc_any(vm, size, flags, addrp);
}

VMEM_API int vmem_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
			 vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr, int flags,
			 vmem_addr_t *addrp)
{
	if (vm == NULL || addrp == NULL || size == 0 || flags_check(flags, VM_ALLOCFLAGS) != 0)
		return EINVAL;
	vmem_size_t q1 = vm->quantum - 1;
	struct fitreq req = {
		.size = round_q(vm, size),
		.align = align == 0 ? vm->quantum : align,
		.phase = phase,
		.nocross = nocross,
		.minaddr = minaddr,
		.maxaddr = maxaddr,
	};
	if (req.size == 0 || !is_pow2(req.align) || (req.align & q1) != 0 || (phase & q1) != 0 ||
	    phase >= req.align || minaddr > maxaddr)
		return EINVAL;
	if (nocross != 0 && (!is_pow2(nocross) || (nocross & q1) != 0 || nocross < req.size))
		return EINVAL;
	return arena_alloc(vm, &req, flags, BT_BUSY_X, addrp);
}

static void arena_bad_free(vmem_t *vm, const char *fn, vmem_addr_t addr, vmem_size_t size)
{
	if (vm->debug)
		fprintf(stderr, "vmem: arena \"%s\": %s(%#llx, %llu): not an outstanding allocation\n",
			vm->name, fn, (unsigned long long)addr, (unsigned long long)size);
}

enum free_kind { FREE_ALLOC, FREE_XALLOC, FREE_SLAB };

/* Free [addr, addr + size), lock held on entry, dropped on return. */
static HOT_INLINE int arena_free_locked(vmem_t *vm, vmem_addr_t addr, vmem_size_t rsize,
					enum free_kind kind)
{
	bt_idx *link;
	bt_idx bi = hash_find(vm, addr, &link);
	struct bt *b = BT(vm, bi);
	bool ok = bi != BT_NIL && b->size == rsize &&
		  (kind == FREE_SLAB ? b->type == BT_BUSY_QC : b->type != BT_BUSY_QC);
	/* under VMC_DEBUG, vmem_free of a cached size must be a cached object */
	if (kind == FREE_ALLOC && vm->debug && b->type == BT_BUSY_X && rsize <= vm->qcache_max)
		ok = false;
	if (unlikely(!ok)) {
		pthread_mutex_unlock(&vm->lock);
		arena_bad_free(vm, kind == FREE_XALLOC ? "vmem_xfree" : "vmem_free", addr, rsize);
		return EINVAL;
	}
	if (kind == FREE_SLAB)
		b->left = b->right = BT_NIL; /* the slab's record, kept there by qcache.c (I7) */
	hash_unlink(vm, link, bi);
	bt_idx fi = seg_release(vm, bi);
	if (kind != FREE_SLAB) {
		vm->frees++;
		if (rsize <= vm->qcache_max &&
		    __atomic_sub_fetch(&vm->arena_small, 1, __ATOMIC_RELAXED) == 0)
			qcache_gate_free(vm, true);
	}
	bt_idx si = (vm->source != NULL || vm->releasefn != NULL) ? seg_whole_span(vm, fi) : BT_NIL;
	if (si != BT_NIL) {
		vmem_addr_t saddr = BT(vm, si)->start;
		vmem_size_t ssize = BT(vm, si)->size;
		seg_span_free(vm, si);
		vm->releases++;
		arena_wakeup(vm);
		pthread_mutex_unlock(&vm->lock);
		import_release(vm, saddr, ssize);
		return 0;
	}
	arena_wakeup(vm);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* vmem_free past the caches. */
static HOT_INLINE int arena_free_any(vmem_t *vm, vmem_addr_t addr, vmem_size_t rsize)
{
	if (rsize != 0 && rsize <= vm->qcache_max) {
		/* a cached size while the arena also holds segments of cached
		 * sizes (first fit, next fit, xalloc): ask the hash who owns it */
		pthread_mutex_lock(&vm->lock);
		bt_idx i = hash_lookup(vm, addr);
		if ((i == BT_NIL || BT(vm, i)->type == BT_BUSY_QC || BT(vm, i)->size != rsize) &&
		    qcache_owns(vm, addr, rsize)) {
			pthread_mutex_unlock(&vm->lock);
			return qcache_free(vm, addr, rsize);
		}
		/* the arena's own segment, or nobody's: the arena path decides */
		return arena_free_locked(vm, addr, rsize, FREE_ALLOC);
	}
	pthread_mutex_lock(&vm->lock);
	return arena_free_locked(vm, addr, rsize, FREE_ALLOC);
}

/* vmem_free (in qcache.c) past the caches' common path; out of line, as
 * arena_vmem_alloc. */
NOINLINE int arena_vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	if (unlikely(vm == NULL || size == 0))
		return EINVAL;
	/* a cached size, and the arena holds none of its own: the caches' */
	if (size - 1 < vm->qcache_max && __atomic_load_n(&vm->arena_small, __ATOMIC_RELAXED) == 0)
		return qcache_free(vm, addr, round_q(vm, size));
	return arena_free_any(vm, addr, round_q(vm, size));
}

VMEM_API int vmem_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	if (vm == NULL || size == 0)
		return EINVAL;
	pthread_mutex_lock(&vm->lock);
	return arena_free_locked(vm, addr, round_q(vm, size), FREE_XALLOC);
}

int arena_slab_alloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, int flags,
		     vmem_addr_t *addrp)
{
	struct fitreq req = fitreq_any(size, align);
	(void)flags; /* the cache sleeps itself, so that its own frees wake it */
	return arena_alloc(vm, &req, VM_NOSLEEP, BT_BUSY_QC, addrp);
}

int arena_small_alloc(vmem_t *vm, vmem_size_t size, vmem_addr_t *addrp)
{
	struct fitreq req = fitreq_any(size, vm->quantum);
	/* the caller counts the failure: this is the last try of one call */
	return arena_alloc(vm, &req, VM_NOSLEEP | VM_NOFAILCOUNT, BT_BUSY, addrp);
}

void arena_slab_free(vmem_t *vm, vmem_addr_t addr)
{
	pthread_mutex_lock(&vm->lock);
	bt_idx i = hash_lookup(vm, addr);
	vmem_size_t size = i != BT_NIL ? BT(vm, i)->size : 0;
	arena_free_locked(vm, addr, size, FREE_SLAB);
}

/* ---- spans ------------------------------------------------------------------ */

VMEM_API int vmem_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, int flags)
{
	if (vm == NULL || flags_check(flags, VM_ALLOCFLAGS) != 0 || size == 0 ||
	    ((addr | size) & (vm->quantum - 1)) != 0 || size - 1 > VMEM_ADDR_MAX - addr)
		return EINVAL;
	pthread_mutex_lock(&vm->lock);
	int err = seg_add_span(vm, addr, size, false, NULL);
	if (err == 0)
		arena_wakeup(vm);
	pthread_mutex_unlock(&vm->lock);
	return err;
}

VMEM_API void vmem_reap(vmem_t *vm)
{
	if (vm == NULL)
		return;
	if (vm->qc != NULL)
		qcache_reap(vm);
	pthread_mutex_lock(&vm->lock);
	arena_wakeup(vm);
	pthread_mutex_unlock(&vm->lock);
}
