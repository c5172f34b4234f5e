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
 *    (rseq(2), see os.c): it reads the CPU's slot and ends with one plain
 *    store, and the kernel restarts it if the thread loses the CPU first;
 *    no lock, no atomic instruction.  Everything else on a slot (magazine
 *    exchanges, reaps, statistics, fork) takes the slot's spinlock, which
 *    sends the sequences to the slow path, and fences the CPU when taken
 *    from another one.  Without rseq the common path takes the spinlock.
 *    The loaded magazine's rounds are bias + pushes - pops, so that a pop
 *    or a push commits with a single store, and pops and pushes are the
 *    exact counts of hits and of frees into magazines.
 *  - the depot: full and empty magazines, under the cache's mutex.  When
 *    taking that mutex has to wait often, magazines grow (paper 3.4).
 *  - the slab layer: objects come from slabs, runs of 64 objects imported
 *    from the arena as one segment (64 so a slab's free map is one word;
 *    the paper's 3 x qcache_max would give 4 IDs a slab for an ID arena).
 *    A slab is aligned to the power of two at or above its size, so an
 *    object finds its slab by masking, and the arena's hash finds the
 *    record.  Address 0 is an ordinary object: nothing uses 0 as "none".
 *
 * Lock order: CPU spinlock, then cache mutex, then arena mutex.  Nothing is
 * held while the arena imports or sleeps.  Objects held by caches count as
 * allocated in the arena (the slabs are allocated segments) until a reap
 * gives wholly free slabs back.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmem_impl.h"

#define QC_SLAB_OBJS QCACHE_SLAB_OBJS
#define QC_MAG_MIN 8u
#define QC_MAG_MAX 64u
#define QC_GROW_AFTER 64u /* depot waits before magazines grow */
#define QC_MAX_CPUS 64u

struct qc_mag {
	struct qc_mag *next;
	uint32_t rounds;
	vmem_addr_t obj[QC_MAG_MAX];
};

struct qc_slab {
	vmem_addr_t base;
	uint64_t freemap; /* bit i: object i is in the slab, free */
	uint64_t usermap; /* bit i: object i is with a caller (kept under VMC_DEBUG) */
	struct qc_slab *next, *prev; /* partial list: slabs with free objects */
	uint32_t nfree;
};

struct qc_cpu {
	atomic_int lock;
	uint32_t cap; /* rounds the loaded magazine may hold */
	struct qc_mag *loaded, *prev;
	uint64_t bias, pops, pushes; /* see the top: a commit is one store */
} __attribute__((aligned(64)));
#define QC_CPU_SHIFT 6 /* the rseq sequences index slots by shifting */
_Static_assert(sizeof(struct qc_cpu) == 1u << QC_CPU_SHIFT, "struct qc_cpu is one line");

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

static inline struct qcache *qc_get(const vmem_t *vm, unsigned int k)
{
	return (struct qcache *)((char *)vm->qc + (size_t)k * vm->qc_stride);
}

/* The common path may run: rseq works here and the arena is not in debug
 * mode (qc_set_fast decided, in qc_alloc_max). */
static inline bool qc_fast(const vmem_t *vm)
{
	return vm->qc_alloc_max != 0;
}

static inline struct qcache *qc_of(const vmem_t *vm, vmem_size_t size)
{
	return vm->qc_tab[(size - 1) >> vm->qshift]; /* size need not be rounded */
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
static struct qc_cpu *qc_cpu_lock(const vmem_t *vm, struct qcache *c)
{
	unsigned int i = os_cpu() % vm->qc_ncpu;
	struct qc_cpu *cc = &c->cpu[i];
	qc_spin_lock(&cc->lock);
	if (vm->qc_rseq && os_cpu() != i)
		os_rseq_fence((int)i);
	return cc;
}

/* Every slot of c, from wherever this thread is. */
static void qc_cpus_lock(const vmem_t *vm, struct qcache *c)
{
	for (unsigned int i = 0; i < vm->qc_ncpu; i++)
		qc_spin_lock(&c->cpu[i].lock);
}

static void qc_cpus_unlock(const vmem_t *vm, struct qcache *c)
{
	for (unsigned int i = 0; i < vm->qc_ncpu; i++)
		qc_spin_unlock(&c->cpu[i].lock);
}

#if OS_RSEQ
/*
 * The common paths as rseq critical sections.  Each sets rseq_cs, then
 * (from label 1) finds its CPU's slot, leaves for the slow path if the
 * slot is locked or the magazine is empty (pop) or full (push), and ends
 * with the committing store of pops or pushes.  An abort (label 4, after
 * the signature glibc registered) starts over from label 0.  A push writes
 * its object above the top first: harmless if the commit never comes.
 * rseq_cs is cleared on the way out (by qc_rseq_done on the slow path):
 * the kernel reads the descriptor it points to at every preemption, and
 * after a dlclose that would fault.
 */
/* a field of the CPU's slot: %rax is its offset in the cache */
#define QC_SLOT(field) "%c[o_cpus]+%c[" #field "](%[c], %%rax)"

#define QC_RSEQ_HEAD                                                                  \
	".pushsection __rseq_cs, \"aw\"\n\t"                                      \
	".balign 32\n"                                                                \
	"3:\n\t"                                                                     \
	".long 0, 0\n\t"                                                             \
	".quad 1f, 2f - 1f, 4f\n\t"                                                  \
	".popsection\n"                                                               \
	"0:\n\t"                                                                     \
	"leaq 3b(%%rip), %%rax\n\t"                                                  \
	"movq %%rax, %%fs:%c[o_cs](%[off])\n"                                         \
	"1:\n\t"                                                                     \
	"movl %%fs:%c[o_cpu](%[off]), %%eax\n\t"                                     \
	"cmpl %c[o_ncpu](%[vm]), %%eax\n\t"                                          \
	"jae %l[slow]\n\t"                                                           \
	"shlq %[sshift], %%rax\n\t"                                                  \
	"cmpl $0, " QC_SLOT(o_lock) "\n\t"                                          \
	"jne %l[slow]\n\t"

#define QC_RSEQ_TAIL                                                                  \
	"2:\n\t"                                                                     \
	"movq $0, %%fs:%c[o_cs](%[off])\n\t"                                         \
	".pushsection __rseq_failure, \"ax\"\n\t"                                 \
	".byte 0x0f, 0xb9, 0x3d\n\t"                                                 \
	".long 0x53053053\n" /* RSEQ_SIG */                                           \
	"4:\n\t"                                                                     \
	"jmp 0b\n\t"                                                                 \
	".popsection\n"

#define QC_RSEQ_OPERANDS(vm, c)                                                       \
	[off] "r"(vm->rseq_off), [vm] "r"(vm), [c] "r"(c),                            \
		[o_ncpu] "i"(offsetof(vmem_t, qc_ncpu)),                               \
		[o_cpus] "i"(offsetof(struct qcache, cpu)),                            \
		[sshift] "i"(QC_CPU_SHIFT),                                            \
		[o_cs] "i"(offsetof(struct rseq, rseq_cs)),                            \
		[o_cpu] "i"(offsetof(struct rseq, cpu_id)),                            \
		[o_lock] "i"(offsetof(struct qc_cpu, lock)),                           \
		[o_cap] "i"(offsetof(struct qc_cpu, cap)),                             \
		[o_loaded] "i"(offsetof(struct qc_cpu, loaded)),                       \
		[o_bias] "i"(offsetof(struct qc_cpu, bias)),                           \
		[o_pops] "i"(offsetof(struct qc_cpu, pops)),                           \
		[o_pushes] "i"(offsetof(struct qc_cpu, pushes)),                       \
		[o_obj] "i"(offsetof(struct qc_mag, obj))

/* A sequence left for the slow path still names its descriptor. */
static inline void qc_rseq_done(void)
{
	__atomic_store_n(&os_rseq_area()->rseq_cs, 0, __ATOMIC_RELAXED);
}

/* Scratch registers: %rax and %r8 to %r10, none of which holds an argument of
 * vmem_alloc or vmem_free, so the compiler need not save those for the
 * slow path. */
static inline bool qc_pop_rseq(const vmem_t *vm, struct qcache *c, vmem_addr_t *objp)
{
	vmem_addr_t obj;
	__asm__ volatile goto(QC_RSEQ_HEAD
		     "movq " QC_SLOT(o_bias) ", %%r8\n\t"
		     "addq " QC_SLOT(o_pushes) ", %%r8\n\t"
		     "movq " QC_SLOT(o_pops) ", %%r9\n\t"
		     "subq %%r9, %%r8\n\t" /* rounds */
		     "jz %l[slow]\n\t"
		     "movq " QC_SLOT(o_loaded) ", %[obj]\n\t"
		     "movq %c[o_obj]-8(%[obj], %%r8, 8), %[obj]\n\t"
		     "incq %%r9\n\t"
		     "movq %%r9, " QC_SLOT(o_pops) "\n" /* commit */
		     QC_RSEQ_TAIL
		     : [obj] "=&r"(obj)
		     : QC_RSEQ_OPERANDS(vm, c)
		     : "rax", "r8", "r9", "memory", "cc"
		     : slow);
	*objp = obj;
	return true;
slow:
	qc_rseq_done();
	return false;
}

static inline bool qc_push_rseq(const vmem_t *vm, struct qcache *c, vmem_addr_t obj)
{
	__asm__ volatile goto(QC_RSEQ_HEAD
		     "movq " QC_SLOT(o_pushes) ", %%r9\n\t"
		     "movq " QC_SLOT(o_bias) ", %%r8\n\t"
		     "addq %%r9, %%r8\n\t"
		     "subq " QC_SLOT(o_pops) ", %%r8\n\t" /* rounds, at most cap */
		     "cmpl " QC_SLOT(o_cap) ", %%r8d\n\t"
		     "jae %l[slow]\n\t"
		     "movq " QC_SLOT(o_loaded) ", %%r10\n\t"
		     "movq %[obj], %c[o_obj](%%r10, %%r8, 8)\n\t"
		     "incq %%r9\n\t"
		     "movq %%r9, " QC_SLOT(o_pushes) "\n" /* commit */
		     QC_RSEQ_TAIL
		     :
		     : [obj] "r"(obj), QC_RSEQ_OPERANDS(vm, c)
		     : "rax", "r8", "r9", "r10", "memory", "cc"
		     : slow);
	return true;
slow:
	qc_rseq_done();
	return false;
}
#endif

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
void qcache_depot_hold(vmem_t *vm, vmem_size_t size, bool hold)
{
	struct qcache *c = qc_of(vm, size);
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

/* The slab record of the slab holding addr; arena lock held. */
static struct qc_slab *qc_slab_find(const vmem_t *vm, const struct qcache *c, vmem_addr_t addr)
{
	vmem_addr_t base = addr & ~(c->slabalign - 1);
	bt_idx i = hash_lookup(vm, base);
	const struct bt *b = BT(vm, i);
	if (i == BT_NIL || b->type != BT_BUSY_QC || b->size != c->slabsize)
		return NULL;
	struct qc_slab *s = (struct qc_slab *)(((uintptr_t)b->right << 32) | b->left);
	if ((addr - base) % c->objsize != 0 || (addr - base) / c->objsize >= QC_SLAB_OBJS)
		return NULL;
	return s;
}

bool qcache_owns(const vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	return qc_slab_find(vm, qc_of(vm, size), addr) != NULL;
}

static void qc_slab_put(struct qcache *c, struct qc_slab *s, vmem_addr_t addr)
{
	unsigned int i = (unsigned int)((addr - s->base) / c->objsize);
	if (s->nfree++ == 0)
		qc_partial_add(c, s);
	s->freemap |= 1ull << i;
}

/* Give objects back to their slabs; cache mutex held, takes the arena lock. */
static void qc_return(vmem_t *vm, struct qcache *c, const vmem_addr_t *obj, uint32_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&vm->lock);
	for (uint32_t k = 0; k < n; k++) {
		struct qc_slab *s = qc_slab_find(vm, c, obj[k]);
		if (s != NULL) /* always, unless a caller freed a foreign address */
			qc_slab_put(c, s, obj[k]);
	}
	pthread_mutex_unlock(&vm->lock);
}

/* A new slab from the arena, lock of the cache not held.  0 or ENOMEM. */
static int qc_grow(vmem_t *vm, struct qcache *c, int flags)
{
	vmem_addr_t base;
	int err = arena_slab_alloc(vm, c->slabsize, c->slabalign, flags, &base);
	if (err != 0)
		return err;
	qc_depot_lock(c);
	struct qc_slab *s = qc_slab_new(c);
	if (s == NULL) {
		pthread_mutex_unlock(&c->lock);
		arena_slab_free(vm, base);
		return ENOMEM;
	}
	s->base = base;
	s->nfree = QC_SLAB_OBJS;
	s->freemap = ~0ull;
	pthread_mutex_lock(&vm->lock);
	struct bt *b = BT(vm, hash_lookup(vm, base));
	b->left = (bt_idx)(uintptr_t)s;
	b->right = (bt_idx)((uintptr_t)s >> 32);
	pthread_mutex_unlock(&vm->lock);
	c->nslabs++;
	qc_partial_add(c, s);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* ---- VMC_DEBUG: every cached object's owner is known -------------------- */

static int qc_debug_mark(vmem_t *vm, struct qcache *c, vmem_addr_t addr, bool alloc)
{
	int err = 0;
	pthread_mutex_lock(&c->lock);
	pthread_mutex_lock(&vm->lock);
	struct qc_slab *s = qc_slab_find(vm, c, addr);
	uint64_t bit = s ? 1ull << ((addr - s->base) / c->objsize) : 0;
	if (s == NULL || ((s->usermap & bit) != 0) == alloc)
		err = EINVAL;
	else if (alloc)
		s->usermap |= bit;
	else
		s->usermap &= ~bit;
	pthread_mutex_unlock(&vm->lock);
	pthread_mutex_unlock(&c->lock);
	return err;
}

/* ---- allocation and free --------------------------------------------------- */

static void qc_wait(vmem_t *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->waits++;
	__atomic_fetch_add(&vm->nwaiters, 1, __ATOMIC_RELAXED);
	/* a free into a magazine on another CPU may slip past the waiter
	 * count: look again after a while whatever happens */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += 10 * 1000 * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&vm->cv, &vm->lock, &ts);
	__atomic_fetch_sub(&vm->nwaiters, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&vm->lock);
}

/* Swap the loaded and the previous magazine; slot locked. */
static void qc_swap(struct qcache *c, struct qc_cpu *cc)
{
	struct qc_mag *old = cc->loaded;
	qc_load(c, cc, cc->prev);
	cc->prev = old;
}

/* An allocation the CPU layer could not serve at once: the slot locked,
 * magazines exchanged with the depot, then slabs, then the arena. */
static NOINLINE int qc_alloc_slow(vmem_t *vm, struct qcache *c, int flags, vmem_addr_t *addrp)
{
	vmem_addr_t a;
	for (;;) {
		struct qc_cpu *cc = qc_cpu_lock(vm, c);
		if (qc_rounds(cc) != 0)
			goto hit;
		if (cc->prev->rounds != 0) {
			qc_swap(c, cc);
			goto hit;
		}
		qc_depot_lock(c);
		if (c->full != NULL) {
			/* a full magazine for the empty previous one */
			struct qc_mag *f = c->full, *old = cc->loaded;
			c->full = f->next;
			c->nfull--;
			cc->prev->next = c->empty;
			c->empty = cc->prev;
			c->nempty++;
			qc_load(c, cc, f);
			cc->prev = old;
			pthread_mutex_unlock(&c->lock);
			goto hit;
		}
		qc_spin_unlock(&cc->lock);
		if (c->partial != NULL) {
			a = qc_slab_take(c, c->partial);
			c->allocs++;
			c->misses++;
			pthread_mutex_unlock(&c->lock);
			break;
		}
		pthread_mutex_unlock(&c->lock);
		int err = qc_grow(vm, c, flags);
		if (err == 0)
			continue;
		/* no room for a slab: the object alone, from the arena, so
		 * that caching never makes a request fail that would fit */
		err = arena_small_alloc(vm, c->objsize, addrp);
		if (err == 0) {
			pthread_mutex_lock(&c->lock);
			c->misses++;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (!(flags & VM_SLEEP)) {
			pthread_mutex_lock(&vm->lock);
			vm->fails++;
			pthread_mutex_unlock(&vm->lock);
			return err;
		}
		qc_wait(vm);
		continue;
hit:
		a = cc->loaded->obj[qc_rounds(cc) - 1];
		cc->pops++;
		qc_spin_unlock(&cc->lock);
		break;
	}
	if (unlikely(vm->debug))
		qc_debug_mark(vm, c, a, true);
	*addrp = a;
	return 0;
}

#if OS_RSEQ
/* The sequence, else the slow path: vmem_alloc's cached case, and
 * qcache_alloc's where the sequence may run. */
static HOT_INLINE int qc_alloc_rseq(vmem_t *vm, struct qcache *c, int flags, vmem_addr_t *addrp)
{
	vmem_addr_t a;
	if (likely(qc_pop_rseq(vm, c, &a))) {
		*addrp = a;
		return 0;
	}
	return qc_alloc_slow(vm, c, flags, addrp);
}
#endif

/* The caches from arena_vmem_alloc: best fit, and arenas where vmem_alloc's
 * common path may not run (VMC_DEBUG, no rseq). */
int qcache_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	struct qcache *c = qc_of(vm, size);
#if OS_RSEQ
	if (likely(qc_fast(vm)))
		return qc_alloc_rseq(vm, c, flags, addrp);
#endif
	return qc_alloc_slow(vm, c, flags, addrp);
}

/* A free the CPU layer could not take at once (the loaded magazine full,
 * or no rseq): the slot locked, magazines exchanged with the depot, or
 * straight back to the slab when there is no memory for a magazine. */
static void qc_free_to_cpu(vmem_t *vm, struct qcache *c, vmem_addr_t addr)
{
	struct qc_cpu *cc = qc_cpu_lock(vm, c);
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
	struct qc_mag *e = c->empty;
	if (e != NULL) {
		c->empty = e->next;
		c->nempty--;
	} else {
		e = qc_mag_new(c);
	}
	if (e != NULL) {
		/* the full previous magazine goes to the depot */
		struct qc_mag *old = cc->loaded;
		cc->prev->next = c->full;
		c->full = cc->prev;
		c->nfull++;
		qc_load(c, cc, e);
		cc->prev = old;
		pthread_mutex_unlock(&c->lock);
		goto push;
	}
	/* no memory for a magazine: straight back to the slab */
	qc_spin_unlock(&cc->lock);
	qc_return(vm, c, &addr, 1);
	c->frees++;
	pthread_mutex_unlock(&c->lock);
	return;
push:
	cc->loaded->obj[qc_rounds(cc)] = addr;
	cc->pushes++;
	qc_spin_unlock(&cc->lock);
}

static NOINLINE int qc_wake(vmem_t *vm)
{
	pthread_mutex_lock(&vm->lock);
	arena_wakeup(vm);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static NOINLINE int qc_free_slow(vmem_t *vm, struct qcache *c, vmem_addr_t addr,
				 vmem_size_t size)
{
	if (unlikely(vm->debug) && qc_debug_mark(vm, c, addr, false) != 0) {
		fprintf(stderr, "vmem: arena \"%s\": vmem_free(%#llx, %llu): not an outstanding allocation\n",
			vm->name, (unsigned long long)addr, (unsigned long long)size);
		return EINVAL;
	}
	qc_free_to_cpu(vm, c, addr);
	if (unlikely(__atomic_load_n(&vm->nwaiters, __ATOMIC_RELAXED) != 0))
		return qc_wake(vm);
	return 0;
}

#if OS_RSEQ
/* The sequence, else the slow path: vmem_free's cached case, and
 * qcache_free's where the sequence may run. */
static HOT_INLINE int qc_free_rseq(vmem_t *vm, struct qcache *c, vmem_addr_t addr)
{
	if (likely(qc_push_rseq(vm, c, addr))) {
		/* a waiter may want what this free made available */
		if (unlikely(__atomic_load_n(&vm->nwaiters, __ATOMIC_RELAXED) != 0))
			return qc_wake(vm);
		return 0;
	}
	return qc_free_slow(vm, c, addr, c->objsize);
}
#endif

int qcache_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	struct qcache *c = qc_of(vm, size);
#if OS_RSEQ
	if (likely(qc_fast(vm)))
		return qc_free_rseq(vm, c, addr);
#endif
	return qc_free_slow(vm, c, addr, size);
}

/* ---- vmem_alloc and vmem_free ----------------------------------------------- */

/* They live here because their common case is a hit in a CPU's magazine:
 * one compare against qc_alloc_max or qc_free_max (0 when the common path
 * may not run) admits a cached size, and the sequence follows inline.
 * Everything else, and every check, is arena_vmem_alloc/arena_vmem_free. */
VMEM_API int vmem_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
#if OS_RSEQ
	unsigned int f = (unsigned int)flags;
	/* size - 1 < qc_alloc_max rules out size 0; the flags: VM_SLEEP or
	 * VM_NOSLEEP or neither, and no policy but instant fit (best fit
	 * takes the longer way to the same caches) */
	if (likely(vm != NULL && addrp != NULL && size - 1 < vm->qc_alloc_max &&
		   (f & ~(unsigned int)VM_INSTANTFIT) < VM_SLEEPFLAGS))
		return qc_alloc_rseq(vm, qc_of(vm, size), flags, addrp);
#endif
	return arena_vmem_alloc(vm, size, flags, addrp);
}

VMEM_API int vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
#if OS_RSEQ
	if (likely(vm != NULL &&
		   size - 1 < __atomic_load_n(&vm->qc_free_max, __ATOMIC_RELAXED)))
		return qc_free_rseq(vm, qc_of(vm, size), addr);
#endif
	return arena_vmem_free(vm, addr, size);
}

/* After qc_rseq was decided (create, fork), while no other thread runs. */
static void qc_set_fast(vmem_t *vm)
{
	vm->qc_alloc_max = vm->qc_rseq && !vm->debug ? vm->qcache_max : 0;
	qcache_gate_free(vm, __atomic_load_n(&vm->arena_small, __ATOMIC_RELAXED) == 0);
#if OS_RSEQ
	vm->rseq_off = __rseq_offset;
#endif
}

void qcache_gate_free(vmem_t *vm, bool open)
{
	__atomic_store_n(&vm->qc_free_max, open ? vm->qc_alloc_max : 0, __ATOMIC_RELAXED);
}

/* ---- reap ----------------------------------------------------------------- */

static void qc_empty_mag(vmem_t *vm, struct qcache *c, struct qc_mag *m)
{
	qc_return(vm, c, m->obj, m->rounds);
	m->rounds = 0;
}

bool qcache_reap(vmem_t *vm)
{
	bool freed = false;
	for (unsigned int k = 0; k < vm->qc_n; k++) {
		struct qcache *c = qc_get(vm, k);
		/* objects in every magazine go back to their slabs */
		qc_cpus_lock(vm, c);
		if (vm->qc_rseq)
			os_rseq_fence(-1);
		pthread_mutex_lock(&c->lock);
		for (unsigned int i = 0; i < vm->qc_ncpu; i++) {
			struct qc_cpu *cc = &c->cpu[i];
			qc_return(vm, c, cc->loaded->obj, (uint32_t)qc_rounds(cc));
			qc_set_rounds(cc, 0);
			qc_empty_mag(vm, c, cc->prev);
		}
		qc_cpus_unlock(vm, c);
		while (c->full != NULL) {
			struct qc_mag *m = c->full;
			c->full = m->next;
			c->nfull--;
			qc_empty_mag(vm, c, m);
			m->next = c->empty;
			c->empty = m;
			c->nempty++;
		}
		/* then wholly free slabs go back to the arena */
		for (;;) {
			struct qc_slab *s = c->partial;
			while (s != NULL && s->nfree != QC_SLAB_OBJS)
				s = s->next;
			if (s == NULL)
				break;
			qc_partial_del(c, s);
			c->nslabs--;
			vmem_addr_t base = s->base;
			qc_rec_put((void **)&c->slabpool, s);
			pthread_mutex_unlock(&c->lock);
			arena_slab_free(vm, base);
			freed = true;
			pthread_mutex_lock(&c->lock);
		}
		pthread_mutex_unlock(&c->lock);
	}
	return freed;
}

/* ---- life cycle -------------------------------------------------------------- */

int qcache_init(vmem_t *vm)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	vm->qc_ncpu = n < 1 ? 1 : n > (long)QC_MAX_CPUS ? QC_MAX_CPUS : (unsigned int)n;
	vm->qc_n = (unsigned int)(vm->qcache_max >> vm->qshift);
	vm->qc_stride = (sizeof(struct qcache) + vm->qc_ncpu * sizeof(struct qc_cpu) + 63) & ~(size_t)63;
	vm->qc_bytes = os_round_page(vm->qc_n * vm->qc_stride);
	vm->qc = os_map(vm->qc_bytes);
	if (vm->qc == NULL)
		return ENOMEM;
	for (unsigned int k = 0; k < vm->qc_n; k++) {
		struct qcache *c = qc_get(vm, k);
		pthread_mutex_init(&c->lock, NULL);
		c->objsize = (vmem_size_t)(k + 1) << vm->qshift;
		c->slabsize = c->objsize * QC_SLAB_OBJS;
		c->slabalign = 1;
		while (c->slabalign < c->slabsize)
			c->slabalign <<= 1;
		c->magsize = QC_MAG_MIN;
		for (unsigned int i = 0; i < vm->qc_ncpu; i++) {
			struct qc_cpu *cc = &c->cpu[i];
			cc->loaded = qc_mag_new(c);
			cc->prev = qc_mag_new(c);
			if (cc->loaded == NULL || cc->prev == NULL) {
				qcache_fini(vm);
				return ENOMEM;
			}
			cc->cap = c->magsize;
		}
	}
	for (unsigned int k = 0; k < vm->qc_n; k++)
		vm->qc_tab[k] = qc_get(vm, k);
	vm->qc_rseq = os_rseq_enabled();
	qc_set_fast(vm);
	return 0;
}

void qcache_fini(vmem_t *vm)
{
	if (vm->qc == NULL)
		return;
	for (unsigned int k = 0; k < vm->qc_n; k++) {
		struct qcache *c = qc_get(vm, k);
		void *p = c->chunks;
		while (p != NULL) {
			void *next = *(void **)p;
			os_unmap(p, os_pagesize());
			p = next;
		}
		pthread_mutex_destroy(&c->lock);
	}
	os_unmap(vm->qc, vm->qc_bytes);
	vm->qc = NULL;
}

/* fork: take every cache lock before the arena's, in the lock order */
void qcache_lock_all(vmem_t *vm)
{
	for (unsigned int k = 0; k < vm->qc_n; k++) {
		struct qcache *c = qc_get(vm, k);
		qc_cpus_lock(vm, c);
		pthread_mutex_lock(&c->lock);
	}
	if (vm->qc_n != 0 && vm->qc_rseq)
		os_rseq_fence(-1);
}

void qcache_unlock_all(vmem_t *vm)
{
	for (unsigned int k = 0; k < vm->qc_n; k++) {
		struct qcache *c = qc_get(vm, k);
		pthread_mutex_unlock(&c->lock);
		qc_cpus_unlock(vm, c);
	}
}

void qcache_child(vmem_t *vm)
{
	qcache_unlock_all(vm);
	vm->qc_rseq = vm->qc != NULL && os_rseq_enabled(); /* os_rseq_child decided */
	qc_set_fast(vm);
}

/* ---- looking inside: callers hold no lock -------------------------------- */

/* One cache's figures; every slot and the depot locked. */
static void qc_info_locked(const vmem_t *vm, const struct qcache *c, struct qcache_info *qi)
{
	memset(qi, 0, sizeof(*qi));
	qi->objsize = c->objsize;
	qi->slabsize = c->slabsize;
	qi->slabalign = c->slabalign;
	qi->magsize = c->magsize;
	for (unsigned int i = 0; i < vm->qc_ncpu; i++) {
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
	qi->cached = (c->nslabs * QC_SLAB_OBJS - (qi->allocs - qi->frees)) * c->objsize;
}

int qcache_info(vmem_t *vm, vmem_size_t size, struct qcache_info *qi)
{
	if (size == 0 || size > vm->qcache_max || (size & (vm->quantum - 1)) != 0)
		return EINVAL;
	qcache_lock_all(vm);
	qc_info_locked(vm, qc_of(vm, size), qi);
	qcache_unlock_all(vm);
	return 0;
}

void qcache_stats(vmem_t *vm, vmem_stats_t *st)
{
	/* one fence for every slot of every cache: a snapshot */
	qcache_lock_all(vm);
	for (unsigned int k = 0; k < vm->qc_n; k++) {
		struct qcache_info qi;
		qc_info_locked(vm, qc_get(vm, k), &qi);
		st->qcache_hits += qi.hits;
		st->qcache_misses += qi.misses;
		st->allocs += qi.allocs;
		st->frees += qi.frees;
		st->cached_total += qi.cached;
	}
	qcache_unlock_all(vm);
}

void qcache_dump(vmem_t *vm, FILE *fp)
{
	if (vm->qc_n == 0) {
		fprintf(fp, "  caches: none\n");
		return;
	}
	fprintf(fp, "  caches (%u CPUs, %s):\n", vm->qc_ncpu,
		vm->qc_rseq ? "lock-free CPU layer (rseq)" : "CPU layer under spinlocks");
	qcache_lock_all(vm);
	for (unsigned int k = 0; k < vm->qc_n; k++) {
		struct qcache_info qi;
		qc_info_locked(vm, qc_get(vm, k), &qi);
		fprintf(fp,
			"    %llu units: magazines of %u (%llu objects on CPUs), depot %llu full + %llu "
			"empty, %llu slabs (%llu partial, %llu objects free), %llu hits, %llu misses\n",
			(unsigned long long)qi.objsize, qi.magsize, (unsigned long long)qi.cpu_rounds,
			(unsigned long long)qi.nfull, (unsigned long long)qi.nempty,
			(unsigned long long)qi.nslabs, (unsigned long long)qi.npartial,
			(unsigned long long)qi.slab_free, (unsigned long long)qi.hits,
			(unsigned long long)qi.misses);
	}
	qcache_unlock_all(vm);
}

size_t qcache_bytes(const vmem_t *vm)
{
	size_t n = vm->qc_bytes;
	for (unsigned int k = 0; k < vm->qc_n; k++)
		n += __atomic_load_n(&qc_get(vm, k)->chunk_bytes, __ATOMIC_RELAXED);
	return n;
}
