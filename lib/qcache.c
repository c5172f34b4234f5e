/*
 * qcache.c - quantum caches (paper sections 3 and 4.4.4).
 *
 * An arena created with qcache_max > 0 has one cache per multiple of the
 * quantum up to qcache_max.  vmem_alloc and vmem_free of those sizes go
 * through three layers:
 *
 *  - the CPU layer: for each CPU, a loaded and a previous magazine (stacks
 *    of free objects).  Per CPU rather than per thread: a thread-local
 *    cache would need thread-exit hooks, which crash once the library is
 *    dlclose'd (and leak when they are removed), and it would strand
 *    objects in idle threads.  The common path is a restartable sequence
 *    (rseq(2), rseq.h), inlined into vmem_alloc and vmem_free by the front
 *    door: it reads the CPU's slot and ends with one plain store, and the
 *    kernel restarts it if the thread loses the CPU first; no lock, no
 *    atomic instruction.  Everything else on a slot (magazine exchanges,
 *    reaps, statistics, fork) takes the slot's spinlock, which sends the
 *    sequences to the slow path, and fences the CPU when taken from
 *    another one.  Without rseq the common path takes the spinlock.  The
 *    loaded magazine's rounds are bias + pushes - pops, so that a pop or a
 *    push commits with a single store, and pops and pushes are the exact
 *    counts of hits and of frees into magazines.
 *  - the depot: full and empty magazines, under the cache's mutex.  When
 *    taking that mutex has to wait often, magazines grow (paper 3.4).
 *  - the slab layer: objects come from slabs, runs of 64 objects imported
 *    from the arena as one segment (64 so a slab's free map is one word;
 *    the paper's 3 x qcache_max would give 4 IDs a slab for an ID arena).
 *    A slab is aligned to the power of two at or above its size, so an
 *    object finds its slab by masking, and the arena, which keeps each
 *    slab's record as the segment's cookie, finds the record.  Address 0
 *    is an ordinary object: nothing uses 0 as "none".
 *
 * The caches call only down: into the arena through arena.h (slabs and
 * their cookies, single objects, sleeping and waking, counting a failure)
 * and into the OS layer.  They never see a tag, the hash or the arena's
 * lock.  Lock order: CPU spinlock, then cache mutex, then (inside the
 * arena's functions) arena mutex.  Nothing is held while the arena imports
 * or sleeps.  Objects held by caches count as allocated in the arena (the
 * slabs are allocated segments) until a reap gives wholly free slabs back.
 *
 * ==== Invariants (checked by check.c, cited as Q1..Q7) =====================
 *
 * Q1 Objects are conserved: in each cache, nslabs x 64 equals the objects
 *    free in slabs, plus the rounds in the CPUs' magazines (loaded and
 *    previous) and in the depot's full magazines, plus the objects callers
 *    hold (hits and slab allocations, less frees into magazines and
 *    straight to slabs).
 * Q2 The free gate: the arena's free_gate is the caches' alloc_max while
 *    the arena holds no segment of its own of a cached size, else 0; and
 *    alloc_max is qcache_max where the common path may run (rseq, not
 *    debug), else 0.  So a cached-size free that passes the gate is a
 *    cache object, never the arena's own segment.
 * Q3 Every slab is an allocated arena segment of its cache's slab size,
 *    aligned to its slab alignment, whose cookie is its record, and the
 *    record's base is the segment's start; a cache has nslabs of them.
 * Q4 A slab's nfree is the number of bits in its free map, at most 64, and
 *    the slab is on its cache's partial list exactly when nfree > 0.
 * Q5 Magazines hold at most QC_MAG_MAX rounds, a loaded one at most its
 *    slot's cap; the depot's full magazines are not empty and its empty
 *    ones are, and nfull and nempty count them.
 * Q6 No object is in two places: every round of every magazine is an
 *    object of one of its cache's slabs, neither free in that slab nor
 *    marked as with a caller, and no object is a round twice.
 * Q7 Where frees are checked (not VMC_UNCHECKED), a unit's state byte
 *    (qstate.h) says k, "with a caller", only at the start of an object
 *    of k quanta of a slab that is not free in it (nor a round, Q6); a
 *    cache has no more such objects than callers hold (a mark follows its
 *    pop, so for a moment there may be fewer).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "qcache.h"
#include "rseq.h"

#define QC_GROW_AFTER 64u /* depot waits before magazines grow */

static inline struct qcache *qc_get(const struct qcaches *qs, unsigned int k)
{
	return (struct qcache *)((char *)qs->map + (size_t)k * qs->stride);
}

static inline void qc_spin_lock(atomic_int *l)
{
	unsigned int n = 0;
	while (atomic_exchange_explicit(l, 1, memory_order_acquire) != 0) {
		while (atomic_load_explicit(l, memory_order_relaxed) != 0) {
			/* the holder may have been preempted: let it run */
			if (++n % 128 == 0)
				sched_yield();
#if defined(__x86_64__) || defined(__i386__)
			else
				__builtin_ia32_pause();
#endif
		}
	}
}

static inline void qc_spin_unlock(atomic_int *l)
{
	atomic_store_explicit(l, 0, memory_order_release);
}

/* ---- the CPU layer --------------------------------------------------------- */

static inline uint64_t qc_rounds(const struct qc_cpu *cc)
{
	return cc->bias + cc->pushes - cc->pops;
}

static inline void qc_set_rounds(struct qc_cpu *cc, uint64_t rounds)
{
	cc->bias = rounds - cc->pushes + cc->pops;
}

/* Make m the loaded magazine (the old one keeps its rounds); slot locked. */
static void qc_load(struct qcache *c, struct qc_cpu *cc, struct qc_mag *m)
{
	cc->loaded->rounds = (uint32_t)qc_rounds(cc);
	cc->loaded = m;
	qc_set_rounds(cc, m->rounds);
	cc->cap = __atomic_load_n(&c->magsize, __ATOMIC_RELAXED);
	if (cc->cap < m->rounds)
		cc->cap = m->rounds; /* never below what the magazine holds */
}

/* The slot of the CPU this thread is on, locked.  Sequences on that CPU
 * that already passed their look at the lock have been restarted if the
 * lock was taken there; from anywhere else, the fence restarts them. */
static struct qc_cpu *qc_cpu_lock(const struct qcaches *qs, struct qcache *c)
{
	unsigned int i = os_cpu() % qs->ncpu;
	struct qc_cpu *cc = &c->cpu[i];
	qc_spin_lock(&cc->lock);
	if (qs->rseq && os_cpu() != i)
		os_rseq_fence((int)i);
	return cc;
}

/* Every slot of c, from wherever this thread is. */
static void qc_cpus_lock(const struct qcaches *qs, struct qcache *c)
{
	for (unsigned int i = 0; i < qs->ncpu; i++)
		qc_spin_lock(&c->cpu[i].lock);
}

static void qc_cpus_unlock(const struct qcaches *qs, struct qcache *c)
{
	for (unsigned int i = 0; i < qs->ncpu; i++)
		qc_spin_unlock(&c->cpu[i].lock);
}

static void qc_depot_lock(struct qcache *c)
{
	if (pthread_mutex_trylock(&c->lock) != 0) {
		pthread_mutex_lock(&c->lock);
		/* contention: bigger magazines mean fewer trips here (3.4) */
		if (++c->waits >= QC_GROW_AFTER && c->magsize < QC_MAG_MAX) {
			__atomic_store_n(&c->magsize, c->magsize * 2, __ATOMIC_RELAXED);
			c->waits = 0;
		}
	}
}

/* Test seam: take or drop the depot lock of size's cache as another thread
 * would, so that tests can make depot exchanges contend on purpose. */
void qcache_depot_hold(struct qcaches *qs, vmem_size_t size, bool hold)
{
	struct qcache *c = qcache_of(qs, size);
	if (hold)
		pthread_mutex_lock(&c->lock);
	else
		pthread_mutex_unlock(&c->lock);
}

/* ---- records: magazines and slabs, from chunks the cache maps ------------ */

/* Unused records are chained through their first word, whatever they are. */
static void qc_rec_put(void **pool, void *rec)
{
	*(void **)rec = *pool;
	*pool = rec;
}

static bool qc_chunk(struct qcache *c, size_t recsize, void **pool)
{
	/* a page at a time: most caches need only a few records */
	size_t bytes = os_pagesize();
	char *p = os_map(bytes);
	if (p == NULL)
		return false;
	*(void **)p = c->chunks;
	c->chunks = p;
	__atomic_fetch_add(&c->chunk_bytes, bytes, __ATOMIC_RELAXED); /* read by stats */
	for (size_t off = 64; off + recsize <= bytes; off += recsize)
		qc_rec_put(pool, p + off);
	return true;
}

/* A record from pool, which is refilled with a new page when empty; NULL
 * when that page cannot be mapped. */
static void *qc_rec_get(struct qcache *c, size_t recsize, void **pool)
{
	if (*pool == NULL && !qc_chunk(c, recsize, pool))
		return NULL;
	void *rec = *pool;
	*pool = *(void **)rec;
	return rec;
}

static struct qc_mag *qc_mag_new(struct qcache *c)
{
	struct qc_mag *m = qc_rec_get(c, sizeof(struct qc_mag), (void **)&c->magpool);
	if (m == NULL)
		return NULL;
	m->next = NULL;
	m->rounds = 0;
	c->nmags++;
	return m;
}

static struct qc_slab *qc_slab_new(struct qcache *c)
{
	struct qc_slab *s = qc_rec_get(c, sizeof(struct qc_slab), (void **)&c->slabpool);
	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof(*s));
	return s;
}

/* ---- the slab layer, cache mutex held ------------------------------------ */

static void qc_partial_add(struct qcache *c, struct qc_slab *s)
{
	s->prev = NULL;
	s->next = c->partial;
	if (c->partial != NULL)
		c->partial->prev = s;
	c->partial = s;
}

static void qc_partial_del(struct qcache *c, struct qc_slab *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		c->partial = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

static vmem_addr_t qc_slab_take(struct qcache *c, struct qc_slab *s)
{
	unsigned int i = (unsigned int)__builtin_ctzll(s->freemap);
	s->freemap &= s->freemap - 1;
	if (--s->nfree == 0)
		qc_partial_del(c, s);
	return s->base + (vmem_addr_t)i * c->objsize;
}

/* The record of the slab that addr is an object of, from the arena's
 * cookie; NULL if addr is no object of this cache's slabs. */
static struct qc_slab *qc_slab_of(const struct qcache *c, uintptr_t cookie, vmem_addr_t addr)
{
	struct qc_slab *s = (struct qc_slab *)cookie;
	if (s == NULL || (addr - s->base) % c->objsize != 0 ||
	    (addr - s->base) / c->objsize >= QCACHE_SLAB_OBJS)
		return NULL;
	return s;
}

static void qc_slab_put(struct qcache *c, struct qc_slab *s, vmem_addr_t addr)
{
	unsigned int i = (unsigned int)((addr - s->base) / c->objsize);
	if (s->nfree++ == 0)
		qc_partial_add(c, s);
	s->freemap |= 1ull << i;
}

/* Give objects back to their slabs; cache mutex held. */
static void qc_return(struct qcaches *qs, struct qcache *c, const vmem_addr_t *obj, uint32_t n)
{
	uintptr_t cookie[QC_MAG_MAX];
	while (n != 0) {
		uint32_t k = n < QC_MAG_MAX ? n : QC_MAG_MAX;
		arena_slab_cookies(qs->ar, c->slabsize, c->slabalign, obj, k, cookie);
		for (uint32_t j = 0; j < k; j++) {
			struct qc_slab *s = qc_slab_of(c, cookie[j], obj[j]);
			if (s != NULL) /* always, unless a caller freed a foreign address */
				qc_slab_put(c, s, obj[j]);
		}
		obj += k;
		n -= k;
	}
}

/* A new slab from the arena, no lock of the cache held.  0 or ENOMEM. */
static int qc_grow(struct qcaches *qs, struct qcache *c)
{
	vmem_addr_t base;
	int err = arena_slab_alloc(qs->ar, c->slabsize, c->slabalign, &base);
	if (err != 0)
		return err;
	qc_depot_lock(c);
	struct qc_slab *s = qc_slab_new(c);
	if (s == NULL) {
		pthread_mutex_unlock(&c->lock);
		arena_slab_free(qs->ar, base);
		return ENOMEM;
	}
	/* every unit of the slab gets its state byte, 0: no history here */
	if (qs->checked && qstate_cover(&qs->state, base >> qs->qshift, c->slabsize >> qs->qshift) != 0) {
		qc_rec_put((void **)&c->slabpool, s);
		pthread_mutex_unlock(&c->lock);
		arena_slab_free(qs->ar, base);
		return ENOMEM;
	}
	s->base = base;
	s->nfree = QCACHE_SLAB_OBJS;
	s->freemap = ~0ull;
	arena_slab_set_cookie(qs->ar, base, (uintptr_t)s);
	c->nslabs++;
	qc_partial_add(c, s);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* ---- checked frees ---------------------------------------------------------- */

/* The state byte's k: the object size in quanta, 1..VMEM_QCACHE_MAX. */
static inline uint8_t qc_k(const struct qcaches *qs, const struct qcache *c)
{
	return (uint8_t)(c->objsize >> qs->qshift);
}

/* A cached-size free that is no outstanding allocation: EINVAL, and under
 * debug a report that names the mistake. */
static NOINLINE int qc_bad_free(struct qcaches *qs, vmem_addr_t addr, vmem_size_t size)
{
	if (qs->debug == OS_DEBUG_OFF)
		return EINVAL;
	char why[160];
	uint64_t u = addr >> qs->qshift;
	const uint8_t *p = qstate_byte(&qs->state, u);
	unsigned int b = p != NULL ? qstate_read(p) : 0;
	vmem_addr_t start;
	vmem_size_t len;
	if ((u << qs->qshift) != addr) {
		snprintf(why, sizeof(why), "not on a quantum boundary");
	} else if (b != 0 && b < QSTATE_FREED) {
		snprintf(why, sizeof(why), "wrong size: allocated with size %llu",
			 (unsigned long long)b << qs->qshift);
	} else if (b != 0) {
		snprintf(why, sizeof(why), "double free");
	} else {
		/* no cached object starts here: inside one, or the arena's */
		unsigned int d = 1, held = 0;
		for (; d < VMEM_QCACHE_MAX && d <= u; d++) {
			const uint8_t *q = qstate_byte(&qs->state, u - d);
			held = q != NULL ? qstate_read(q) : 0;
			if (held != 0 && held < QSTATE_FREED && held > d)
				break;
		}
		enum arena_where w = arena_whereis(qs->ar, addr, &start, &len);
		if (d < VMEM_QCACHE_MAX && d <= u)
			snprintf(why, sizeof(why), "inside another allocation [%#llx, +%llu)",
				 (unsigned long long)(u - d) << qs->qshift,
				 (unsigned long long)held << qs->qshift);
		else if (w == ARENA_OUTSIDE)
			snprintf(why, sizeof(why), "outside every span");
		else if (w == ARENA_IN_ALLOC && start != addr)
			snprintf(why, sizeof(why), "inside another allocation [%#llx, +%llu)",
				 (unsigned long long)start, (unsigned long long)len);
		else
			snprintf(why, sizeof(why), "never allocated");
	}
	arena_misuse(qs->ar, "vmem_free", addr, size, why);
	return EINVAL;
}

/* ---- allocation and free --------------------------------------------------- */

/* Swap the loaded and the previous magazine; slot locked. */
static void qc_swap(struct qcache *c, struct qc_cpu *cc)
{
	struct qc_mag *old = cc->loaded;
	qc_load(c, cc, cc->prev);
	cc->prev = old;
}

/* The depot's two lists, depot locked: m goes on the full list if it holds
 * rounds, else on the empty one; a magazine comes off either. */
static void qc_depot_put(struct qcache *c, struct qc_mag *m)
{
	bool full = m->rounds != 0;
	m->next = full ? c->full : c->empty;
	*(full ? &c->full : &c->empty) = m;
	*(full ? &c->nfull : &c->nempty) += 1;
}

static struct qc_mag *qc_depot_take(struct qcache *c, bool full)
{
	struct qc_mag *m = full ? c->full : c->empty;
	if (m != NULL) {
		*(full ? &c->full : &c->empty) = m->next;
		*(full ? &c->nfull : &c->nempty) -= 1;
	}
	return m;
}

/* A magazine from the depot for the previous one, which goes there (the
 * paper's exchange, 3.2): m is loaded, the loaded one becomes the previous.
 * Slot and depot locked. */
static void qc_exchange(struct qcache *c, struct qc_cpu *cc, struct qc_mag *m)
{
	struct qc_mag *old = cc->loaded;
	qc_depot_put(c, cc->prev);
	qc_load(c, cc, m);
	cc->prev = old;
}

/* An allocation the CPU layer could not serve at once: the slot locked,
 * magazines exchanged with the depot, then slabs, then the arena. */
NOINLINE int qcache_alloc_miss(struct qcaches *qs, struct qcache *c, int flags,
			       vmem_addr_t *addrp)
{
	vmem_addr_t a;
	uint8_t *st;
	for (;;) {
		struct qc_cpu *cc = qc_cpu_lock(qs, c);
		if (qc_rounds(cc) != 0)
			goto hit;
		if (cc->prev->rounds != 0) {
			qc_swap(c, cc);
			goto hit;
		}
		qc_depot_lock(c);
		struct qc_mag *f = qc_depot_take(c, true);
		if (f != NULL) {
			qc_exchange(c, cc, f); /* a full magazine for the empty previous one */
			pthread_mutex_unlock(&c->lock);
			goto hit;
		}
		qc_spin_unlock(&cc->lock);
		if (c->partial != NULL) {
			a = qc_slab_take(c, c->partial);
			c->allocs++;
			c->misses++;
			pthread_mutex_unlock(&c->lock);
			st = qs->checked ? qstate_byte(&qs->state, a >> qs->qshift) : NULL;
			break;
		}
		pthread_mutex_unlock(&c->lock);
		int err = qc_grow(qs, c);
		if (err == 0)
			continue;
		/* no room for a slab: the object alone, from the arena, so
		 * that caching never makes a request fail that would fit */
		err = arena_small_alloc(qs->ar, c->objsize, addrp);
		if (err == 0) {
			pthread_mutex_lock(&c->lock);
			c->misses++;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (!(flags & VM_SLEEP)) {
			arena_count_fail(qs->ar);
			return err;
		}
		/* a free into a magazine on another CPU may slip past the
		 * waiter count: look again after a while whatever happens */
		arena_sleep(qs->ar, 10);
		continue;
hit:
		a = cc->loaded->obj[qc_rounds(cc) - 1];
		st = cc->loaded->state[qc_rounds(cc) - 1];
		cc->pops++;
		qc_spin_unlock(&cc->lock);
		break;
	}
	if (qs->checked)
		qstate_alloc(st, qc_k(qs, c));
	*addrp = a;
	return 0;
}

int qcache_alloc(struct qcaches *qs, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	struct qcache *c = qcache_of(qs, size);
	vmem_addr_t a;
	uint8_t *st;
	if (qs->alloc_max != 0 && qc_pop_rseq(qs, c, &a, &st)) {
		if (qs->checked)
			qstate_alloc(st, qc_k(qs, c));
		*addrp = a;
		return 0;
	}
	return qcache_alloc_miss(qs, c, flags, addrp);
}

/* A free the CPU layer could not take at once (the loaded magazine full,
 * or no rseq): the slot locked, magazines exchanged with the depot, or
 * straight back to the slab when there is no memory for a magazine. */
static void qc_free_to_cpu(struct qcaches *qs, struct qcache *c, vmem_addr_t addr, uint8_t *st)
{
	struct qc_cpu *cc = qc_cpu_lock(qs, c);
	/* read without the mutex: a stale value is harmless */
	uint32_t cap = __atomic_load_n(&c->magsize, __ATOMIC_RELAXED);
	if (cc->cap < cap)
		cc->cap = cap; /* the magazines grew */
	if (qc_rounds(cc) < cc->cap)
		goto push;
	if (cc->prev->rounds == 0) {
		qc_swap(c, cc);
		goto push;
	}
	qc_depot_lock(c);
	struct qc_mag *e = qc_depot_take(c, false);
	if (e == NULL)
		e = qc_mag_new(c);
	if (e != NULL) {
		qc_exchange(c, cc, e); /* an empty magazine for the full previous one */
		pthread_mutex_unlock(&c->lock);
		goto push;
	}
	/* no memory for a magazine: straight back to the slab */
	qc_spin_unlock(&cc->lock);
	qc_return(qs, c, &addr, 1);
	c->frees++;
	pthread_mutex_unlock(&c->lock);
	return;
push:
	cc->loaded->obj[qc_rounds(cc)] = addr;
	cc->loaded->state[qc_rounds(cc)] = st;
	cc->pushes++;
	qc_spin_unlock(&cc->lock);
}

NOINLINE int qcache_push_miss(struct qcaches *qs, struct qcache *c, vmem_addr_t addr, uint8_t *st)
{
	qc_free_to_cpu(qs, c, addr, st);
	arena_wake(qs->ar); /* a waiter may want what this free made available */
	return 0;
}

int qcache_free(struct qcaches *qs, vmem_addr_t addr, vmem_size_t size)
{
	struct qcache *c = qcache_of(qs, size);
	uint8_t *st = NULL;
	if (qs->checked && (st = qstate_free(&qs->state, addr, qs->qshift, qc_k(qs, c))) == NULL)
		return qc_bad_free(qs, addr, size);
	if (qs->alloc_max != 0 && qc_push_rseq(qs, c, addr, st)) {
		arena_wake(qs->ar);
		return 0;
	}
	return qcache_push_miss(qs, c, addr, st);
}

int qcache_free_shared(struct qcaches *qs, vmem_addr_t addr, vmem_size_t size)
{
	struct qcache *c = qcache_of(qs, size);
	int err = arena_free_small(qs->ar, addr, size, c->slabsize, c->slabalign);
	return err == ARENA_SLAB_OBJECT ? qcache_free(qs, addr, size) : err;
}

/* ---- reap ----------------------------------------------------------------- */

static void qc_empty_mag(struct qcaches *qs, struct qcache *c, struct qc_mag *m)
{
	qc_return(qs, c, m->obj, m->rounds);
	m->rounds = 0;
}

bool qcache_reap(void *arg)
{
	struct qcaches *qs = arg;
	bool freed = false;
	for (unsigned int k = 0; k < qs->n; k++) {
		struct qcache *c = qc_get(qs, k);
		/* objects in every magazine go back to their slabs */
		qc_cpus_lock(qs, c);
		if (qs->rseq)
			os_rseq_fence(-1);
		pthread_mutex_lock(&c->lock);
		for (unsigned int i = 0; i < qs->ncpu; i++) {
			struct qc_cpu *cc = &c->cpu[i];
			qc_return(qs, c, cc->loaded->obj, (uint32_t)qc_rounds(cc));
			qc_set_rounds(cc, 0);
			qc_empty_mag(qs, c, cc->prev);
		}
		qc_cpus_unlock(qs, c);
		struct qc_mag *m;
		while ((m = qc_depot_take(c, true)) != NULL) {
			qc_empty_mag(qs, c, m);
			qc_depot_put(c, m);
		}
		/* then wholly free slabs go back to the arena */
		for (;;) {
			struct qc_slab *s = c->partial;
			while (s != NULL && s->nfree != QCACHE_SLAB_OBJS)
				s = s->next;
			if (s == NULL)
				break;
			qc_partial_del(c, s);
			c->nslabs--;
			vmem_addr_t base = s->base;
			/* the record goes back to the pool now, and a grow may
			 * reuse it at once: the slab must stop naming it first
			 * (Q3), while this cache is still locked */
			arena_slab_set_cookie(qs->ar, base, 0);
			qc_rec_put((void **)&c->slabpool, s);
			pthread_mutex_unlock(&c->lock);
			arena_slab_free(qs->ar, base);
			freed = true;
			pthread_mutex_lock(&c->lock);
		}
		pthread_mutex_unlock(&c->lock);
	}
	return freed;
}

/* ---- life cycle -------------------------------------------------------------- */

/* Where the common path may run (create, fork), while no other thread runs. */
static void qc_set_fast(struct qcaches *qs)
{
	qs->alloc_max = qs->rseq && qs->debug == OS_DEBUG_OFF ? qs->max : 0;
	qs->rseq_off = qc_rseq_offset();
}

vmem_size_t qcache_fit_max(vmem_size_t max, vmem_size_t quantum)
{
	/* a slab of 64 objects, aligned to the power of two at or above its
	 * size: both must stay at or below 2^63 */
	const vmem_size_t most = ((vmem_size_t)1 << 63) / QCACHE_SLAB_OBJS;
	if (max > most)
		max = most & ~(quantum - 1);
	return max;
}

int qcache_init(struct qcaches *qs, struct arena *ar, vmem_size_t max, vmem_size_t quantum,
		int debug, bool checked)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	qs->ar = ar;
	qs->max = max;
	qs->debug = debug;
	qs->checked = checked || debug != OS_DEBUG_OFF;
	qs->qshift = (unsigned int)__builtin_ctzll(quantum);
	qs->ncpu = n < 1 ? 1 : n > (long)QC_MAX_CPUS ? QC_MAX_CPUS : (unsigned int)n;
	qs->n = (unsigned int)(max >> qs->qshift);
	qs->stride = (sizeof(struct qcache) + qs->ncpu * sizeof(struct qc_cpu) + 63) & ~(size_t)63;
	qs->bytes = os_round_page(qs->n * qs->stride);
	qs->map = os_map(qs->bytes);
	if (qs->map == NULL)
		return ENOMEM;
	if (qs->checked && qstate_init(&qs->state) != 0)
		return ENOMEM;
	for (unsigned int k = 0; k < qs->n; k++) {
		struct qcache *c = qc_get(qs, k);
		pthread_mutex_init(&c->lock, NULL);
		c->objsize = (vmem_size_t)(k + 1) << qs->qshift;
		c->slabsize = c->objsize * QCACHE_SLAB_OBJS; /* at most 2^63: qcache_fit_max */
		unsigned int lg = 63u - (unsigned int)__builtin_clzll(c->slabsize);
		c->slabalign = (vmem_size_t)1 << (lg + ((c->slabsize & (c->slabsize - 1)) != 0));
		c->magsize = QC_MAG_MIN;
		for (unsigned int i = 0; i < qs->ncpu; i++) {
			struct qc_cpu *cc = &c->cpu[i];
			cc->loaded = qc_mag_new(c);
			cc->prev = qc_mag_new(c);
			if (cc->loaded == NULL || cc->prev == NULL)
				return ENOMEM;
			cc->cap = c->magsize;
		}
		qs->tab[k] = c;
	}
	qs->rseq = os_rseq_enabled();
	qc_set_fast(qs);
	return 0;
}

void qcache_fini(struct qcaches *qs)
{
	if (qs->map == NULL)
		return;
	for (unsigned int k = 0; k < qs->n; k++) {
		struct qcache *c = qc_get(qs, k);
		void *p = c->chunks;
		while (p != NULL) {
			void *next = *(void **)p;
			os_unmap(p, os_pagesize());
			p = next;
		}
		pthread_mutex_destroy(&c->lock);
	}
	os_unmap(qs->map, qs->bytes);
	qs->map = NULL;
	qstate_fini(&qs->state);
}

/* fork: take every cache lock, in the lock order, before the arena's */
void qcache_lock_all(struct qcaches *qs)
{
	for (unsigned int k = 0; k < qs->n; k++) {
		struct qcache *c = qc_get(qs, k);
		qc_cpus_lock(qs, c);
		pthread_mutex_lock(&c->lock);
	}
	if (qs->n != 0 && qs->rseq)
		os_rseq_fence(-1);
}

void qcache_unlock_all(struct qcaches *qs)
{
	for (unsigned int k = 0; k < qs->n; k++) {
		struct qcache *c = qc_get(qs, k);
		pthread_mutex_unlock(&c->lock);
		qc_cpus_unlock(qs, c);
	}
}

void qcache_child(struct qcaches *qs)
{
	qcache_unlock_all(qs);
	qs->rseq = qs->map != NULL && os_rseq_enabled(); /* os_rseq_child decided */
	qc_set_fast(qs);
}

struct leak_walk {
	const struct qcaches *qs;
	unsigned int *shown;
	uint64_t *n;
	vmem_size_t *units;
};

static void qc_leaks_in_leaf(void *arg, uint64_t u0, const uint8_t *b)
{
	struct leak_walk *w = arg;
	for (uint64_t i = 0; i < QSTATE_LEAF_UNITS; i++) {
		unsigned int st = qstate_read(&b[i]);
		if (st == 0 || st >= QSTATE_FREED)
			continue;
		vmem_addr_t a = (u0 + i) << w->qs->qshift;
		vmem_size_t size = (vmem_size_t)st << w->qs->qshift;
		if ((*w->shown)++ < VMEM_LEAKS_SHOWN)
			fprintf(stderr, "vmem: arena \"%s\": leaked [%#llx, %#llx] (%llu units)\n",
				arena_name(w->qs->ar), (unsigned long long)a,
				(unsigned long long)(a + (size - 1)), (unsigned long long)size);
		(*w->n)++;
		*w->units += size;
	}
}

void qcache_report_leaks(struct qcaches *qs, unsigned int *shown, uint64_t *n, vmem_size_t *units)
{
	struct leak_walk w = { qs, shown, n, units };
	if (qs->map != NULL && qs->checked)
		qstate_each_leaf(&qs->state, qc_leaks_in_leaf, &w);
}

/* ---- looking inside: callers hold no lock -------------------------------- */

/* One cache's figures; every slot and the depot locked. */
static void qc_info_locked(const struct qcaches *qs, const struct qcache *c, struct qcache_info *qi)
{
	memset(qi, 0, sizeof(*qi));
	qi->objsize = c->objsize;
	qi->slabsize = c->slabsize;
	qi->slabalign = c->slabalign;
	qi->magsize = c->magsize;
	for (unsigned int i = 0; i < qs->ncpu; i++) {
		const struct qc_cpu *cc = &c->cpu[i];
		qi->cpu_rounds += qc_rounds(cc) + cc->prev->rounds;
		qi->hits += cc->pops;
		qi->frees += cc->pushes;
	}
	qi->allocs = qi->hits + c->allocs;
	qi->frees += c->frees;
	qi->misses = c->misses;
	qi->nfull = c->nfull;
	qi->nempty = c->nempty;
	for (const struct qc_mag *m = c->full; m != NULL; m = m->next)
		qi->depot_rounds += m->rounds;
	qi->nslabs = c->nslabs;
	for (const struct qc_slab *sl = c->partial; sl != NULL; sl = sl->next) {
		qi->npartial++;
		qi->slab_free += sl->nfree;
	}
	/* units in the cache's slabs that no caller holds */
	qi->cached = (c->nslabs * QCACHE_SLAB_OBJS - (qi->allocs - qi->frees)) * c->objsize;
}

int qcache_info(struct qcaches *qs, vmem_size_t size, struct qcache_info *qi)
{
	if (size == 0 || size > qs->max || (size & ((1ull << qs->qshift) - 1)) != 0)
		return EINVAL;
	qcache_lock_all(qs);
	qc_info_locked(qs, qcache_of(qs, size), qi);
	qcache_unlock_all(qs);
	return 0;
}

void qcache_stats(struct qcaches *qs, vmem_stats_t *st)
{
	/* one fence for every slot of every cache: a snapshot */
	qcache_lock_all(qs);
	for (unsigned int k = 0; k < qs->n; k++) {
		struct qcache_info qi;
		qc_info_locked(qs, qc_get(qs, k), &qi);
		st->qcache_hits += qi.hits;
		st->qcache_misses += qi.misses;
		st->allocs += qi.allocs;
		st->frees += qi.frees;
		st->cached_total += qi.cached;
	}
	qcache_unlock_all(qs);
}

void qcache_dump(struct qcaches *qs, FILE *fp)
{
	if (qs->n == 0) {
		fprintf(fp, "  caches: none\n");
		return;
	}
	fprintf(fp, "  caches (%u CPUs, %s):\n", qs->ncpu,
		qs->rseq ? "lock-free CPU layer (rseq)" : "CPU layer under spinlocks");
	qcache_lock_all(qs);
	for (unsigned int k = 0; k < qs->n; k++) {
		struct qcache_info qi;
		qc_info_locked(qs, qc_get(qs, k), &qi);
		fprintf(fp,
			"    %llu units: magazines of %u (%llu objects on CPUs), depot %llu full + %llu "
			"empty, %llu slabs (%llu partial, %llu objects free), %llu hits, %llu misses\n",
			(unsigned long long)qi.objsize, qi.magsize, (unsigned long long)qi.cpu_rounds,
			(unsigned long long)qi.nfull, (unsigned long long)qi.nempty,
			(unsigned long long)qi.nslabs, (unsigned long long)qi.npartial,
			(unsigned long long)qi.slab_free, (unsigned long long)qi.hits,
			(unsigned long long)qi.misses);
	}
	qcache_unlock_all(qs);
}

size_t qcache_bytes(const struct qcaches *qs)
{
	size_t n = qs->bytes + __atomic_load_n(&qs->state.bytes, __ATOMIC_RELAXED);
	for (unsigned int k = 0; k < qs->n; k++)
		n += __atomic_load_n(&qc_get(qs, k)->chunk_bytes, __ATOMIC_RELAXED);
	return n;
}
