/*
 * baselines.c - the allocators vmem-bench compares libvmem with (the list
 * is in baselines.h).  Each is as simple as its job allows, so that its
 * figure is a floor: what a design of that kind cannot avoid paying.
 *
 * Their alloc and free functions are noinline, so that each costs a real
 * call, as a call into the shared library does; their loops come from the
 * harness's macros, the same code that drives libvmem.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#include "baselines.h"

/* ------------------------------------------------------------------------ */
/* (c) a mutex-protected LIFO stack of IDs                                   */
/* ------------------------------------------------------------------------ */

struct lifo {
	pthread_mutex_t mu;
	uint64_t *stk;
	size_t top, cap;
	uint64_t next, end; /* never-used IDs [next, end) */
};

static void lifo_init(struct lifo *l, const struct idparams *p)
{
	pthread_mutex_init(&l->mu, NULL);
	l->cap = 2 * p->live + 16; /* no more than 2n IDs are ever handed out */
	l->stk = xmalloc(l->cap * sizeof l->stk[0]);
	l->top = 0;
	l->next = p->base;
	l->end = p->base + p->size;
}

static void lifo_fini(struct lifo *l)
{
	pthread_mutex_destroy(&l->mu);
	free(l->stk);
}

static void *lifo_create(const struct idparams *p)
{
	struct lifo *l = xmalloc(sizeof *l);

	lifo_init(l, p);
	return l;
}

static void lifo_destroy(void *vl)
{
	lifo_fini(vl);
	free(vl);
}

/* The most recently freed ID, else a never-used one.  With l->mu held. */
static inline int lifo_pop(struct lifo *l, uint64_t *idp)
{
	if (l->top > 0)
		*idp = l->stk[--l->top];
	else if (l->next < l->end)
		*idp = l->next++;
	else
		return ENOMEM;
	return 0;
}

/* With l->mu held. */
static inline int lifo_push(struct lifo *l, uint64_t id)
{
	if (l->top < l->cap) {
		l->stk[l->top++] = id;
		return 0;
	}
	return EINVAL;
}

static NOINLINE int lifo_alloc(struct lifo *l, uint64_t *idp)
{
	int rc;

	pthread_mutex_lock(&l->mu);
	rc = lifo_pop(l, idp);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static NOINLINE int lifo_free(struct lifo *l, uint64_t id)
{
	int rc;

	pthread_mutex_lock(&l->mu);
	rc = lifo_push(l, id);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

DEFINE_ID_LOOPS(lifo, struct lifo, lifo_alloc, lifo_free)

static uint64_t lifo_free_segs(void *vl)
{
	return ((struct lifo *)vl)->top; /* freed IDs waiting on the stack */
}

const struct idalg alg_lifo = IDALG(lifo, lifo_create, lifo_destroy, lifo_free_segs);

/* ------------------------------------------------------------------------ */
/* (f) the memory floor of a boundary-tag allocator                          */
/* ------------------------------------------------------------------------ */

/*
 * The LIFO of (c), plus the memory traffic that any allocator with
 * boundary tags and a hash of allocated segments must make: a free looks
 * its 48-byte tag up through a chained hash of 4-byte buckets and reads
 * both neighbouring tags; an allocation writes the tag and links it into
 * its bucket.  No freelists, no coalescing, no statistics: what libvmem
 * does beyond this is the price of being a general allocator.
 */
struct ftag {
	uint64_t start, size;
	uint32_t prev, next, hnext, pad[5];
};

struct tfloor {
	struct lifo l;
	uint64_t base;
	struct ftag *tag; /* indexed by ID - base + 1; 0 and the last are neighbours only */
	uint32_t *bucket;
	unsigned shift;
};

static void *tfloor_create(const struct idparams *p)
{
	struct tfloor *f = xmalloc(sizeof *f);
	size_t nb = 1;

	lifo_init(&f->l, p);
	f->base = p->base;
	f->tag = calloc(p->size + 2, sizeof f->tag[0]); /* untouched pages stay unmapped */
	if (f->tag == NULL)
		die("out of memory");
	while (nb < p->live)
		nb *= 2; /* load at most 1, as libvmem keeps it */
	f->bucket = calloc(nb, sizeof f->bucket[0]);
	if (f->bucket == NULL)
		die("out of memory");
	f->shift = 64 - (unsigned)__builtin_ctzll(nb);
	return f;
}

static void tfloor_destroy(void *vf)
{
	struct tfloor *f = vf;

	lifo_fini(&f->l);
	free(f->tag);
	free(f->bucket);
	free(f);
}

static inline uint32_t *tfloor_head(struct tfloor *f, uint64_t id)
{
	return &f->bucket[(id * 0x9e3779b97f4a7c15ull) >> f->shift];
}

static NOINLINE int tfloor_alloc(struct tfloor *f, uint64_t *idp)
{
	int rc;

	pthread_mutex_lock(&f->l.mu);
	rc = lifo_pop(&f->l, idp);
	if (rc == 0) {
		uint32_t i = (uint32_t)(*idp - f->base + 1);
		uint32_t *h = tfloor_head(f, *idp);
		struct ftag *t = &f->tag[i];
		t->start = *idp;
		t->size = 1;
		t->prev = i - 1;
		t->next = i + 1;
		t->hnext = *h;
		*h = i;
	}
	pthread_mutex_unlock(&f->l.mu);
	return rc;
}

static NOINLINE int tfloor_free(struct tfloor *f, uint64_t id)
{
	int rc = EINVAL;

	pthread_mutex_lock(&f->l.mu);
	uint32_t *link = tfloor_head(f, id);
	while (*link != 0) {
		struct ftag *t = &f->tag[*link];
		if (t->start == id) {
			*link = t->hnext;
			/* a free must see its neighbours to coalesce */
			t->size = f->tag[t->prev].size + f->tag[t->next].size;
			rc = lifo_push(&f->l, id);
			break;
		}
		link = &t->hnext;
	}
	pthread_mutex_unlock(&f->l.mu);
	return rc;
}

DEFINE_ID_LOOPS(tfloor, struct tfloor, tfloor_alloc, tfloor_free)

static uint64_t tfloor_free_segs(void *vf)
{
	return ((struct tfloor *)vf)->l.top;
}

const struct idalg alg_tfloor = IDALG(tfloor, tfloor_create, tfloor_destroy, tfloor_free_segs);

/* ------------------------------------------------------------------------ */
/* (d) a bitmap with summary words and find-first-zero, mutex-protected      */
/* ------------------------------------------------------------------------ */

/*
 * Level 0 has one bit per ID (1 = in use).  Bit i of a word at level k+1 is
 * set when word i of level k is full.  The top level is one summary word.
 * Allocation descends from the summary word with find-first-zero (ctz of the
 * complement) at each level: the lowest free ID, in O(log64 n).
 */
#define BM_MAXLEV 8

struct bitmap {
	pthread_mutex_t mu;
	int top;                 /* index of the summary level */
	uint64_t *lev[BM_MAXLEV];
	size_t nwords[BM_MAXLEV];
	uint64_t base, nbits;
};

static void *bitmap_create(const struct idparams *p)
{
	struct bitmap *b = xmalloc(sizeof *b);
	size_t words = (size_t)((p->size + 63) / 64);
	int k = 0;

	memset(b, 0, sizeof *b);
	pthread_mutex_init(&b->mu, NULL);
	b->base = p->base;
	b->nbits = p->size;
	for (;;) {
		if (k == BM_MAXLEV)
			die("bitmap too large");
		b->nwords[k] = words;
		b->lev[k] = calloc(words, sizeof(uint64_t));
		if (b->lev[k] == NULL)
			die("out of memory");
		if (words == 1)
			break;
		words = (words + 63) / 64;
		k++;
	}
	b->top = k;
	/* bits past the end are permanently in use */
	for (uint64_t i = b->nbits; i < (uint64_t)b->nwords[0] * 64; i++)
		b->lev[0][i / 64] |= 1ULL << (i % 64);
	for (k = 1; k <= b->top; k++)
		for (size_t i = 0; i < b->nwords[k] * 64; i++)
			if (i >= b->nwords[k - 1] || b->lev[k - 1][i] == ~0ULL)
				b->lev[k][i / 64] |= 1ULL << (i % 64);
	return b;
}

static void bitmap_destroy(void *vb)
{
	struct bitmap *b = vb;

	for (int k = 0; k <= b->top; k++)
		free(b->lev[k]);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

static NOINLINE int bitmap_alloc(struct bitmap *b, uint64_t *idp)
{
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	if (b->lev[b->top][0] == ~0ULL) {
		rc = ENOMEM;
	} else {
		size_t wi = 0;
		unsigned int bit;

		for (int k = b->top; k > 0; k--)
			wi = wi * 64 + (size_t)__builtin_ctzll(~b->lev[k][wi]);
		bit = (unsigned int)__builtin_ctzll(~b->lev[0][wi]);
		*idp = b->base + (uint64_t)wi * 64 + bit;
		b->lev[0][wi] |= 1ULL << bit;
		for (int k = 0; k < b->top && b->lev[k][wi] == ~0ULL; k++) {
			b->lev[k + 1][wi / 64] |= 1ULL << (wi % 64);
			wi /= 64;
		}
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static NOINLINE int bitmap_free(struct bitmap *b, uint64_t id)
{
	int rc = 0;
	uint64_t idx = id - b->base;

	pthread_mutex_lock(&b->mu);
	if (id < b->base || idx >= b->nbits || !(b->lev[0][idx / 64] & (1ULL << (idx % 64)))) {
		rc = EINVAL;
	} else {
		size_t wi = (size_t)(idx / 64);
		uint64_t m = 1ULL << (idx % 64);

		for (int k = 0;; k++) {
			bool wasfull = b->lev[k][wi] == ~0ULL;

			b->lev[k][wi] &= ~m;
			if (!wasfull || k == b->top)
				break;
			m = 1ULL << (wi % 64);
			wi /= 64;
		}
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

DEFINE_ID_LOOPS(bitmap, struct bitmap, bitmap_alloc, bitmap_free)

static uint64_t bitmap_free_segs(void *vb)
{
	(void)vb;
	return FIGURE_NO_COUNT;
}

const struct idalg alg_bitmap = IDALG(bitmap, bitmap_create, bitmap_destroy, bitmap_free_segs);

/* ------------------------------------------------------------------------ */
/* (e) the naive list: rmalloc-style sorted list of free extents             */
/* ------------------------------------------------------------------------ */

/*
 * The resource map the paper compares against: free extents in a singly
 * linked list sorted by address; allocation is first fit; a free walks to
 * its place and coalesces with both neighbours.  Nodes come from a pool.
 */
struct rnode {
	uint64_t start, size;
	struct rnode *next;
};

struct rlist {
	pthread_mutex_t mu;
	struct rnode *head;
	struct rnode *spare;   /* nodes given back */
	struct rnode *pool;    /* nodes never used: pool[pool_next..pool_len) */
	size_t pool_next, pool_len;
};

static void *rlist_create(const struct idparams *p)
{
	struct rlist *l = xmalloc(sizeof *l);
	size_t npool = 2 * p->live + 4; /* extents never outnumber live IDs + 1 */

	pthread_mutex_init(&l->mu, NULL);
	l->pool = xmalloc(npool * sizeof l->pool[0]);
	l->spare = NULL;
	l->pool_len = npool;
	l->pool_next = 1;
	l->head = &l->pool[0];
	*l->head = (struct rnode){p->base, p->size, NULL};
	return l;
}

static void rlist_destroy(void *vl)
{
	struct rlist *l = vl;

	pthread_mutex_destroy(&l->mu);
	free(l->pool);
	free(l);
}

static NOINLINE int rlist_alloc(struct rlist *l, uint64_t size, uint64_t *addrp)
{
	struct rnode **pp = &l->head, *p;
	int rc = 0;

	pthread_mutex_lock(&l->mu);
	while ((p = *pp) != NULL && p->size < size)
		pp = &p->next;
	if (p == NULL) {
		rc = ENOMEM;
	} else {
		*addrp = p->start;
		p->start += size;
		p->size -= size;
		if (p->size == 0) {
			*pp = p->next;
			p->next = l->spare;
			l->spare = p;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static NOINLINE int rlist_free(struct rlist *l, uint64_t a, uint64_t size)
{
	struct rnode *prev = NULL, *p;
	int rc = 0;

	pthread_mutex_lock(&l->mu);
	p = l->head;
	while (p != NULL && p->start < a) {
		prev = p;
		p = p->next;
	}
	if ((prev != NULL && prev->start + prev->size > a) || (p != NULL && a + size > p->start)) {
		rc = EINVAL; /* overlaps a free extent */
	} else {
		bool mprev = prev != NULL && prev->start + prev->size == a;
		bool mnext = p != NULL && a + size == p->start;

		if (mprev && mnext) {
			prev->size += size + p->size;
			prev->next = p->next;
			p->next = l->spare;
			l->spare = p;
		} else if (mprev) {
			prev->size += size;
		} else if (mnext) {
			p->start = a;
			p->size += size;
		} else if (l->spare == NULL && l->pool_next == l->pool_len) {
			rc = ENOMEM;
		} else {
			struct rnode *n = l->spare;

			if (n != NULL)
				l->spare = n->next;
			else
				n = &l->pool[l->pool_next++];
			n->start = a;
			n->size = size;
			n->next = p;
			if (prev != NULL)
				prev->next = n;
			else
				l->head = n;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

#define RL_ALLOC(c, p) rlist_alloc((c), 1, (p))
#define RL_FREE(c, a) rlist_free((c), (a), 1)
DEFINE_ID_LOOPS(rlist, struct rlist, RL_ALLOC, RL_FREE)

static uint64_t rlist_free_segs(void *vl)
{
	uint64_t k = 0;

	for (const struct rnode *p = ((struct rlist *)vl)->head; p != NULL; p = p->next)
		k++;
	return k;
}

const struct idalg alg_rlist = IDALG(rlist, rlist_create, rlist_destroy, rlist_free_segs);

/* ------------------------------------------------------------------------ */
/* (a), (b) and (g): pairs of calls, no ID loop                              */
/* ------------------------------------------------------------------------ */

void run_mutex_pair(uint64_t iters)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct figure *res = new_result("B", "(a) mutex lock+unlock", 0, iters, 1, "ns/pair");

	for (uint64_t i = 0; i < iters / 10; i++) {
		pthread_mutex_lock(&mu);
		pthread_mutex_unlock(&mu);
	}
	for (int r = 0; r < opt.reps; r++) {
		uint64_t t0;

		progress("B (a) mutex: repetition %d/%d", r + 1, opt.reps);
		t0 = now_ns();
		for (uint64_t i = 0; i < iters; i++) {
			pthread_mutex_lock(&mu);
			pthread_mutex_unlock(&mu);
		}
		res->v[res->reps++] = (double)(now_ns() - t0) / (double)iters;
	}
	finish_result(res);
}

void run_malloc_pair(uint64_t base_iters)
{
	struct figure *res = new_result("B", "(b) malloc(16)+free", 0, base_iters, 1, "ns/pair");

	for (int r = -1; r < opt.reps; r++) {
		uint64_t t0, iters = r < 0 ? base_iters / 10 : base_iters;

		progress("B (b) malloc: repetition %d/%d", r + 1, opt.reps);
		t0 = now_ns();
		for (uint64_t i = 0; i < iters; i++) {
			void *p = malloc(16);

			/* the pointer escapes, so the pair cannot be optimized away */
			__asm__ volatile("" : : "r"(p) : "memory");
			free(p);
		}
		if (r >= 0)
			res->v[res->reps++] = (double)(now_ns() - t0) / (double)iters;
	}
	finish_result(res);
}

/* bench/callfloor.c, a shared library of its own: reached through the PLT */
int callfloor_alloc(void *arena, uint64_t size, int flags, uint64_t *addrp);
int callfloor_free(void *arena, uint64_t addr, uint64_t size);
int callfloor_free_atomic(void *arena, uint64_t addr, uint64_t size);

/* the flags W9 passes to vmem_alloc */
#define CALLS_ALLOC(arena, n, ap) callfloor_alloc((arena), (n), VM_NOSLEEP, (ap))
DEFINE_W9_LOOP(w9_loop_calls, void *, CALLS_ALLOC, callfloor_free)
DEFINE_W9_LOOP(w9_loop_calls_atomic, void *, CALLS_ALLOC, callfloor_free_atomic)

/* (g): W9's loop against functions that do nothing.  A program pays this
 * for any allocator in a shared library, malloc included.  (h): the same
 * with one atomic compare-and-exchange in the free, what an exact check of
 * frees costs at least once threads may race (bench/callfloor.c). */
void run_call_floor(uint64_t iters)
{
	uint8_t arena[16] = {0};

	w9_loop_calls(arena, "B (g) calls", iters,
		      new_result("B", "(g) empty library call pair", 0, iters, 1, "ns/pair"));
	w9_loop_calls_atomic(arena, "B (h) calls+atomic", iters,
			     new_result("B", "(h) empty call pair + one atomic", 0, iters, 1,
						"ns/pair"));
}
