/*
 * arena.c - the arena layer's entry points: set-up and tear-down,
 * allocation and freeing, slabs for the quantum caches, sleeping and
 * waking, fork.  The public functions are in vmem.c, the front door, which
 * also states how the layers fit together; this statement is the arena's.
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
 *
 * Memory.  Once the live set outgrows the caches, an operation costs what
 * it misses, so a tag is built to be one line of memory.  Tags refer to
 * each other by 32-bit index, which keeps one at 32 bytes, two to a cache
 * line and never across two: start, size, address links, and one pair of
 * list links (freelist, span list, hash chain or unused chain, by type).
 * What only the treaps and the caches' slabs need (treap links and max, or
 * a slab's cookie) is the tag's cold part, 16 bytes at the same index in a
 * second table that is mapped the first time the arena needs a treap or a
 * slab (tree_need_nodes): an ID arena served by instant fit never maps it,
 * and holds 32 bytes of tag per segment.  Whether a neighbour is free, a
 * free reads in the free map, a bit per tag (I13), so that a neighbour's
 * tag, a cache miss of its own once tags recycle, is touched only to merge
 * with it.
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
 * The newest free segment waits beside the treap until the next one comes
 * (tree_pending), and every search looks at it too: a first-fit arena that
 * frees a segment and takes it straight back, as churn does, never walks
 * the treap for it nor touches its cold part.
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
 * release wakes them.  The front door's pthread_atfork handlers take every
 * arena's lock before fork (arena_fork_prepare) and reset it in the child
 * (arena_fork_child), which can go on using every arena.  A function named
 * _locked is entered and left with the lock held; one named _then_unlock
 * is entered with it and leaves without it; one named _relocking is
 * entered and left with it but drops it in between, so its caller must
 * look again at what it read before.
 *
 * Quantum caches.  Sizes up to qcache_max are served by the caches above
 * the arena (qcache.c), which take their slabs from it as segments of type
 * BT_BUSY_QC and keep a cookie (their record) in each slab's tag.  The
 * arena knows nothing else of them.  It counts its own segments of those
 * sizes and keeps the free gate from that count (vmem.c explains it), and
 * before an allocation sleeps or fails it calls the reap hook that the
 * front door installed (arena_set_caches), so that objects idle in the
 * caches can meet it.  First-fit, next-fit and constrained requests come
 * straight to the arena, since their addresses are the point.
 *
 * Failure.  Every operation reserves the tags it may need before it
 * changes anything, so running out of memory for tags gives ENOMEM and an
 * untouched arena, never half a split.  Hash resizing is best effort and
 * never fails an operation.
 *
 * ==== Invariants (I1..I11, I13 checked by check.c, I12 by the tests) =======
 *
 * I1  The address list is a circular doubly linked list through BT_HEAD;
 *     prev and next agree, and starts never decrease along it.
 * I2  Spans do not overlap; the span list holds exactly the span markers,
 *     in address order, and so does the span treap once the tags' cold
 *     parts are mapped; before, there is one span at most.  The segments
 *     after a marker tile its span exactly.
 * I3  No two free segments are adjacent within a span.
 * I4  Once built, free segment of size s is on freelist floor(log2 s) and
 *     on no other; bit k of fl_bitmap is set iff freelist k is non-empty.
 *     Before, every list is empty.
 * I5  Once built, the treap and the pending segment hold exactly the free
 *     segments, each once: the treap in address order, with the heap
 *     property on priorities, each node's max the largest size in its
 *     subtree, BT_NIL's max 0; the pending segment, if any, outside it with
 *     its cold part clear.  Before, both are empty, and a built treap
 *     implies its cold parts are mapped.
 * I6  The hash holds exactly the allocated segments, each in the bucket of
 *     its start; nalloc is their number.
 * I7  Every tag is either a sentinel, in the address list, on the unused
 *     chain, or in the fresh run at the end of the table (never used: all
 *     zero); in use plus unused plus fresh equals tags mapped.  Once mapped,
 *     the cold parts cover every tag mapped, and those of a busy, unused or
 *     fresh tag are clear, but for a quantum-cache slab's left and right,
 *     which hold its cookie (arena_slab_set_cookie) until it is freed.
 * I8  Every span and segment is non-empty, starts on a quantum boundary
 *     and has a size that is a multiple of the quantum; no span wraps.
 * I9  span_total, free_total, alloc_total, import_total, nspans, nfree and
 *     nalloc equal what the tags say (free_total is derived: span_total -
 *     alloc_total).
 * I10 When the arena can release, no imported span is wholly free between
 *     calls.
 * I11 The hash load stays within [1/8, 1] (or the table is at its minimum
 *     or maximum size, or a resize could not be mapped).
 * I12 An operation that fails changes nothing but the fails counter (and
 *     spans that an import brought in on the way).  It is a property of
 *     calls, not of a state: the tests compare a snapshot of the arena
 *     before and after every failing call.
 * I13 Bit i of the free map is set iff tag i is a free segment; the map
 *     covers every tag mapped, and its bits past them are clear.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena_impl.h"

/* ---- helpers --------------------------------------------------------------- */

/* 0 if size is 0 or rounds past 2^64, with no test of its own: size + q1
 * then wraps to below the quantum, and the mask clears it. */
static inline vmem_size_t round_q(const struct arena *ar, vmem_size_t size)
{
	vmem_size_t q1 = ar->quantum - 1;
	return (size + q1) & ~q1;
}

void arena_wakeup_locked(struct arena *ar)
{
	if (ar->nwaiters != 0)
		pthread_cond_broadcast(&ar->cv);
}

/* Lock held; waits on the condition variable, which drops it meanwhile. */
static void arena_wait_locked(struct arena *ar, unsigned int poll_ms)
{
	ar->waits++;
	__atomic_fetch_add(&ar->nwaiters, 1, __ATOMIC_RELAXED);
	if (poll_ms != 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)poll_ms * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&ar->cv, &ar->lock, &ts);
	} else {
		pthread_cond_wait(&ar->cv, &ar->lock);
	}
	__atomic_fetch_sub(&ar->nwaiters, 1, __ATOMIC_RELAXED);
}

/* Take an imported span out again if it is still wholly free.  Lock held
 * on entry and on return, DROPPED around the release. */
static void arena_unimport_relocking(struct arena *ar, bt_idx si, vmem_addr_t addr,
				     vmem_size_t size)
{
	const struct bt *s = BT(ar, si);
	QUIET_BEGIN(ar); /* the span may be gone, its tag unused */
	bool same = s->type == BT_SPAN_IMPORT && s->start == addr && s->size == size;
	QUIET_END(ar);
	if (!same)
		return;
	if (!seg_span_free(ar, si))
		return;
	ar->releases++;
	pthread_mutex_unlock(&ar->lock);
	import_release(ar, addr, size);
	pthread_mutex_lock(&ar->lock);
}

/* The small-size count moved by delta (+1 or -1), lock held: the gate
 * closes as the first segment of a cached size appears in the arena and
 * opens when the last one goes. */
static inline void arena_small_count_locked(struct arena *ar, int delta)
{
	uint64_t n = ar->arena_small, now = n + (uint64_t)(int64_t)delta;
	__atomic_store_n(&ar->arena_small, now, __ATOMIC_RELAXED); /* arena_holds_small */
	if (n == 0 || now == 0)
		__atomic_store_n(&ar->free_gate, now == 0 ? ar->gate_open : 0, __ATOMIC_RELAXED);
}

bool arena_holds_small(const struct arena *ar)
{
	return __atomic_load_n(&ar->arena_small, __ATOMIC_RELAXED) != 0;
}

/* ---- life cycle ---------------------------------------------------------------- */

int arena_init(struct arena *ar, vmem_t *self, const char *name, vmem_addr_t base,
	       vmem_size_t size, vmem_size_t quantum, int debug)
{
	ar->self = self;
	if (tagslab_init(ar) != 0 || hash_init(ar) != 0)
		return ENOMEM;
	os_lock_init(&ar->lock, &ar->cv);
	ar->quantum = quantum;
	ar->qshift = (unsigned int)__builtin_ctzll(quantum);
	ar->tree_seed = (uint64_t)(uintptr_t)ar * 0x9e3779b97f4a7c15ull;
	ar->debug = debug;
	if (name != NULL) {
		strncpy(ar->name, name, VMEM_NAMELEN - 1);
		ar->name[VMEM_NAMELEN - 1] = '\0';
	}
	if (size != 0 && seg_add_span(ar, base, size, false, NULL) != 0)
		return ENOMEM;
	return 0;
}

void arena_set_caches(struct arena *ar, vmem_size_t small_max, vmem_size_t gate_open,
		      arena_reap_fn *reap, void *reap_arg)
{
	pthread_mutex_lock(&ar->lock);
	ar->small_max = small_max;
	ar->gate_open = gate_open;
	ar->reap = reap;
	ar->reap_arg = reap_arg;
	__atomic_store_n(&ar->free_gate, ar->arena_small == 0 ? gate_open : 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&ar->lock);
}

void arena_fini(struct arena *ar)
{
	if (ar->bt != NULL) {
		/* nobody else may use the arena now: release without the lock */
		for (bt_idx si = BT(ar, BT_HEAD)->lnext; si != BT_HEAD; si = BT(ar, si)->lnext) {
			const struct bt *s = BT(ar, si);
			if (s->type == BT_SPAN_IMPORT)
				import_release(ar, s->start, s->size);
		}
	}
	if (ar->hash != NULL) {
		pthread_cond_destroy(&ar->cv);
		pthread_mutex_destroy(&ar->lock);
	}
	hash_fini(ar);
	tagslab_fini(ar);
}

const char *arena_name(const struct arena *ar)
{
	return ar->name;
}

vmem_size_t arena_quantum(const struct arena *ar)
{
	return ar->quantum;
}

vmem_size_t arena_round(const struct arena *ar, vmem_size_t size)
{
	return round_q(ar, size);
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
static inline void arena_allocated_locked(struct arena *ar, vmem_size_t size, enum alloc_kind kind)
{
	ar->ever_allocated = true;
	if (kind == ALLOC_SLAB)
		return;
	ar->allocs++;
	if (size <= ar->small_max)
		arena_small_count_locked(ar, +1);
}

/* A next-fit allocation [a, a + size) succeeded in busy tag bi: the rotor
 * moves to its end (and only on success). */
static inline void arena_rotor_move_locked(struct arena *ar, vmem_addr_t a, vmem_size_t size,
					   bt_idx bi)
{
	ar->rotor = a + size;
	ar->rotor_hint = BT(ar, bi)->next;
	ar->rotor_last = a;
}

/* The allocation loop: search, import, reap the caches, reclaim, sleep.
 * Lock held on entry, RELEASED on return.  Not static: arena_alloc, an
 * inline function with external linkage, calls it. */
int arena_alloc_then_unlock(struct arena *ar, const struct fitreq *req, int flags,
				   unsigned int type, enum alloc_kind kind, vmem_addr_t *addrp)
{
	int policy = flags & VM_POLICIES;
	bool imported = false, reclaimed = false, reaped = false;
	bt_idx newspan = BT_NIL;
	vmem_addr_t ns_addr = 0;
	vmem_size_t ns_size = 0;

	for (;;) {
		vmem_addr_t a;
		bt_idx fi = seg_find(ar, req, policy, &a);
		if (fi != BT_NIL) {
			bt_idx bi;
			if (seg_carve(ar, fi, a, req->size, type, &bi) != 0)
				break; /* no memory for tags: fail, however we sleep */
			if (policy == VM_NEXTFIT)
				arena_rotor_move_locked(ar, a, req->size, bi);
			arena_allocated_locked(ar, req->size, kind);
			tree_kept_locked(ar);
			/* the search may have found room elsewhere, freed while the
			 * lock was dropped for the import: keep I10 */
			if (newspan != BT_NIL)
				arena_unimport_relocking(ar, newspan, ns_addr, ns_size);
			pthread_mutex_unlock(&ar->lock);
			*addrp = a;
			return 0;
		}
		if (newspan != BT_NIL) {
			/* the import did not help (a callback ignored the
			 * constraints, or others took it): give it back */
			arena_unimport_relocking(ar, newspan, ns_addr, ns_size);
			newspan = BT_NIL;
		}
		if (!imported && (ar->source != NULL || ar->importfn != NULL)) {
			imported = true;
			if (import_span_relocking(ar, req, flags, &newspan) == 0) {
				ns_addr = BT(ar, newspan)->start;
				ns_size = BT(ar, newspan)->size;
				arena_wakeup_locked(ar); /* others may want the rest */
				continue;
			}
			newspan = BT_NIL;
		}
		if (!reaped && ar->reap != NULL) {
			/* objects idle in the caches may be what is missing: the
			 * front door's hook, called without the lock */
			reaped = true;
			pthread_mutex_unlock(&ar->lock);
			bool freed = ar->reap(ar->reap_arg);
			pthread_mutex_lock(&ar->lock);
			if (freed)
				imported = false; /* released spans make room under the limit */
			continue;
		}
		if (!reclaimed && ar->reclaimfn != NULL) {
			vmem_reclaim_fn *fn = ar->reclaimfn;
			void *arg = ar->reclaim_arg;
			reclaimed = true;
			pthread_mutex_unlock(&ar->lock);
			fn(ar->self, arg, flags);
			pthread_mutex_lock(&ar->lock);
			continue;
		}
		if (!(flags & VM_SLEEP))
			break;
		/* a source's frees, and a cache free that races with the wait,
		 * may not signal this arena: look again now and then */
		bool poll = ar->source != NULL || ar->importfn != NULL || ar->reap != NULL;
		arena_wait_locked(ar, poll ? 20 : 0);
		imported = reclaimed = reaped = false;
	}
	if (newspan != BT_NIL)
		arena_unimport_relocking(ar, newspan, ns_addr, ns_size);
	tree_failed_locked(ar);
	if (kind == ALLOC_CALLER)
		ar->fails++;
	pthread_mutex_unlock(&ar->lock);
	return ENOMEM;
}

/* The end of arena_alloc's fast paths: [start of fi, + size), which a
 * search of the policy would have found too.  Lock held on entry,
 * RELEASED on return. */
static HOT_INLINE int arena_take_then_unlock(struct arena *ar, bt_idx fi, vmem_size_t size,
					     bool nextfit, vmem_addr_t *addrp)
{
	vmem_addr_t a = BT(ar, fi)->start;
	bt_idx bi;
	int err = seg_carve(ar, fi, a, size, BT_BUSY, &bi);
	if (likely(err == 0)) {
		if (nextfit)
			arena_rotor_move_locked(ar, a, size, bi);
		arena_allocated_locked(ar, size, ALLOC_CALLER);
		/* before the unlock, so that a need not be kept across it */
		*addrp = a;
	} else {
		ar->fails++; /* no memory for tags, as in arena_alloc_then_unlock */
	}
	pthread_mutex_unlock(&ar->lock);
	return err;
}

/* vmem_alloc past the caches: the common instant-fit and next-fit cases
 * inline, the rest by the allocation loop.  Inlined into its one caller,
 * the front door's slow path, so that the arena path pays one call. */
HOT_INLINE int arena_alloc(struct arena *ar, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	int policy = flags & VM_POLICIES;
	pthread_mutex_lock(&ar->lock);
	if (likely(policy == 0 || policy == VM_INSTANTFIT)) {
		/* the common case in one breath: a list that surely fits */
		bt_idx fi = freelist_surely_fits(ar, size);
		if (likely(fi != BT_NIL))
			return arena_take_then_unlock(ar, fi, size, false, addrp);
	} else if (policy == VM_NEXTFIT) {
		/* PID-style: the previous allocation mostly left a free
		 * segment at the rotor, and its start is the answer.  The
		 * general path (a request, the policy switch, the import
		 * loop) costs more than this allocation itself. */
		bt_idx fi = seg_nextfit_hint(ar, size);
		if (likely(fi != BT_NIL))
			return arena_take_then_unlock(ar, fi, size, true, addrp);
	}
	struct fitreq req = fitreq_any(size, ar->quantum);
	return arena_alloc_then_unlock(ar, &req, flags, BT_BUSY, ALLOC_CALLER, addrp);
}

int arena_xalloc(struct arena *ar, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
		 vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr, int flags,
		 vmem_addr_t *addrp)
{
	if (addrp == NULL || size == 0 || arena_flags_check(flags, VM_ALLOCFLAGS) != 0)
		return EINVAL;
	vmem_size_t q1 = ar->quantum - 1;
	struct fitreq req = {
		.size = round_q(ar, size),
		.align = align == 0 ? ar->quantum : align,
		.phase = phase,
		.nocross = nocross,
		.minaddr = minaddr,
		.maxaddr = maxaddr,
	};
	if (req.size == 0 || !vmem_is_pow2(req.align) || (req.align & q1) != 0 || (phase & q1) != 0 ||
	    phase >= req.align || minaddr > maxaddr)
		return EINVAL;
	if (nocross != 0 && (!vmem_is_pow2(nocross) || (nocross & q1) != 0 || nocross < req.size))
		return EINVAL;
	pthread_mutex_lock(&ar->lock);
	return arena_alloc_then_unlock(ar, &req, flags, BT_BUSY_X, ALLOC_CALLER, addrp);
}

/* ---- free ------------------------------------------------------------------- */

/* ---- debug reports ------------------------------------------------------------ */

/* What a free gives back: vmem_free's segment (of a size the caches serve
 * or not), vmem_xfree's, or a cache's slab. */
enum free_kind { FREE_ALLOC, FREE_ALLOC_CACHED, FREE_XALLOC, FREE_SLAB };


void arena_misuse(const struct arena *ar, const char *fn, vmem_addr_t addr, vmem_size_t size,
		  const char *why)
{
	if (ar->debug == OS_DEBUG_OFF)
		return;
	fprintf(stderr, "vmem: arena \"%s\": %s(%#llx, %llu): %s\n", ar->name, fn,
		(unsigned long long)addr, (unsigned long long)size, why);
	if (ar->debug == OS_DEBUG_ABORT)
		abort(); /* the caller asked for it: VMEM_DEBUG=abort */
}

/* Lock held: what lies at addr (arena_whereis). */
static enum arena_where arena_whereis_locked(const struct arena *ar, vmem_addr_t addr,
					     vmem_addr_t *startp, vmem_size_t *sizep)
{
	bt_idx si = tree_span_floor(ar, addr);
	if (si == BT_NIL || bt_last(BT(ar, si)) < addr)
		return ARENA_OUTSIDE;
	/* a walk of the span's segments: reports only, never a hot path */
	for (bt_idx i = BT(ar, si)->next; i != BT_HEAD && !bt_is_span(BT(ar, i)); i = BT(ar, i)->next) {
		const struct bt *b = BT(ar, i);
		if (bt_last(b) < addr)
			continue;
		*startp = b->start;
		*sizep = b->size;
		if (b->type == BT_FREE)
			return ARENA_IN_FREE;
		return b->type == BT_BUSY_QC ? ARENA_IN_SLAB : ARENA_IN_ALLOC;
	}
	return ARENA_OUTSIDE; /* not reached: segments tile their span (I2) */
}

enum arena_where arena_whereis(struct arena *ar, vmem_addr_t addr, vmem_addr_t *startp,
			       vmem_size_t *sizep)
{
	pthread_mutex_lock(&ar->lock);
	enum arena_where w = arena_whereis_locked(ar, addr, startp, sizep);
	pthread_mutex_unlock(&ar->lock);
	return w;
}

/* A free found no allocation of this size at addr; lock held.  Under
 * debug, say which mistake it is. */
static NOINLINE __attribute__((cold)) void arena_bad_free_locked(const struct arena *ar,
								 enum free_kind kind, vmem_addr_t addr,
								 vmem_size_t size, const struct bt *b)
{
	if (ar->debug == OS_DEBUG_OFF)
		return;
	const char *fn = kind == FREE_XALLOC ? "vmem_xfree" : "vmem_free";
	char why[160];
	vmem_addr_t start = 0;
	vmem_size_t len = 0;
	if (b != NULL && b->type == BT_BUSY_QC) {
		snprintf(why, sizeof(why), "a quantum cache's slab, not an allocation");
	} else if (b != NULL && b->size == size) {
		snprintf(why, sizeof(why), "allocated by vmem_xalloc: free it with vmem_xfree");
	} else if (b != NULL) {
		snprintf(why, sizeof(why), "wrong size: allocated with size %llu",
			 (unsigned long long)b->size);
	} else {
		switch (arena_whereis_locked(ar, addr, &start, &len)) {
		case ARENA_OUTSIDE:
			snprintf(why, sizeof(why), "outside every span");
			break;
		case ARENA_IN_ALLOC:
		case ARENA_IN_SLAB:
			snprintf(why, sizeof(why), "inside another allocation [%#llx, +%llu)",
				 (unsigned long long)start, (unsigned long long)len);
			break;
		case ARENA_IN_FREE:
			snprintf(why, sizeof(why), "never allocated");
			for (unsigned int k = 0; k < ARENA_RECENT_FREES; k++)
				if (ar->recent[k].addr == addr && ar->recent[k].size != 0)
					snprintf(why, sizeof(why), "double free");
			break;
		}
	}
	arena_misuse(ar, fn, addr, size, why);
}

/* The end of a free in an arena that can release: free segment fi goes
 * back to the source if it fills its imported span (I10).  Lock held on
 * entry, RELEASED on return.  Out of line: the other arenas never come
 * here, and their frees keep fewer registers. */
static NOINLINE int arena_freed_release_then_unlock(struct arena *ar, bt_idx fi)
{
	bt_idx si = seg_whole_span(ar, fi);
	if (si != BT_NIL) {
		vmem_addr_t saddr = BT(ar, si)->start;
		vmem_size_t ssize = BT(ar, si)->size;
		seg_span_free(ar, si);
		ar->releases++;
		arena_wakeup_locked(ar);
		pthread_mutex_unlock(&ar->lock);
		import_release(ar, saddr, ssize);
		return 0;
	}
	arena_wakeup_locked(ar);
	pthread_mutex_unlock(&ar->lock);
	return 0;
}

/* Free [addr, addr + rsize).  Lock held on entry, RELEASED on return. */
static HOT_INLINE int arena_free_then_unlock(struct arena *ar, vmem_addr_t addr, vmem_size_t rsize,
					     enum free_kind kind)
{
	bt_idx *link;
	bt_idx bi = hash_find(ar, addr, &link);
	struct bt *b = BT(ar, bi);
	bool ok = bi != BT_NIL && b->size == rsize &&
		  (kind == FREE_SLAB ? b->type == BT_BUSY_QC : b->type != BT_BUSY_QC);
	/* vmem_free of a cached size never frees a vmem_xalloc segment: the
	 * contract sends those to vmem_xfree */
	if (kind == FREE_ALLOC_CACHED && b->type == BT_BUSY_X)
		ok = false;
	if (unlikely(!ok)) {
		if (kind != FREE_SLAB)
			arena_bad_free_locked(ar, kind, addr, rsize, bi != BT_NIL ? b : NULL);
		pthread_mutex_unlock(&ar->lock);
		return EINVAL;
	}
	if (unlikely(ar->debug != OS_DEBUG_OFF) && kind != FREE_SLAB) {
		ar->recent[ar->recent_next].addr = addr;
		ar->recent[ar->recent_next].size = rsize;
		ar->recent_next = (ar->recent_next + 1) % ARENA_RECENT_FREES;
	}
	if (kind == FREE_SLAB)
		BN(ar, bi)->left = BN(ar, bi)->right = BT_NIL; /* the slab's cookie (I7) */
	hash_unlink(ar, link, bi);
	bt_idx fi = seg_release(ar, bi);
	/* the shrink hash_unlink leaves to its caller (I11), with the tag
	 * done with */
	if (unlikely(ar->nalloc < ar->hash_shrink))
		hash_resize(ar);
	if (kind != FREE_SLAB) {
		ar->frees++;
		if (rsize <= ar->small_max)
			arena_small_count_locked(ar, -1);
	}
	/* source != NULL || releasefn != NULL, in one test */
	if (unlikely(((uintptr_t)ar->source | (uintptr_t)ar->releasefn) != 0))
		return arena_freed_release_then_unlock(ar, fi);
	arena_wakeup_locked(ar);
	pthread_mutex_unlock(&ar->lock);
	return 0;
}

/* Inlined into the front door's slow path, as arena_alloc. */
HOT_INLINE int arena_free(struct arena *ar, vmem_addr_t addr, vmem_size_t size, bool cached)
{
	pthread_mutex_lock(&ar->lock);
	return arena_free_then_unlock(ar, addr, size, cached ? FREE_ALLOC_CACHED : FREE_ALLOC);
}

int arena_xfree(struct arena *ar, vmem_addr_t addr, vmem_size_t size)
{
	pthread_mutex_lock(&ar->lock);
	return arena_free_then_unlock(ar, addr, round_q(ar, size), FREE_XALLOC);
}

/* The slab of slabsize whose objects addr may be one of, lock held. */
static bt_idx arena_slab_at_locked(const struct arena *ar, vmem_addr_t addr,
				   vmem_size_t slabsize, vmem_size_t slabalign)
{
	bt_idx i = hash_lookup(ar, addr & ~(slabalign - 1));
	const struct bt *b = BT(ar, i);
	return i != BT_NIL && b->type == BT_BUSY_QC && b->size == slabsize ? i : BT_NIL;
}

int arena_free_small(struct arena *ar, vmem_addr_t addr, vmem_size_t size,
		     vmem_size_t slabsize, vmem_size_t slabalign)
{
	pthread_mutex_lock(&ar->lock);
	bt_idx i = hash_lookup(ar, addr);
	bool own = i != BT_NIL && BT(ar, i)->type != BT_BUSY_QC && BT(ar, i)->size == size;
	if (!own && arena_slab_at_locked(ar, addr, slabsize, slabalign) != BT_NIL) {
		pthread_mutex_unlock(&ar->lock);
		return ARENA_SLAB_OBJECT;
	}
	/* the arena's own segment, or nobody's: the arena path decides */
	return arena_free_then_unlock(ar, addr, size, FREE_ALLOC_CACHED);
}

/* ---- slabs and single objects for the caches ---------------------------------- */

int arena_slab_alloc(struct arena *ar, vmem_size_t size, vmem_size_t align, vmem_addr_t *addrp)
{
	struct fitreq req = fitreq_any(size, align);
	/* never sleeps: the cache sleeps itself, so that its own frees wake it */
	pthread_mutex_lock(&ar->lock);
	/* the slab's cookie is kept in its tag's cold part */
	if (unlikely(tree_need_nodes(ar) != 0)) {
		pthread_mutex_unlock(&ar->lock);
		return ENOMEM;
	}
	return arena_alloc_then_unlock(ar, &req, VM_NOSLEEP, BT_BUSY_QC, ALLOC_SLAB, addrp);
}

void arena_slab_set_cookie(struct arena *ar, vmem_addr_t base, uintptr_t cookie)
{
	pthread_mutex_lock(&ar->lock);
	/* kept in the tag's cold part, whose treap links a busy tag does not
	 * use; arena_slab_alloc mapped it, and the slab's free clears it (I7) */
	bt_node_set_cookie(BN(ar, hash_lookup(ar, base)), cookie);
	pthread_mutex_unlock(&ar->lock);
}

void arena_slab_free(struct arena *ar, vmem_addr_t addr)
{
	pthread_mutex_lock(&ar->lock);
	bt_idx i = hash_lookup(ar, addr);
	vmem_size_t size = i != BT_NIL ? BT(ar, i)->size : 0;
	arena_free_then_unlock(ar, addr, size, FREE_SLAB);
}

void arena_slab_cookies(struct arena *ar, vmem_size_t slabsize, vmem_size_t slabalign,
			const vmem_addr_t *obj, uint32_t n, uintptr_t *cookies)
{
	pthread_mutex_lock(&ar->lock);
	for (uint32_t k = 0; k < n; k++) {
		bt_idx i = arena_slab_at_locked(ar, obj[k], slabsize, slabalign);
		cookies[k] = i != BT_NIL ? bt_node_cookie(BN(ar, i)) : 0;
	}
	pthread_mutex_unlock(&ar->lock);
}

int arena_small_alloc(struct arena *ar, vmem_size_t size, vmem_addr_t *addrp)
{
	struct fitreq req = fitreq_any(size, ar->quantum);
	pthread_mutex_lock(&ar->lock);
	return arena_alloc_then_unlock(ar, &req, VM_NOSLEEP, BT_BUSY, ALLOC_SMALL, addrp);
}

void arena_count_fail(struct arena *ar)
{
	pthread_mutex_lock(&ar->lock);
	ar->fails++;
	pthread_mutex_unlock(&ar->lock);
}

void arena_sleep(struct arena *ar, unsigned int ms)
{
	pthread_mutex_lock(&ar->lock);
	arena_wait_locked(ar, ms);
	pthread_mutex_unlock(&ar->lock);
}

void arena_wake(struct arena *ar)
{
	if (__atomic_load_n(&ar->nwaiters, __ATOMIC_RELAXED) == 0)
		return;
	pthread_mutex_lock(&ar->lock);
	arena_wakeup_locked(ar);
	pthread_mutex_unlock(&ar->lock);
}

void arena_report_leaks(struct arena *ar, unsigned int *shown, uint64_t *n, vmem_size_t *units)
{
	pthread_mutex_lock(&ar->lock);
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next) {
		const struct bt *b = BT(ar, i);
		if (!bt_is_busy(b) || b->type == BT_BUSY_QC)
			continue; /* a slab's objects are the caches' to report */
		if ((*shown)++ < VMEM_LEAKS_SHOWN)
			fprintf(stderr, "vmem: arena \"%s\": leaked [%#llx, %#llx] (%llu units)\n",
				ar->name, (unsigned long long)b->start, (unsigned long long)bt_last(b),
				(unsigned long long)b->size);
		(*n)++;
		*units += b->size;
	}
	pthread_mutex_unlock(&ar->lock);
}

/* ---- spans ------------------------------------------------------------------ */

int arena_add(struct arena *ar, vmem_addr_t addr, vmem_size_t size, int flags)
{
	if (arena_flags_check(flags, VM_ALLOCFLAGS) != 0 || size == 0 ||
	    ((addr | size) & (ar->quantum - 1)) != 0 || size - 1 > VMEM_ADDR_MAX - addr)
		return EINVAL;
	pthread_mutex_lock(&ar->lock);
	int err = seg_add_span(ar, addr, size, false, NULL);
	if (err == 0)
		arena_wakeup_locked(ar);
	pthread_mutex_unlock(&ar->lock);
	return err;
}

/* ---- fork ------------------------------------------------------------------- */

void arena_fork_prepare(struct arena *ar)
{
	pthread_mutex_lock(&ar->lock);
}

void arena_fork_parent(struct arena *ar)
{
	pthread_mutex_unlock(&ar->lock);
}

void arena_fork_child(struct arena *ar)
{
	/* Only this thread survives, and it holds the lock (prepare took
	 * it): release it.  Threads that slept on the condition variable in
	 * the parent do not exist here, but the variable still counts them,
	 * and pthread_cond_destroy would wait for them for ever: a new one
	 * is made over the old memory instead, without destroying it. */
	memset(&ar->cv, 0, sizeof(ar->cv));
	os_cond_init(&ar->cv);
	ar->nwaiters = 0;
	pthread_mutex_unlock(&ar->lock);
}
