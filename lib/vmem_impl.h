/*
 * vmem_impl.h - libvmem internals, grouped by the file that owns them.
 * The Big Theory Statement is at the top of arena.c; invariants are
 * numbered there (I1..I12) and cited by check.c and by asserts.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_IMPL_H
#define VMEM_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmem.h"
#include "seams.h"

#define VMEM_API __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
/* On a definition: inline it wherever the unity build sees a call (hot paths). */
#define HOT_INLINE __attribute__((always_inline)) inline
#define NOINLINE __attribute__((noinline))

#define VM_SLEEPFLAGS (VM_SLEEP | VM_NOSLEEP)
#define VM_POLICIES (VM_INSTANTFIT | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT)
#define VM_ALLOCFLAGS (VM_SLEEPFLAGS | VM_POLICIES)
/* internal: a failure is counted by the caller, not by arena_alloc */
#define VM_NOFAILCOUNT 0x40000000

/* ---- bt: boundary tags -------------------------------------------------- */

/* Tags live in one table per arena and refer to each other by 32-bit index,
 * which keeps a tag at 48 bytes (see arena.c, "Memory"). */
typedef uint32_t bt_idx;
#define BT_NIL 0u  /* "no tag"; its max is 0, which ends every treap search */
#define BT_HEAD 1u /* sentinel of the address list and of the span list */
#define BT_FIRST 2u
#define BT_IDX_MAX ((1u << 29) - 1)

enum bt_type {
	BT_UNUSED = 0,      /* on the unused-tag chain */
	BT_SENTINEL = 1,    /* BT_NIL and BT_HEAD */
	BT_SPAN = 2,        /* span marker, added by vmem_create/vmem_add */
	BT_SPAN_IMPORT = 3, /* span marker, imported: released when wholly free */
	BT_FREE = 4,        /* free segment: on a freelist and in the treap */
	BT_BUSY = 5,        /* allocated by vmem_alloc: in the hash */
	BT_BUSY_X = 6,      /* allocated by vmem_xalloc: in the hash */
	BT_BUSY_QC = 7,     /* a quantum-cache slab: in the hash */
};

struct bt {
	vmem_addr_t start;
	vmem_size_t size;       /* units; a span may end exactly at 2^64 */
	bt_idx prev, next;      /* address order, circular through BT_HEAD */
	bt_idx lnext;           /* FREE: freelist; SPAN: span list; BUSY: hash chain; UNUSED: chain */
	unsigned int lprev : 29; /* FREE: freelist; SPAN: span list */
	unsigned int type : 3;
	bt_idx left, right;     /* FREE, SPAN: treap children, ordered by start */
	bt_idx parent;          /* FREE, SPAN: treap parent (BT_NIL at the root) */
	uint32_t max;           /* FREE: largest size in this treap subtree, in quanta, saturating */
};

static inline bool bt_is_span(const struct bt *b)
{
	return b->type == BT_SPAN || b->type == BT_SPAN_IMPORT;
}
static inline bool bt_is_busy(const struct bt *b)
{
	return b->type >= BT_BUSY;
}
/* Last unit of a tag's range; never wraps because spans may not. */
static inline vmem_addr_t bt_last(const struct bt *b)
{
	return b->start + (b->size - 1);
}

/* ---- the arena ------------------------------------------------------- */

#define VMEM_NCLASS 64

struct vmem {
	pthread_mutex_t lock;
	pthread_cond_t cv;

	/* tagslab.c */
	struct bt *bt;
	uint32_t bt_cap;     /* tags mapped */
	uint32_t bt_nunused; /* tags on the unused chain */
	bt_idx bt_unused;    /* head of the unused chain */
	size_t bt_bytes;

	/* hash.c */
	bt_idx *hash;
	uint64_t hash_mask;
	unsigned int hash_shift;
	size_t hash_bytes;
	/* resize when nalloc goes above grow or below shrink (I11): the
	 * bounds of the table's load, worked out once per size */
	uint64_t hash_grow, hash_shrink;

	/* freelist.c and tree.c */
	uint64_t fl_bitmap; /* bit k: fl_head[k] not empty */
	bt_idx fl_head[VMEM_NCLASS];
	bool fl_on; /* the freelists are built lazily, on the first search that needs them */
	bt_idx tree_root;
	bool tree_on; /* the treap is built lazily, on the first search that needs it */
	bt_idx span_root; /* treap of span markers */
	uint64_t tree_seed;

	vmem_size_t quantum;
	unsigned int qshift;
	vmem_size_t qcache_max;
	bool debug;
	bool valgrind; /* running under valgrind: describe tags to memcheck */
	bool ever_allocated;
	unsigned int nwaiters;

	/* next fit: the end of the previous VM_NEXTFIT allocation, as an
	 * address so that it never pins a tag (no blocked coalescing) */
	vmem_addr_t rotor;
	bt_idx rotor_hint;      /* the tag after the previous one; checked before use */
	vmem_addr_t rotor_last; /* where the previous next-fit allocation starts */

	/* import.c */
	vmem_import_fn *importfn;
	vmem_release_fn *releasefn;
	void *import_arg;
	vmem_t *source;
	vmem_size_t import_quantum;
	vmem_size_t limit;
	vmem_reclaim_fn *reclaimfn;
	void *reclaim_arg;

	/* totals: I9.  Every unit of a span is free or allocated, so the free
	 * total is not kept but derived (arena_free_total): one counter less
	 * to update on every allocation and free. */
	vmem_size_t span_total, alloc_total, import_total;
	uint64_t nspans, nalloc, nfree;
	uint64_t allocs, frees, fails, imports, releases, waits;

	/* qcache.c: one cache per multiple of the quantum up to qcache_max */
	void *qc;
	size_t qc_stride, qc_bytes;
	unsigned int qc_n, qc_ncpu;
	bool qc_rseq; /* the CPU layer runs as rseq sequences (os.c) */
	/* vmem_alloc and vmem_free take the common path for size - 1 below
	 * these: qcache_max while it may run (qc_rseq and not debug; and, for
	 * frees, while arena_small is 0), else 0, so that one compare decides */
	vmem_size_t qc_alloc_max, qc_free_max;
	ptrdiff_t rseq_off; /* __rseq_offset, read through vm rather than the GOT */
	struct qcache *qc_tab[VMEM_QCACHE_MAX]; /* by (size - 1) >> qshift */
	/* arena-path allocations of cached sizes (first/next fit, xalloc):
	 * while there are none, every cached-size free is a cache object */
	uint64_t arena_small;

	/* arena.c: the global list, for fork */
	vmem_t *gnext, *gprev;
	size_t self_bytes;
	char name[VMEM_NAMELEN];
};

static inline struct bt *BT(const vmem_t *vm, bt_idx i)
{
	return &vm->bt[i];
}

static inline vmem_size_t arena_free_total(const vmem_t *vm)
{
	return vm->span_total - vm->alloc_total;
}

/* ---- os.c: the only file that talks to the kernel ---------------------- */

void *os_map(size_t bytes);                          /* NULL on failure */
void *os_remap(void *p, size_t old, size_t bytes);   /* NULL on failure; p unchanged */
void os_unmap(void *p, size_t bytes);
size_t os_pagesize(void);
size_t os_round_page(size_t bytes);
void os_lock_init(pthread_mutex_t *m, pthread_cond_t *cv);
void os_cond_init(pthread_cond_t *cv); /* on CLOCK_MONOTONIC */
/* os_fault_after, os_map_calls, os_mapped_bytes, os_debug_env: seams.h */

/* The CPU layer of the quantum caches runs as rseq critical sections on
 * x86-64 with glibc 2.35 or later; elsewhere, and under ThreadSanitizer
 * (which cannot see into them), it takes a spinlock. */
#if defined(__x86_64__) && defined(__GLIBC__) && \
	(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OS_RSEQ 0
#endif
#endif
#ifndef OS_RSEQ
#define OS_RSEQ 1
#endif
#else
#define OS_RSEQ 0
#endif
#if OS_RSEQ
#include <sys/rseq.h>
static inline struct rseq *os_rseq_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}
#endif
bool os_rseq_enabled(void);   /* rseq and its fence both work here */
void os_rseq_child(void);     /* after fork, in the child */
void os_rseq_fence(int cpu);  /* restart sequences on cpu; < 0: on every CPU */
unsigned int os_cpu(void);    /* the CPU this thread runs on (may be stale at once) */

/* Tags are described to valgrind memcheck as heap blocks, so a tag that
 * leaks or is used after tagslab_put shows up in its reports.  Reading an
 * unused tag on purpose (the unused chain, a stale hint) is done quietly. */
#ifdef VMEM_VALGRIND
#include <valgrind/memcheck.h>
/* vm->valgrind is read once at creation: outside valgrind a branch, not a
 * client request, is all the hot paths pay */
#define VG(vm, req) do { if (unlikely((vm)->valgrind)) { req; } } while (0)
#define TAG_ALIVE(vm, p) VG(vm, VALGRIND_MALLOCLIKE_BLOCK((p), sizeof(struct bt), 0, 1))
#define TAG_DEAD(vm, p) VG(vm, VALGRIND_FREELIKE_BLOCK((p), 0))
#define TAG_NOACCESS(vm, p, n) VG(vm, VALGRIND_MAKE_MEM_NOACCESS((p), (n)))
#define QUIET_BEGIN(vm) VG(vm, VALGRIND_DISABLE_ERROR_REPORTING)
#define QUIET_END(vm) VG(vm, VALGRIND_ENABLE_ERROR_REPORTING)
#define ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define TAG_ALIVE(vm, p) ((void)(vm), (void)(p))
#define TAG_DEAD(vm, p) ((void)(vm), (void)(p))
#define TAG_NOACCESS(vm, p, n) ((void)(vm), (void)(p), (void)(n))
#define QUIET_BEGIN(vm) ((void)(vm))
#define QUIET_END(vm) ((void)(vm))
#define ON_VALGRIND() 0
#endif

/* ---- tagslab.c: the tag table ------------------------------------------ */

int tagslab_init(vmem_t *vm);
void tagslab_fini(vmem_t *vm);
int tagslab_grow(vmem_t *vm, uint32_t n); /* 0 or ENOMEM; may move vm->bt */
/* Make sure n tags can be had without failing; 0 or ENOMEM; may move vm->bt. */
static inline int tagslab_reserve(vmem_t *vm, uint32_t n)
{
	return likely(vm->bt_nunused >= n) ? 0 : tagslab_grow(vm, n);
}
bt_idx tagslab_get(vmem_t *vm);              /* only after a reserve */
void tagslab_put(vmem_t *vm, bt_idx i);

/* ---- bt.c: the address-ordered list ------------------------------------ */

void bt_insert_before(vmem_t *vm, bt_idx at, bt_idx n);
void bt_insert_after(vmem_t *vm, bt_idx at, bt_idx n);
void bt_unlink(vmem_t *vm, bt_idx n);

/* ---- freelist.c: power-of-two freelists -------------------------------- */

static inline unsigned int freelist_class(vmem_size_t size)
{
	return 63u - (unsigned int)__builtin_clzll(size);
}
/* Both keep vm->nfree, and the lists once built; remove uses b->size, so
 * call it before a size changes. */
void freelist_insert(vmem_t *vm, bt_idx i);
void freelist_remove(vmem_t *vm, bt_idx i);
/* Free segment i is to take size: it moves to that size's list, if
 * another; nfree is unchanged.  Call it before the size changes. */
void freelist_resize(vmem_t *vm, bt_idx i, vmem_size_t size);
/* Build the lists if they are not yet: before any search that reads them. */
void freelist_need(vmem_t *vm);

/* ---- tree.c: treap of free segments by address, with subtree max size --- */
/* insert, remove and update do nothing until the treap is built */

void tree_insert(vmem_t *vm, bt_idx i);
void tree_remove(vmem_t *vm, bt_idx i);
/* after a free segment's start or size changed without passing another free segment */
void tree_update(vmem_t *vm, bt_idx i);
struct fitreq;
/* Lowest-addressed free segment with a fit at or above req->minaddr. */
uint32_t tree_prio(const vmem_t *vm, bt_idx i);
/* size in quanta, saturated to 32 bits: the unit of struct bt's max */
uint32_t tree_units(const vmem_t *vm, vmem_size_t size);
/* Builds the treap on first use. */
bt_idx tree_first_fit(vmem_t *vm, const struct fitreq *req, vmem_addr_t *addrp);
/* The span treap: span markers by start (I2). */
void tree_span_insert(vmem_t *vm, bt_idx si);
void tree_span_remove(vmem_t *vm, bt_idx si);
/* The span with the greatest start <= addr, or BT_NIL. */
bt_idx tree_span_floor(const vmem_t *vm, vmem_addr_t addr);

/* ---- hash.c: allocated segments by start ------------------------------- */

int hash_init(vmem_t *vm);
void hash_fini(vmem_t *vm);
void hash_insert(vmem_t *vm, bt_idx i);
bt_idx hash_lookup(const vmem_t *vm, vmem_addr_t start);
/* Like hash_lookup, also giving the link that points at the tag ... */
bt_idx hash_find(vmem_t *vm, vmem_addr_t start, bt_idx **linkp);
/* ... so that it can be taken out without a second walk. */
void hash_unlink(vmem_t *vm, bt_idx *link, bt_idx i);
void hash_resize(vmem_t *vm);                      /* best effort, never fails */

/* ---- fit.c: the pure fit function --------------------------------------- */

struct fitreq {
	vmem_size_t size;  /* rounded, > 0 */
	vmem_size_t align; /* power of two >= quantum */
	vmem_size_t phase; /* < align */
	vmem_size_t nocross; /* 0 or power of two >= size */
	vmem_addr_t minaddr, maxaddr; /* inclusive */
};
static inline bool fitreq_plain(const struct fitreq *r, vmem_size_t quantum)
{
	return r->align == quantum && r->nocross == 0 && r->minaddr == VMEM_ADDR_MIN &&
	       r->maxaddr == VMEM_ADDR_MAX;
}
/* Lowest a in [start, start + size) meeting req, without wrapping. */
bool fit(vmem_addr_t start, vmem_size_t size, const struct fitreq *req, vmem_addr_t *addrp);

/* ---- seg.c: segment operations under the arena lock --------------------- */

/* Free segment fi becomes [a, a + size) busy of type t, returned in *busyp;
 * 0 or ENOMEM (no tags), the arena unchanged on failure. */
int seg_carve(vmem_t *vm, bt_idx fi, vmem_addr_t a, vmem_size_t size, unsigned int type,
	      bt_idx *busyp);
/* Busy segment bi becomes free and coalesces.  Returns the free tag. */
bt_idx seg_release(vmem_t *vm, bt_idx bi);
/* New span [addr, addr + size); 0 or ENOMEM. */
int seg_add_span(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, bool imported, bt_idx *spanp);
/* If span si is wholly free, take it out of the arena and return true. */
bool seg_span_free(vmem_t *vm, bt_idx si);
/* The span marker of an imported span that free segment fi fills wholly, else BT_NIL. */
bt_idx seg_whole_span(const vmem_t *vm, bt_idx fi);
/* The free segment that starts at the next-fit rotor if it holds size,
 * else BT_NIL: then the first fit of a plain request at or after the rotor. */
bt_idx seg_nextfit_hint(const vmem_t *vm, vmem_size_t size);
/* Search for a fit by policy; BT_NIL if none. */
bt_idx seg_find(vmem_t *vm, const struct fitreq *req, int policy, vmem_addr_t *addrp);

/* ---- import.c: sources -------------------------------------------------- */

/* Called with the lock held, returns with it held (drops it meanwhile).
 * 0: a span was added (*spanp); else an errno. */
int import_span(vmem_t *vm, const struct fitreq *req, int flags, bt_idx *spanp);
/* Called with the lock NOT held: give a span back to its source. */
void import_release(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);

/* ---- check.c: the invariant checker ------------------------------------- */

/* vmem_check and the other test seams: seams.h */

/* ---- qcache.c: quantum caches ------------------------------------------- */

int qcache_init(vmem_t *vm);
void qcache_fini(vmem_t *vm);
/* Any cached size, any mode (vmem_alloc and vmem_free in qcache.c try the
 * common path first, and send the rest to arena.c's arena_vmem_*). */
int qcache_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp);
int qcache_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);
/* arena_small became 0 (open) or left it, lock held: while the arena holds
 * segments of cached sizes, vmem_free must ask the hash who owns one. */
void qcache_gate_free(vmem_t *vm, bool open);
/* addr is where an object of this size lies in one of the caches' slabs;
 * arena lock held.  Says nothing of whether a caller holds it. */
bool qcache_owns(const vmem_t *vm, vmem_addr_t addr, vmem_size_t size);
/* Everything cached goes back to the arena; true if a slab was freed.
 * Takes every lock of the caches and the arena's: call with none held. */
bool qcache_reap(vmem_t *vm);
void qcache_lock_all(vmem_t *vm);
void qcache_unlock_all(vmem_t *vm);
void qcache_child(vmem_t *vm); /* after fork: unlock, and rseq or not anew */
void qcache_stats(vmem_t *vm, vmem_stats_t *st); /* adds the caches' figures */
void qcache_dump(vmem_t *vm, FILE *fp);
/* One cache's contents (size: a cached size), for vmem_dump and tests.  In
 * a quiet arena, objects are conserved: nslabs * QCACHE_SLAB_OBJS equals
 * slab_free + cpu_rounds + depot_rounds + the objects callers hold. */
#define QCACHE_SLAB_OBJS 64u
struct qcache_info {
	vmem_size_t objsize, slabsize, slabalign;
	uint32_t magsize;
	uint64_t cpu_rounds;            /* objects in the CPUs' magazines */
	uint64_t nfull, nempty, depot_rounds;
	uint64_t nslabs, npartial, slab_free;
	uint64_t allocs, frees, hits, misses;
	vmem_size_t cached;             /* units in slabs that no caller holds */
};
int qcache_info(vmem_t *vm, vmem_size_t size, struct qcache_info *qi); /* 0 or EINVAL */
void qcache_depot_hold(vmem_t *vm, vmem_size_t size, bool hold); /* test seam */
size_t qcache_bytes(const vmem_t *vm);

/* ---- arena.c ------------------------------------------------------------ */

void arena_wakeup(vmem_t *vm);
/* A slab for a quantum cache: an allocated segment of type BT_BUSY_QC that
 * is not a caller's allocation.  Never sleeps; 0 or ENOMEM. */
int arena_slab_alloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, int flags,
		     vmem_addr_t *addrp);
void arena_slab_free(vmem_t *vm, vmem_addr_t addr);
/* One object of a cached size straight from the arena, when no slab fits
 * (counted as an arena allocation, freed by the arena path).  0 or ENOMEM. */
int arena_small_alloc(vmem_t *vm, vmem_size_t size, vmem_addr_t *addrp);
/* vmem_alloc and vmem_free past the caches' common path: every check, then
 * the caches' other paths or the arena. */
int arena_vmem_alloc(vmem_t *vm, vmem_size_t size, int flags, vmem_addr_t *addrp);
int arena_vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);

#endif /* VMEM_IMPL_H */
