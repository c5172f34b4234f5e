/*
 * arena_impl.h - the arena layer's own header: boundary tags, struct
 * arena, and the functions of each file below the arena's entry points,
 * grouped by the file that owns them.  Only the arena layer (arena.c,
 * seg.c, import.c, introspect.c and the structures: tagslab.c, bt.c,
 * freelist.c, tree.c, hash.c, fit.c), the front door (which embeds struct
 * arena in struct vmem) and the checker include it.  The Big Theory
 * Statement is at the top of arena.c; its invariants are numbered there,
 * I1..I11 and I13 verified by check.c and I12 by the tests.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_ARENA_IMPL_H
#define VMEM_ARENA_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "os.h"

/* ---- bt: boundary tags -------------------------------------------------- */

/* Tags live in one table per arena and refer to each other by 32-bit index,
 * which keeps a tag at 32 bytes, half a cache line (see arena.c, "Memory"). */
typedef uint32_t bt_idx;
#define BT_NIL 0u  /* "no tag"; its node's max is 0, which ends every treap search */
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

/* The hot part: everything an allocation and a free read and write. */
struct bt {
	vmem_addr_t start;
	vmem_size_t size;        /* units; a span may end exactly at 2^64 */
	bt_idx prev, next;       /* address order, circular through BT_HEAD */
	bt_idx lnext;            /* FREE: freelist; SPAN: span list; BUSY: hash chain; UNUSED: chain */
	unsigned int lprev : 29; /* FREE: freelist; SPAN: span list */
	unsigned int type : 3;
};

/* The cold part, in a table of its own beside the tags with the same
 * index (struct arena's bt_node): what only the treaps and the caches'
 * slabs need, so that an arena without them never maps it. */
struct bt_node {
	bt_idx left, right; /* FREE, SPAN: treap children, ordered by start; BUSY_QC: the slab's cookie */
	bt_idx parent;      /* FREE, SPAN: treap parent (BT_NIL at the root) */
	uint32_t max;       /* FREE: largest size in this treap subtree, in quanta, saturating */
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
#define ARENA_RECENT_FREES 64

struct arena {
	/* Read without the lock by the front door on every cached free: the
	 * free gate (arena_set_caches), and whether anyone sleeps. */
	vmem_size_t free_gate;
	unsigned int nwaiters;

	pthread_mutex_t lock;
	pthread_cond_t cv;

	/* tagslab.c */
	struct bt *bt;
	uint32_t bt_cap;     /* tags mapped */
	uint32_t bt_nunused; /* tags on the unused chain or fresh */
	bt_idx bt_unused;    /* head of the unused chain */
	bt_idx bt_fresh;     /* tags from here to bt_cap were never used: all zero (I7) */
	size_t bt_bytes;
	/* bit i: tag i is a free segment (I13).  A free reads its address
	 * neighbours' free-ness here, 512 tags to a cache line, instead of
	 * in the neighbours' own tags, which are random lines once tags
	 * recycle: a neighbour's tag is touched only to merge with it. */
	uint64_t *bt_freemap;
	size_t bt_freemap_bytes;
	/* the tags' cold parts (struct bt_node), NULL until the first treap or
	 * slab cookie needs them (tree_need_nodes); from then on they cover
	 * every tag mapped, and the span treap is kept in them */
	struct bt_node *bt_node;
	size_t bt_node_bytes;
	/* mapped by the operation under way, which gives them back if it
	 * fails (I12): cleared by every success that may rely on them */
	bool bt_node_new;

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
	bt_idx tree_pending; /* the newest free segment, not yet in the treap (I5) */
	bool tree_on; /* the treap is built lazily, on the first search that needs it */
	bt_idx span_root; /* treap of span markers */
	uint64_t tree_seed;

	vmem_size_t quantum;
	unsigned int qshift;
	int debug; /* OS_DEBUG_* */
	bool valgrind; /* running under valgrind memcheck: describe tags to it */
	bool ever_allocated;

	/* next fit: the end of the previous VM_NEXTFIT allocation, as an
	 * address so that it never pins a tag (no blocked coalescing) */
	vmem_addr_t rotor;
	bt_idx rotor_hint;      /* the tag after the previous one; checked before use */
	vmem_addr_t rotor_last; /* where the previous next-fit allocation starts */

	/* import.c */
	vmem_import_fn *importfn;
	vmem_release_fn *releasefn;
	void *import_arg;
	vmem_t *source;          /* its handle, for the public calls */
	struct arena *source_ar; /* its arena, to refuse a loop of sources */
	vmem_size_t import_quantum;
	vmem_size_t limit;
	vmem_reclaim_fn *reclaimfn;
	void *reclaim_arg;
	vmem_t *self; /* the handle reclaim callbacks receive */

	/* the caches' hooks (arena_set_caches): sizes up to small_max are
	 * theirs; arena_small counts the arena's own segments of such sizes
	 * (first and next fit, xalloc, objects alone), and free_gate is
	 * gate_open exactly while it is 0 */
	vmem_size_t small_max, gate_open;
	uint64_t arena_small;
	arena_reap_fn *reap;
	void *reap_arg;

	/* totals: I9.  Every unit of a span is free or allocated, so the free
	 * total is not kept but derived (arena_free_total): one counter less
	 * to update on every allocation and free. */
	vmem_size_t span_total, alloc_total, import_total;
	uint64_t nspans, nalloc, nfree;
	uint64_t allocs, frees, fails, imports, releases, waits;

	/* under debug, the last frees, so that a report can tell a double
	 * free from a free of something never allocated */
	struct { vmem_addr_t addr; vmem_size_t size; } recent[ARENA_RECENT_FREES];
	unsigned int recent_next;

	char name[VMEM_NAMELEN];
};

static inline struct bt *BT(const struct arena *ar, bt_idx i)
{
	return &ar->bt[i];
}
/* Tag i's cold part; only once the nodes are mapped. */
static inline struct bt_node *BN(const struct arena *ar, bt_idx i)
{
	return &ar->bt_node[i];
}
/* A quantum-cache slab's cookie, kept in its busy tag's left and right,
 * which a busy tag's treap does not use (I7). */
static inline uintptr_t bt_node_cookie(const struct bt_node *n)
{
	return (uintptr_t)(((uint64_t)n->right << 32) | n->left);
}
static inline void bt_node_set_cookie(struct bt_node *n, uintptr_t cookie)
{
	n->left = (bt_idx)cookie;
	n->right = (bt_idx)((uint64_t)cookie >> 32);
}

/* The free map (I13): set with every change of a tag to or from BT_FREE. */
static inline bool bt_free_at(const struct arena *ar, bt_idx i)
{
	return (ar->bt_freemap[i >> 6] & (1ull << (i & 63))) != 0;
}
static inline void bt_map_free(struct arena *ar, bt_idx i)
{
	ar->bt_freemap[i >> 6] |= 1ull << (i & 63);
}
static inline void bt_map_unfree(struct arena *ar, bt_idx i)
{
	ar->bt_freemap[i >> 6] &= ~(1ull << (i & 63));
}

static inline vmem_size_t arena_free_total(const struct arena *ar)
{
	return ar->span_total - ar->alloc_total;
}

/* Tags are described to valgrind memcheck as heap blocks (os.h).
 * ar->valgrind is read once at creation: outside valgrind a branch, not a
 * client request, is all the hot paths pay. */
#ifdef VMEM_VALGRIND
#define VG(ar, req) do { if (unlikely((ar)->valgrind)) { req; } } while (0)
#define TAG_ALIVE(ar, p) VG(ar, VALGRIND_MALLOCLIKE_BLOCK((p), sizeof(struct bt), 0, 1))
#define TAG_DEAD(ar, p) VG(ar, VALGRIND_FREELIKE_BLOCK((p), 0))
#define TAG_NOACCESS(ar, p, n) VG(ar, VALGRIND_MAKE_MEM_NOACCESS((p), (n)))
#define QUIET_BEGIN(ar) VG(ar, VALGRIND_DISABLE_ERROR_REPORTING)
#define QUIET_END(ar) VG(ar, VALGRIND_ENABLE_ERROR_REPORTING)
#else
#define TAG_ALIVE(ar, p) ((void)(ar), (void)(p))
#define TAG_DEAD(ar, p) ((void)(ar), (void)(p))
#define TAG_NOACCESS(ar, p, n) ((void)(ar), (void)(p), (void)(n))
#define QUIET_BEGIN(ar) ((void)(ar))
#define QUIET_END(ar) ((void)(ar))
#endif

/* ---- tagslab.c: the tag table ------------------------------------------ */

int tagslab_init(struct arena *ar);
void tagslab_fini(struct arena *ar);
int tagslab_grow(struct arena *ar, uint32_t n); /* 0 or ENOMEM; may move ar->bt */
/* Make sure n tags can be had without failing; 0 or ENOMEM; may move ar->bt. */
int tagslab_reserve(struct arena *ar, uint32_t n);
bt_idx tagslab_get(struct arena *ar); /* only after a reserve */
void tagslab_put(struct arena *ar, bt_idx i);
/* Map the tags' cold parts, all clear, covering every tag; they then grow
 * with the table.  Only while they are not mapped; 0 or ENOMEM. */
int tagslab_map_nodes(struct arena *ar);
void tagslab_unmap_nodes(struct arena *ar);

/* ---- bt.c: the address-ordered list ------------------------------------ */

void bt_insert_before(struct arena *ar, bt_idx at, bt_idx n);
void bt_insert_after(struct arena *ar, bt_idx at, bt_idx n);
void bt_unlink(struct arena *ar, bt_idx n);

/* ---- freelist.c: power-of-two freelists -------------------------------- */

static inline unsigned int freelist_class(vmem_size_t size)
{
	return 63u - (unsigned int)__builtin_clzll(size);
}
/* Both keep ar->nfree, and the lists once built; remove uses b->size, so
 * call it before a size changes. */
void freelist_insert(struct arena *ar, bt_idx i);
void freelist_remove(struct arena *ar, bt_idx i);
/* Free segment i is to take size: it moves to that size's list, if
 * another; nfree is unchanged.  Call it before the size changes. */
void freelist_resize(struct arena *ar, bt_idx i, vmem_size_t size);
/* Build the lists if they are not yet: before any search that reads them. */
void freelist_need(struct arena *ar);
/* Instant fit's probe: the head of the smallest list all of whose members
 * hold size (> 0), or BT_NIL; lists not yet built are empty. */
static inline bt_idx freelist_surely_fits(const struct arena *ar, vmem_size_t size)
{
	unsigned int k = freelist_class(size) + ((size & (size - 1)) != 0);
	uint64_t m = k < 64 ? ar->fl_bitmap >> k : 0;
	return m != 0 ? ar->fl_head[k + (unsigned int)__builtin_ctzll(m)] : BT_NIL;
}

/* ---- tree.c: treap of free segments by address, with subtree max size --- */
/* insert, remove and update do nothing until the treap is built */

void tree_insert(struct arena *ar, bt_idx i);
void tree_remove(struct arena *ar, bt_idx i);
/* after a free segment's start or size changed without passing another free segment */
void tree_update(struct arena *ar, bt_idx i);
struct fitreq;
uint32_t tree_prio(const struct arena *ar, bt_idx i);
/* size in quanta, saturated to 32 bits: the unit of struct bt_node's max */
uint32_t tree_units(const struct arena *ar, vmem_size_t size);
/* Lowest-addressed free segment with a fit at or above req->minaddr.
 * Builds the treap on first use; BT_NIL also when its nodes cannot be
 * mapped then (the search fails as if nothing fitted: ENOMEM). */
bt_idx tree_first_fit(struct arena *ar, const struct fitreq *req, vmem_addr_t *addrp);
/* The tags' cold parts are mapped, and the span treap built in them, the
 * first time the arena needs them: its first treap search, its second span,
 * its first slab.  0 or ENOMEM, the arena unchanged on failure. */
int tree_need_nodes(struct arena *ar);
/* An operation that fails gives back the cold parts it mapped, so that it
 * changes nothing (I12): the treaps go with them, to be built again by the
 * next search that needs them.  Lock held. */
void tree_failed_locked(struct arena *ar);
/* An operation that succeeded keeps them.  Lock held. */
static inline void tree_kept_locked(struct arena *ar)
{
	ar->bt_node_new = false;
}
/* The span treap: span markers by start (I2), kept once the nodes are
 * mapped; before, the arena has one span at most, and the span list is
 * all there is.  Insert and remove do nothing until then. */
void tree_span_insert(struct arena *ar, bt_idx si);
void tree_span_remove(struct arena *ar, bt_idx si);
/* The span with the greatest start <= addr, or BT_NIL. */
bt_idx tree_span_floor(const struct arena *ar, vmem_addr_t addr);

/* ---- hash.c: allocated segments by start ------------------------------- */

int hash_init(struct arena *ar);
void hash_fini(struct arena *ar);
void hash_insert(struct arena *ar, bt_idx i);
bt_idx hash_lookup(const struct arena *ar, vmem_addr_t start);
/* Like hash_lookup, also giving the link that points at the tag ... */
bt_idx hash_find(struct arena *ar, vmem_addr_t start, bt_idx **linkp);
/* ... so that it can be taken out without a second walk.  It leaves the
 * shrink to its caller, who calls hash_resize when nalloc falls below
 * hash_shrink, before the lock is dropped (I11). */
void hash_unlink(struct arena *ar, bt_idx *link, bt_idx i);
void hash_resize(struct arena *ar); /* best effort, never fails */

/* ---- fit.c: the pure fit function --------------------------------------- */

struct fitreq {
	vmem_size_t size;             /* rounded, > 0 */
	vmem_size_t align;            /* power of two >= quantum */
	vmem_size_t phase;            /* < align */
	vmem_size_t nocross;          /* 0 or power of two >= size */
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
int seg_carve(struct arena *ar, bt_idx fi, vmem_addr_t a, vmem_size_t size, unsigned int type,
	      bt_idx *busyp);
/* Busy segment bi becomes free and coalesces.  Returns the free tag. */
bt_idx seg_release(struct arena *ar, bt_idx bi);
/* New span [addr, addr + size); 0, EINVAL (overlap) or ENOMEM. */
int seg_add_span(struct arena *ar, vmem_addr_t addr, vmem_size_t size, bool imported,
		 bt_idx *spanp);
/* If span si is wholly free, take it out of the arena and return true. */
bool seg_span_free(struct arena *ar, bt_idx si);
/* The span marker of an imported span that free segment fi fills wholly, else BT_NIL. */
bt_idx seg_whole_span(const struct arena *ar, bt_idx fi);
/* The free segment that starts at the next-fit rotor if it holds size,
 * else BT_NIL: then the first fit of a plain request at or after the rotor. */
bt_idx seg_nextfit_hint(const struct arena *ar, vmem_size_t size);
/* Search for a fit by policy; BT_NIL if none. */
bt_idx seg_find(struct arena *ar, const struct fitreq *req, int policy, vmem_addr_t *addrp);

/* ---- import.c: sources -------------------------------------------------- */

/* Lock held on entry and on return, DROPPED in between (around the call to
 * the source or the callback): the caller must look again at anything it
 * read before.  0: a span was added (*spanp); else ENOMEM. */
int import_span_relocking(struct arena *ar, const struct fitreq *req, int flags, bt_idx *spanp);
/* Lock NOT held: give a span back to its source. */
void import_release(struct arena *ar, vmem_addr_t addr, vmem_size_t size);

/* ---- arena.c ------------------------------------------------------------ */

/* Wake sleepers, lock held. */
void arena_wakeup_locked(struct arena *ar);
/* Who an allocation is for: a caller (counted, and its failure too), a
 * cache's slab (the cache counts its callers' calls), or one object for a
 * cache (counted, but its failure is counted by the cache's caller). */
enum alloc_kind { ALLOC_CALLER, ALLOC_SLAB, ALLOC_SMALL };
/* The allocation loop for req (search, import, reap the caches, reclaim,
 * sleep), giving a segment of type.  Lock held on entry, RELEASED on
 * return.  0 or ENOMEM. */
int arena_alloc_then_unlock(struct arena *ar, const struct fitreq *req, int flags,
			    unsigned int type, enum alloc_kind kind, vmem_addr_t *addrp);

#endif /* VMEM_ARENA_IMPL_H */
