/*
 * vmem-etcd-bench.c - figures for cluster pools (libvmem-etcd), measured
 * against a real etcd in one run:
 *
 *   E1  local speed: size-1 IDs through an arena that imports its blocks
 *       from an etcd pool with prefetch, against the same arena over a local
 *       span (vmem_add) and importing from a local callback (the floor):
 *       W1's random churn, and a fill+drain that imports and releases;
 *   E2  tail latency: every vmem_alloc timed while bursts of allocations
 *       cross 128 blocks, the p99.9 against the median;
 *   E3  claims under contention: claims per second and conflicts per claim
 *       with 1, 4 and 8 processes claiming from one pool;
 *   E4  traffic: etcd requests per 10^6 IDs allocated, in E1 and E2.
 *
 * `vmem-etcd-bench --help` lists the options; bench/README.md explains the
 * figures.  It starts its own etcd, one member on free ports of 127.0.0.1
 * with its data in $TMPDIR, through the tests' harness (tests/etcd), and
 * stops it by its PID at the end, unless --endpoints names an etcd to use.
 * The clock, the figures' registry and the ID loops are vmem-bench's
 * (harness.c), and so are the table and the JSON (output.c).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vmem.h>
#include <vmem_etcd.h>

#include "etcd/harness.h" /* tests/etcd: real etcd members */
#include "etcd_impl.h"    /* vmem_etcd_requests() */
#include "harness.h"      /* bench: clock, figures, ID loops */

/* The pool: [POOL_BASE, POOL_BASE + blocks * block). */
#define POOL_BASE (1ULL << 32)
#define TTL_S 10
#define REQUEST_TIMEOUT_MS 10000
#define MAXPROCS 8
#define DEFAULT_BLOCK 4096
#define DEFAULT_TAIL_BLOCK 256
#define DEFAULT_GAP_MS 50
#define DEFAULT_PREFETCH 64
#define BURST_BLOCKS 16 /* E2's bursts */

/* What the command line sets beyond vmem-bench's options. */
static struct {
	uint64_t block;      /* IDs per block in E1 */
	uint64_t tail_block; /* in E2 */
	unsigned gap_ms;     /* E2's pause between bursts */
	uint32_t prefetch;   /* spare blocks */
	const char *endpoints;
	bool own_etcd;
} cfg;

/* How big each measurement is, in full and in quick mode. */
static struct {
	size_t live;          /* E1, E2: live IDs */
	uint64_t rounds;      /* E1: pairs a repetition */
	uint64_t tail_blocks; /* E2: blocks a repetition crosses */
	uint64_t claims;      /* E3: blocks each process claims a repetition */
	uint64_t claim_block; /* E3: the pool's block */
} sz;

static struct h_cluster cluster;
static char pool_prefix[64]; /* pools of this run: "bench-<pid>-" */

static vmem_etcd_opts_t opts(uint32_t prefetch)
{
	vmem_etcd_opts_t o = {.size = sizeof(o), .ttl_s = TTL_S, .endpoints = cfg.endpoints,
			      .timeout_ms = REQUEST_TIMEOUT_MS, .prefetch = prefetch};
	return o;
}

static const char *pool_name(const char *what)
{
	static char name[96];
	snprintf(name, sizeof name, "%s%s", pool_prefix, what);
	return name;
}

static void pool_create(const char *pool, uint64_t block, uint64_t nblocks)
{
	vmem_etcd_opts_t o = opts(0);
	int err = vmem_etcd_pool_create(&o, pool, POOL_BASE, nblocks * block, block);
	if (err)
		die("vmem_etcd_pool_create %s: %s", pool, strerror(err));
}

static void pool_destroy(const char *pool)
{
	vmem_etcd_opts_t o = opts(0);
	int err = vmem_etcd_pool_destroy(&o, pool);
	if (err)
		die("vmem_etcd_pool_destroy %s: %s", pool, strerror(err));
}

static vmem_etcd_stats_t stats_of(vmem_etcd_t *src)
{
	vmem_etcd_stats_t st = {.size = sizeof(st)};
	if (vmem_etcd_get_stats(src, &st) != 0)
		die("vmem_etcd_get_stats failed");
	return st;
}

/* Wait until the connection is at rest: every release taken, every spare
 * claimed.  A repetition then starts from the same state as the last. */
static void settle(vmem_etcd_t *src)
{
	uint64_t until = now_ns() + 60 * 1000000000ULL;
	for (;;) {
		vmem_etcd_stats_t st = stats_of(src);
		if (st.lease_lost)
			die("the lease was lost");
		if (st.pending_releases == 0 && st.spares >= cfg.prefetch)
			return;
		if (now_ns() > until)
			die("the connection did not settle in 60 s (%" PRIu64 " pending, %" PRIu64
			    " spares, last error %s)",
			    st.pending_releases, st.spares, strerror(st.last_error));
		usleep(2000);
	}
}

/* ------------------------------------------------------------------------ */
/* The arenas                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Three kinds of the same arena of size-1 IDs (quantum 1, qcache_max 0):
 * over one local span of the whole range (vmem_add), importing blocks of
 * the range from a local callback, and importing them from the etcd pool.
 * The callback one does everything the etcd one does except talk to etcd:
 * it is the floor of the ratios.
 */
enum kind { SPAN, CALLBACK, ETCD, NKINDS };

static const char *kind_name[NKINDS] = {"local span (vmem_add)", "local import (callback)", NULL};
static char etcd_name[64]; /* "etcd pool, prefetch P" */

/* The callback source: blocks of [POOL_BASE, ...) by a bump pointer, the
 * released ones reused first, under a mutex as any shared source needs. */
struct local_source {
	pthread_mutex_t lock;
	uint64_t next, block;
	uint64_t *freed;
	size_t nfreed, cap;
};

static int local_import(void *arg, vmem_size_t size, int vmflags, vmem_addr_t *addrp)
{
	struct local_source *ls = arg;
	(void)vmflags;
	pthread_mutex_lock(&ls->lock);
	if (size == ls->block && ls->nfreed > 0) {
		*addrp = ls->freed[--ls->nfreed];
	} else {
		*addrp = ls->next;
		ls->next += (size + ls->block - 1) / ls->block * ls->block;
	}
	pthread_mutex_unlock(&ls->lock);
	return 0;
}

static void local_release(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	struct local_source *ls = arg;
	pthread_mutex_lock(&ls->lock);
	for (vmem_size_t off = 0; off < size; off += ls->block) {
		if (ls->nfreed == ls->cap) {
			ls->cap = ls->cap ? 2 * ls->cap : 1024;
			ls->freed = realloc(ls->freed, ls->cap * sizeof ls->freed[0]);
			if (ls->freed == NULL)
				die("out of memory");
		}
		ls->freed[ls->nfreed++] = addr + off;
	}
	pthread_mutex_unlock(&ls->lock);
}

struct arena {
	enum kind kind;
	vmem_t *vm;
	vmem_etcd_t *src;       /* ETCD */
	struct local_source ls; /* CALLBACK */
	int flags;
};

/* block: the import quantum; nblocks: the span's size in blocks (SPAN). */
static void arena_open(struct arena *a, enum kind kind, const char *pool, uint64_t block,
		       uint64_t nblocks, int flags)
{
	memset(a, 0, sizeof *a);
	a->kind = kind;
	a->flags = flags | VM_NOSLEEP;
	a->vm = vmem_create("bench", 0, 0, 1, 0, 0);
	if (a->vm == NULL)
		die("vmem_create: %s", strerror(errno));
	if (kind == SPAN) {
		if (vmem_add(a->vm, POOL_BASE, nblocks * block, VM_NOSLEEP) != 0)
			die("vmem_add failed");
	} else if (kind == CALLBACK) {
		pthread_mutex_init(&a->ls.lock, NULL);
		a->ls.next = POOL_BASE;
		a->ls.block = block;
		if (vmem_set_import(a->vm, local_import, local_release, &a->ls, block) != 0)
			die("vmem_set_import failed");
	} else {
		vmem_etcd_opts_t o = opts(cfg.prefetch);
		int err = vmem_etcd_open(&o, pool, &a->src);
		if (err)
			die("vmem_etcd_open %s: %s", pool, strerror(err));
		if ((err = vmem_etcd_attach(a->src, a->vm)) != 0)
			die("vmem_etcd_attach: %s", strerror(err));
		settle(a->src);
	}
}

static uint64_t arena_free_segs(const struct arena *a)
{
	vmem_stats_t st = {.size = sizeof(st)};
	return vmem_get_stats(a->vm, &st) == 0 ? st.nfree : FIGURE_NO_COUNT;
}

static uint64_t arena_imports(const struct arena *a)
{
	vmem_stats_t st = {.size = sizeof(st)};
	return vmem_get_stats(a->vm, &st) == 0 ? st.imports : 0;
}

static void arena_close(struct arena *a)
{
	vmem_destroy(a->vm);
	if (a->kind == ETCD) {
		int err = vmem_etcd_close(a->src);
		if (err)
			die("vmem_etcd_close: %s", strerror(err));
	} else if (a->kind == CALLBACK) {
		free(a->ls.freed);
		pthread_mutex_destroy(&a->ls.lock);
	}
}

/* Traffic over some runs through etcd: requests, imports, transactions. */
struct traffic {
	uint64_t ids, requests, imports, claims, releases, conflicts, errors;
};

struct traffic_mark {
	vmem_etcd_stats_t st;
	uint64_t requests, imports;
};

static struct traffic_mark traffic_begin(const struct arena *a)
{
	return (struct traffic_mark){stats_of(a->src), vmem_etcd_requests(a->src), arena_imports(a)};
}

/* Add what happened since m, the releases it left pending included. */
static void traffic_end(struct traffic *t, const struct arena *a, const struct traffic_mark *m,
			uint64_t ids)
{
	settle(a->src);
	vmem_etcd_stats_t st = stats_of(a->src);
	t->ids += ids;
	t->requests += vmem_etcd_requests(a->src) - m->requests;
	t->imports += arena_imports(a) - m->imports;
	t->claims += st.claims - m->st.claims;
	t->releases += st.releases - m->st.releases;
	t->conflicts += st.conflicts - m->st.conflicts;
	t->errors += st.errors - m->st.errors;
}

/* E4's counts, from E1's fill and drain and from E2. */
static struct traffic traffic_e1, traffic_e2;

/* A figure's variant: the kind's name and what was measured. */
static const char *variant(enum kind k, const char *what)
{
	static char v[4][96];
	static int next;
	char *out = v[next++ % 4];
	snprintf(out, sizeof v[0], "%s, %s", kind_name[k], what);
	return out;
}

/* ------------------------------------------------------------------------ */
/* E1: local speed                                                           */
/* ------------------------------------------------------------------------ */

/* W1's loop (harness.h) over any arena: random slot, free, allocate. */
#define A_ALLOC(a, p) vmem_alloc((a)->vm, 1, (a)->flags, (p))
#define A_FREE(a, x) vmem_free((a)->vm, (x), 1)
DEFINE_ID_LOOPS(arena, struct arena, A_ALLOC, A_FREE)

/* Fill and drain: allocate n IDs, then free them oldest first.  An
 * importing arena imports a block every `block` IDs on the way up and
 * releases each as it empties on the way down. */
static NOINLINE void fill_drain(struct arena *a, uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (UNLIKELY(vmem_alloc(a->vm, 1, a->flags, &ids[i]) != 0))
			die("allocation %zu of %zu failed", i, n);
	for (size_t i = 0; i < n; i++)
		if (UNLIKELY(vmem_free(a->vm, ids[i], 1) != 0))
			die("free of %" PRIu64 " failed", ids[i]);
}

/* E1's fill+drain: as many blocks as the spares serve without waking the
 * background thread (it is woken when fewer than half are left). */
static uint64_t fill_blocks(void)
{
	return cfg.prefetch / 2 ? cfg.prefetch / 2 : 1;
}

/*
 * The three arenas in turn, repetition by repetition, so that a change in
 * the machine's load falls on all; the etcd connection settles (no release
 * pending, every spare claimed) before each repetition of any.  Random
 * churn: W1's loop from a fragmented start, as vmem-bench runs it.  Fill
 * and drain: fill_blocks() blocks' worth of IDs, so that every import finds
 * a spare and the figure is the caller's side of imports and releases.
 */
static void e1_local_speed(void)
{
	size_t n = sz.live, fill = (size_t)(fill_blocks() * cfg.block);
	uint64_t nblocks = 4 * (n + fill) / cfg.block + 64;
	struct arena arena[NKINDS];
	uint64_t *live[NKINDS], *ids = xmalloc(fill * sizeof ids[0]);
	uint64_t rng[NKINDS];
	struct figure *fr[NKINDS], *ff[NKINDS];

	(void)populate_dense_arena; /* the loops come as a set; E1 starts fragmented */
	pool_create(pool_name("e1"), cfg.block, nblocks);
	for (int k = 0; k < NKINDS; k++) {
		arena_open(&arena[k], (enum kind)k, pool_name("e1"), cfg.block, nblocks, VM_INSTANTFIT);
		progress("E1: populate %s", kind_name[k]);
		rng[k] = opt.seed;
		live[k] = xmalloc(2 * n * sizeof live[k][0]);
		populate_arena(&arena[k], live[k], n, &rng[k]);
		churn_arena(&arena[k], live[k], n, warmup_rounds(sz.rounds), &rng[k]);
		fill_drain(&arena[k], ids, fill);
		fr[k] = new_result("E1", variant(k, "random churn"), n, sz.rounds, 1, "ns/pair");
		ff[k] = new_result("E1", variant(k, "fill+drain"), n, fill, 1, "ns/pair");
	}
	for (int i = 0; i < opt.reps; i++) {
		for (int k = 0; k < NKINDS; k++) {
			progress("E1: %s, repetition %d/%d", kind_name[k], i + 1, opt.reps);
			settle(arena[ETCD].src);
			uint64_t t0 = now_ns();
			churn_arena(&arena[k], live[k], n, sz.rounds, &rng[k]);
			fr[k]->v[fr[k]->reps++] = (double)(now_ns() - t0) / (double)sz.rounds;

			settle(arena[ETCD].src);
			struct traffic_mark m = k == ETCD ? traffic_begin(&arena[k]) : (struct traffic_mark){0};
			t0 = now_ns();
			fill_drain(&arena[k], ids, fill);
			ff[k]->v[ff[k]->reps++] = (double)(now_ns() - t0) / (double)fill;
			if (k == ETCD)
				traffic_end(&traffic_e1, &arena[k], &m, fill);
		}
	}
	for (int k = 0; k < NKINDS; k++) {
		finish_result(fr[k]);
		finish_result(ff[k]);
		fr[k]->free_segs = arena_free_segs(&arena[k]);
		for (size_t i = 0; i < n; i++)
			vmem_free(arena[k].vm, live[k][i], 1);
		free(live[k]);
		arena_close(&arena[k]);
	}
	free(ids);
	pool_destroy(pool_name("e1"));
}

/* ------------------------------------------------------------------------ */
/* E2: tail latency                                                          */
/* ------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* The q-quantile of n sorted samples (nearest rank). */
static double quantile(const uint32_t *sorted, uint64_t n, double q)
{
	uint64_t k = (uint64_t)ceil(q * (double)n);
	return sorted[k ? k - 1 : 0];
}

/* E2's extra counts, per arena: allocations slower than SLOW_NS (what an
 * etcd round trip costs, and a preemption too), the slowest, and the
 * allocations that imported a block. */
#define SLOW_NS 100000
static struct {
	uint64_t samples, slow[NKINDS], max[NKINDS];
	size_t nimp[NKINDS];
	double imp_median[NKINDS], imp_max[NKINDS];
	double clock_ns; /* the cost of reading the clock twice */
} tail;

/* What two readings of the clock cost, which every timed call includes. */
static double clock_pair_ns(void)
{
	uint64_t best = UINT64_MAX;
	for (int k = 0; k < 1000; k++) {
		uint64_t t0 = now_ns(), t1 = now_ns();
		best = t1 - t0 < best ? t1 - t0 : best;
	}
	return (double)best;
}

/* Allocate n IDs in bursts of `burst` with a pause of gap_ms between
 * them, each call timed into lat[], then free them all (not timed).  The
 * allocations that imported a block also go to imp[], *nimp of them. */
static NOINLINE void burst_fill_drain(struct arena *a, uint64_t *ids, size_t n, size_t burst,
				      uint32_t *lat, uint32_t *imp, size_t *nimp)
{
	uint64_t imports = arena_imports(a);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && i % burst == 0)
			usleep(cfg.gap_ms * 1000);
		uint64_t t0 = now_ns();
		int err = vmem_alloc(a->vm, 1, a->flags, &ids[i]);
		uint64_t dt = now_ns() - t0;
		if (UNLIKELY(err != 0))
			die("allocation %zu of %zu failed: %s", i, n, strerror(err));
		lat[i] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
		/* only the first ID of a block can have needed an import */
		if (UNLIKELY(ids[i] % cfg.tail_block == 0) && a->kind != SPAN &&
		    arena_imports(a) != imports) {
			imports = arena_imports(a);
			imp[(*nimp)++] = lat[i];
		}
	}
	for (size_t i = 0; i < n; i++)
		if (UNLIKELY(vmem_free(a->vm, ids[i], 1) != 0))
			die("free of %" PRIu64 " failed", ids[i]);
}

/*
 * Each repetition allocates tail_blocks blocks' worth of IDs in bursts of
 * BURST_BLOCKS blocks, a pause of gap_ms after each, timing every
 * vmem_alloc, and then frees them: the etcd pool's spares are topped up by
 * the background thread while the caller allocates, and the blocks released
 * in the background after it frees.  The local arenas run the same.  Within
 * a burst the calls come back to back, as in vmem-bench: a thread that
 * spins on the clock between calls, or sleeps before each, measures the
 * machine's scheduler more than the allocator.
 */
static void e2_tail(void)
{
	size_t n = (size_t)(sz.tail_blocks * cfg.tail_block);
	size_t imp_cap = (size_t)(opt.reps + 1) * (sz.tail_blocks + 1);
	uint64_t nblocks = 2 * sz.tail_blocks + 64;
	uint32_t *lat = xmalloc(n * sizeof lat[0]), *imp[NKINDS];
	uint64_t *ids = xmalloc(n * sizeof ids[0]);
	struct arena arena[NKINDS];
	struct figure *fmed[NKINDS], *fp999[NKINDS];

	pool_create(pool_name("e2"), cfg.tail_block, nblocks);
	tail.clock_ns = clock_pair_ns();
	for (int k = 0; k < NKINDS; k++) {
		arena_open(&arena[k], (enum kind)k, pool_name("e2"), cfg.tail_block, nblocks,
			   VM_INSTANTFIT);
		imp[k] = xmalloc(imp_cap * sizeof imp[k][0]);
		fmed[k] = new_result("E2", variant(k, "median"), 0, n, 1, "ns/alloc");
		fp999[k] = new_result("E2", variant(k, "p99.9"), 0, n, 1, "ns/alloc");
	}
	for (int i = -1; i < opt.reps; i++) { /* -1: warm-up */
		for (int k = 0; k < NKINDS; k++) {
			progress("E2: %s, repetition %d/%d", kind_name[k], i + 1, opt.reps);
			settle(arena[ETCD].src);
			struct traffic_mark m = k == ETCD ? traffic_begin(&arena[k]) : (struct traffic_mark){0};
			size_t nimp = 0;
			burst_fill_drain(&arena[k], ids, n, (size_t)(BURST_BLOCKS * cfg.tail_block), lat,
					 imp[k] + tail.nimp[k], &nimp);
			if (i < 0)
				continue;
			tail.nimp[k] += nimp;
			if (k == ETCD)
				traffic_end(&traffic_e2, &arena[k], &m, n);
			qsort(lat, n, sizeof lat[0], cmp_u32);
			fmed[k]->v[fmed[k]->reps++] = quantile(lat, n, 0.5);
			fp999[k]->v[fp999[k]->reps++] = quantile(lat, n, 0.999);
			for (size_t r = n; r-- > 0 && lat[r] > SLOW_NS;)
				tail.slow[k]++;
			tail.max[k] = lat[n - 1] > tail.max[k] ? lat[n - 1] : tail.max[k];
		}
		if (i >= 0)
			tail.samples += n;
	}
	for (int k = 0; k < NKINDS; k++) {
		finish_result(fmed[k]);
		finish_result(fp999[k]);
		qsort(imp[k], tail.nimp[k], sizeof imp[k][0], cmp_u32);
		if (tail.nimp[k] > 0) {
			tail.imp_median[k] = quantile(imp[k], tail.nimp[k], 0.5);
			tail.imp_max[k] = imp[k][tail.nimp[k] - 1];
		}
		free(imp[k]);
		arena_close(&arena[k]);
	}
	free(lat);
	free(ids);
	pool_destroy(pool_name("e2"));
}

/* ------------------------------------------------------------------------ */
/* E3: claims under contention                                               */
/* ------------------------------------------------------------------------ */

/* What each claiming process reports, in memory shared with the parent. */
struct claimer {
	uint64_t t_start, t_end; /* CLOCK_MONOTONIC, ns */
	uint64_t claims, conflicts, errors;
	int failed; /* errno of the first failure, 0 if none */
};

struct contest {
	const char *pool;
	int nprocs;
	int me;              /* the process's index, set before each fork */
	int ready[2], go[2]; /* pipes: children say ready, the parent says go */
	struct claimer *out; /* shared: one per process */
};

static int claimer_main(void *arg)
{
	struct contest *c = arg;
	struct claimer *r = &c->out[c->me]; /* c is the child's copy, made at fork */
	vmem_etcd_opts_t o = opts(0);
	vmem_etcd_t *src;
	vmem_t *vm = vmem_create("claimer", 0, 0, 1, 0, 0);
	int err = vm ? vmem_etcd_open(&o, c->pool, &src) : ENOMEM;
	if (!err)
		err = vmem_etcd_attach(src, vm);
	/* the first claim reads the pool; so do the others' */
	char byte = err ? 'x' : 'r';
	if (write(c->ready[1], &byte, 1) != 1 || err) {
		r->failed = err ? err : EIO;
		return 1;
	}
	if (read(c->go[0], &byte, 1) != 1)
		return 1;
	uint64_t *ids = xmalloc(sz.claims * sizeof ids[0]);
	vmem_etcd_stats_t s0 = stats_of(src);
	r->t_start = now_ns();
	uint64_t n = 0;
	for (; n < sz.claims; n++) {
		/* a whole block: one import, one claim transaction */
		if ((err = vmem_alloc(vm, sz.claim_block, VM_NOSLEEP, &ids[n])) != 0) {
			r->failed = err;
			break;
		}
	}
	r->t_end = now_ns();
	vmem_etcd_stats_t s1 = stats_of(src);
	r->claims = s1.claims - s0.claims;
	r->conflicts = s1.conflicts - s0.conflicts;
	r->errors = s1.errors - s0.errors;
	for (uint64_t i = 0; i < n; i++)
		vmem_free(vm, ids[i], sz.claim_block);
	free(ids);
	vmem_destroy(vm);
	err = vmem_etcd_close(src);
	return r->failed || err ? 1 : 0;
}

/* One repetition: nprocs processes claim sz.claims blocks each at once;
 * claims/s over the wall time from the first start to the last end. */
static void contest_once(struct contest *c, double *claims_per_s, double *conflicts_per_claim)
{
	pid_t pid[MAXPROCS];
	memset(c->out, 0, MAXPROCS * sizeof c->out[0]);
	if (pipe(c->ready) != 0 || pipe(c->go) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	for (int i = 0; i < c->nprocs; i++) {
		c->me = i;
		if ((pid[i] = h_fork(claimer_main, c)) < 0)
			die("fork: %s", strerror(errno));
	}
	for (int i = 0; i < c->nprocs; i++) {
		char byte;
		if (read(c->ready[0], &byte, 1) != 1 || byte != 'r')
			die("E3: a claiming process could not open the pool");
	}
	for (int i = 0; i < c->nprocs; i++)
		if (write(c->go[1], "g", 1) != 1)
			die("E3: pipe");
	bool failed = false;
	for (int i = 0; i < c->nprocs; i++)
		failed |= h_wait(pid[i]) != 0;
	close(c->ready[0]);
	close(c->ready[1]);
	close(c->go[0]);
	close(c->go[1]);
	uint64_t t0 = UINT64_MAX, t1 = 0, claims = 0, conflicts = 0;
	for (int i = 0; i < c->nprocs; i++) {
		struct claimer *r = &c->out[i];
		if (r->failed)
			die("E3: a process failed: %s", strerror(r->failed));
		t0 = r->t_start < t0 ? r->t_start : t0;
		t1 = r->t_end > t1 ? r->t_end : t1;
		claims += r->claims;
		conflicts += r->conflicts;
	}
	if (failed)
		die("E3: a claiming process failed");
	*claims_per_s = (double)claims / ((double)(t1 - t0) / 1e9);
	*conflicts_per_claim = claims ? (double)conflicts / (double)claims : NAN;
}

static void e3_claims(void)
{
	static const int levels[] = {1, 4, 8};
	struct claimer *out = mmap(NULL, MAXPROCS * sizeof *out, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (out == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
		int np = levels[l];
		char name[32], v[64];
		snprintf(name, sizeof name, "e3-%d", np);
		/* room for everyone's claims, and as much again: the processes'
		 * cursors start apart and meet */
		pool_create(pool_name(name), sz.claim_block, 2 * (uint64_t)np * sz.claims);
		struct contest c = {.pool = pool_name(name), .nprocs = np, .out = out};
		snprintf(v, sizeof v, "%d process%s", np, np > 1 ? "es" : "");
		struct figure *fc = new_result("E3", v, 0, sz.claims * (uint64_t)np, np, "claims/s");
		struct figure *fx = new_result("E3", v, 0, sz.claims * (uint64_t)np, np, "confl/claim");
		for (int i = 0; i < opt.reps; i++) {
			progress("E3 %s: repetition %d/%d", v, i + 1, opt.reps);
			double cps, cpc;
			contest_once(&c, &cps, &cpc);
			fc->v[fc->reps++] = cps;
			fx->v[fx->reps++] = cpc;
		}
		finish_result(fc);
		finish_result(fx);
		pool_destroy(pool_name(name));
	}
	munmap(out, MAXPROCS * sizeof *out);
}

/* ------------------------------------------------------------------------ */
/* The report                                                                */
/* ------------------------------------------------------------------------ */

static double per_million(const struct traffic *t, uint64_t x)
{
	return t->ids ? (double)x * 1e6 / (double)t->ids : NAN;
}

static double per_block(const struct traffic *t)
{
	return t->imports ? (double)t->requests / (double)t->imports : NAN;
}

static void traffic_rows(FILE *f, const char *title, const struct traffic *t)
{
	const struct {
		const char *name;
		uint64_t v;
	} rows[] = {
		{"etcd requests (HTTP)", t->requests},
		{"blocks imported by the arena", t->imports},
		{"claim transactions", t->claims},
		{"release transactions", t->releases},
		{"conflicts", t->conflicts},
		{"failed requests", t->errors},
	};
	fprintf(f, "\n%s, %" PRIu64 " IDs allocated:\n", title, t->ids);
	fprintf(f, "  %-30s %12s %14s\n", "", "count", "per 10^6 IDs");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char pm[32];
		fmt_num(pm, sizeof pm, per_million(t, rows[i].v));
		fprintf(f, "  %-30s %12" PRIu64 " %14s\n", rows[i].name, rows[i].v, pm);
	}
	fprintf(f, "  etcd requests per block imported: %.3g\n", per_block(t));
}

static void table_section(FILE *f, const void *arg)
{
	(void)arg;
	fprintf(f, "\nSettings: E1 block %" PRIu64 " IDs, fill+drain of %" PRIu64 " blocks; E2 block %" PRIu64
		   " IDs, %" PRIu64 " blocks a repetition in bursts of %d, %u ms apart;\nprefetch %u; "
		   "lease TTL %d s; E3 block %" PRIu64 ", %" PRIu64 " claims a process; etcd %s%s.\n",
		cfg.block, fill_blocks(), cfg.tail_block, sz.tail_blocks, BURST_BLOCKS, cfg.gap_ms,
		cfg.prefetch,
		TTL_S, sz.claim_block, sz.claims, cfg.endpoints,
		cfg.own_etcd ? " (started by the bench, data in $TMPDIR)" : "");
	traffic_rows(f, "E4: traffic of E1's fill+drain through etcd", &traffic_e1);
	traffic_rows(f, "E4: traffic of E2's bursts through etcd", &traffic_e2);
	fprintf(f, "\nE2: %" PRIu64 " allocations timed per arena; every figure includes a pair of"
		   " clock readings (%.0f ns).\n",
		tail.samples, tail.clock_ns);
	fprintf(f, "  %-40s %10s %10s %12s %10s %12s\n", "", "> 100 us", "slowest ns", "imported",
		"median ns", "slowest ns");
	for (int k = 0; k < NKINDS; k++)
		fprintf(f, "  %-40s %10" PRIu64 " %10" PRIu64 " %12zu %10.0f %12.0f\n", kind_name[k],
			tail.slow[k], tail.max[k], tail.nimp[k], tail.imp_median[k], tail.imp_max[k]);
	fprintf(f, "  (the last three columns: the allocations that imported a block)\n");
}

static void json_traffic(FILE *f, const char *key, const struct traffic *t)
{
	fprintf(f, ",\n    \"%s\": {\"ids\": %" PRIu64 ", \"requests\": %" PRIu64
		   ", \"imports\": %" PRIu64 ", \"claims\": %" PRIu64 ", \"releases\": %" PRIu64
		   ", \"conflicts\": %" PRIu64 ", \"errors\": %" PRIu64,
		key, t->ids, t->requests, t->imports, t->claims, t->releases, t->conflicts, t->errors);
	json_member_num(f, "requests_per_million_ids", per_million(t, t->requests));
	json_member_num(f, "requests_per_block", per_block(t));
	fprintf(f, "}");
}

static void json_section(FILE *f, const void *arg)
{
	static const char *key[NKINDS] = {"span", "callback", "etcd"};
	(void)arg;
	fprintf(f, ",\n  \"settings\": {\"endpoints\": ");
	json_str(f, cfg.endpoints);
	fprintf(f, ", \"started_by_bench\": %s, \"block\": %" PRIu64 ", \"prefetch\": %u"
		   ", \"ttl_s\": %d, \"live\": %zu, \"e1_rounds\": %" PRIu64
		   ", \"tail_block\": %" PRIu64 ", \"tail_blocks\": %" PRIu64,
		cfg.own_etcd ? "true" : "false", cfg.block, cfg.prefetch, TTL_S, sz.live,
		sz.rounds, cfg.tail_block, sz.tail_blocks);
	fprintf(f, ", \"tail_burst_blocks\": %d, \"tail_gap_ms\": %u", BURST_BLOCKS, cfg.gap_ms);
	fprintf(f, ", \"claim_block\": %" PRIu64 ", \"claims_per_process\": %" PRIu64 "}",
		sz.claim_block, sz.claims);
	fprintf(f, ",\n  \"traffic\": {\"note\": \"E4, counted over the runs through etcd\"");
	json_traffic(f, "e1_fill_drain", &traffic_e1);
	json_traffic(f, "e2_bursts", &traffic_e2);
	fprintf(f, "\n  }");
	fprintf(f, ",\n  \"tail\": {\"samples_per_arena\": %" PRIu64, tail.samples);
	json_member_num(f, "clock_pair_ns", tail.clock_ns);
	for (int k = 0; k < NKINDS; k++) {
		fprintf(f, ",\n    \"%s\": {\"slower_than_100us\": %" PRIu64 ", \"slowest_ns\": %" PRIu64
			   ", \"import_allocs\": %zu",
			key[k], tail.slow[k], tail.max[k], tail.nimp[k]);
		json_member_num(f, "import_median_ns", tail.nimp[k] ? tail.imp_median[k] : NAN);
		json_member_num(f, "import_slowest_ns", tail.nimp[k] ? tail.imp_max[k] : NAN);
		fprintf(f, "}");
	}
	fprintf(f, "\n  }");
}

static const struct workload_info workload_infos[] = {
	{"E1", "local-speed",
	 "size-1 IDs through an arena over an etcd pool with prefetch, against the same arena "
	 "over a local span of the same range: W1's random churn, and a fill+drain of `prefetch` "
	 "blocks that imports and releases each"},
	{"E2", "tail-latency",
	 "every vmem_alloc timed while bursts of allocations cross 128 blocks a repetition (32 "
	 "in quick mode): median and p99.9"},
	{"E3", "claims",
	 "1, 4 and 8 processes each claim blocks from one pool at once (an allocation of a whole "
	 "block each): claims per second and conflicts per claim"},
	{"E4", "traffic", "etcd requests per 10^6 IDs allocated, in E1's fill+drain and in E2"},
};

static void traffic_figure(const char *variant, const struct traffic *t)
{
	struct figure *f = new_result("E4", variant, 0, t->ids, 1, "req/1e6 IDs");
	f->v[f->reps++] = per_million(t, t->requests);
	finish_result(f);
}

/* The table on stdout, and the JSON when json is not NULL. */
static void report(const char *json)
{
	double e1r[NKINDS], e1f[NKINDS], e2[NKINDS];
	for (int k = 0; k < NKINDS; k++) {
		e1r[k] = med("E1", variant(k, "random churn"), 0);
		e1f[k] = med("E1", variant(k, "fill+drain"), 0);
		e2[k] = med("E2", variant(k, "p99.9"), 0) / med("E2", variant(k, "median"), 0);
	}
	const struct ratio ratios[] = {
		{"E1 random", "random churn: etcd pool / local span", e1r[ETCD] / e1r[SPAN], 1.1,
		 false, e1r[CALLBACK] / e1r[SPAN], "local import / span"},
		{"E1 fill+drain", "fill+drain: etcd pool / local span", e1f[ETCD] / e1f[SPAN], 1.1,
		 false, e1f[CALLBACK] / e1f[SPAN], "local import / span"},
		{"E2 p99.9/median", "vmem_alloc through etcd: p99.9 / median", e2[ETCD], 10, false,
		 e2[CALLBACK], "local import's"},
	};

	/* E4 as figures too, so that the JSON's figures hold all four */
	char v[96];
	snprintf(v, sizeof v, "E1 fill+drain, block %" PRIu64, cfg.block);
	traffic_figure(v, &traffic_e1);
	snprintf(v, sizeof v, "E2 bursts, block %" PRIu64, cfg.tail_block);
	traffic_figure(v, &traffic_e2);

	struct report r = run_report("vmem-etcd-bench", "libvmem-etcd", vmem_version(), workload_infos,
				     sizeof workload_infos / sizeof workload_infos[0]);
	r.ratios = ratios;
	r.nratios = sizeof ratios / sizeof ratios[0];
	r.table_section = table_section;
	r.json_section = json_section;
	report_table(stdout, &r);
	if (json != NULL && report_json(json, &r) != 0)
		die("%s: %s", json, strerror(errno));
}

/* ------------------------------------------------------------------------ */
/* The command line                                                          */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmem-etcd-bench [OPTION]... [E1|E2|E3]...\n"
		"\n"
		"Measures cluster pools (libvmem-etcd) against a real etcd: the local speed of\n"
		"an arena that imports from an etcd pool against the same arena over a local\n"
		"span (E1), the tail latency of vmem_alloc while it crosses blocks (E2), claims\n"
		"per second with 1, 4 and 8 processes (E3), and etcd requests per 10^6 IDs\n"
		"(E4).  Prints a table to stdout; bench/README.md explains the figures.\n"
		"\n"
		"It starts its own etcd (the etcd binary from $PATH, one member on free ports of\n"
		"127.0.0.1, data in $TMPDIR) and stops it at the end, unless --endpoints is given.\n"
		"\n"
		"options:\n"
		"  --quick           everything small: a smoke test of a few seconds, not a\n"
		"                    measurement\n"
		"  --reps N          timed repetitions per figure, 5..%d (default 5)\n"
		"  --block K         IDs per block in E1 (default %d)\n"
		"  --tail-block K    IDs per block in E2 (default %d)\n"
		"  --gap MS          E2's pause between bursts of %d blocks (default %d)\n"
		"  --prefetch P      spare blocks a connection keeps, 1..127 (default %d)\n"
		"  --endpoints URLS  use this etcd (comma-separated URLs) instead of starting one;\n"
		"                    the bench creates and destroys pools named bench-PID-*\n"
		"  --json FILE       also write the run to FILE as JSON\n"
		"  -h, --help        print this help and exit\n"
		"\n"
		"E1 (local-speed), E2 (tail-latency) and E3 (claims) run the measurements named\n"
		"(default: all); E4 comes from E1 and E2.\n"
		"\n"
		"Exit status: 0 when the run and its files were written, 1 when a measurement,\n"
		"etcd or a file failed, 2 on a bad command line.\n",
		MAXREP, DEFAULT_BLOCK, DEFAULT_TAIL_BLOCK, BURST_BLOCKS, DEFAULT_GAP_MS,
		DEFAULT_PREFETCH);
}

int main(int argc, char **argv)
{
	const char *json = NULL;
	unsigned long long reps = 0, block = DEFAULT_BLOCK, tail_block = DEFAULT_TAIL_BLOCK,
			   gap_ms = DEFAULT_GAP_MS, prefetch = DEFAULT_PREFETCH;
	const struct cli_number numbers[] = {
		CLI_REPS(&reps),
		{"block", 1, 1ULL << 24, "a block is 1..2^24 IDs", &block},
		{"tail-block", 1, 1ULL << 24, "a block is 1..2^24 IDs", &tail_block},
		{"gap", 0, 10000, "--gap must be 0..10000 ms", &gap_ms},
		{"prefetch", 1, 127, "--prefetch must be 1..127", &prefetch},
	};
	const struct cli_string strings[] = {
		{"endpoints", &cfg.endpoints},
		{"json", &json},
	};
	struct cli cli = {usage, CLI_TABLE(numbers), CLI_TABLE(strings), false};

	int rc = cli_parse(&cli, argc, argv);
	if (rc >= 0)
		return rc;
	bool quick = cli.quick;
	opt.reps = (int)reps;
	cfg.block = block;
	cfg.tail_block = tail_block;
	cfg.gap_ms = (unsigned)gap_ms;
	cfg.prefetch = (uint32_t)prefetch;
	bool run[3] = {optind == argc, optind == argc, optind == argc};
	for (int i = optind; i < argc; i++) {
		int w = -1;
		for (int k = 0; k < 3; k++)
			if (strcasecmp(argv[i], workload_infos[k].id) == 0 ||
			    strcasecmp(argv[i], workload_infos[k].name) == 0)
				w = k;
		if (w < 0) {
			fprintf(stderr, "vmem-etcd-bench: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
		run[w] = true;
	}
	progress_init(isatty(STDERR_FILENO));
	options_defaults(quick);
	read_cpu_model();
	sz.live = quick ? 10000 : 100000;
	sz.rounds = quick ? 100000 : 4000000;
	sz.tail_blocks = quick ? 2 * BURST_BLOCKS : 8 * BURST_BLOCKS;
	sz.claims = quick ? 10 : 100;
	sz.claim_block = 64;
	snprintf(etcd_name, sizeof etcd_name, "etcd pool, prefetch %u", cfg.prefetch);
	kind_name[ETCD] = etcd_name;
	snprintf(pool_prefix, sizeof pool_prefix, "bench-%ld-", (long)getpid());

	if (cfg.endpoints == NULL) {
		progress("starting etcd");
		if (h_start(&cluster, 1, 0) != 0)
			die("could not start etcd (is etcd-server installed?)");
		cfg.endpoints = cluster.endpoints;
		cfg.own_etcd = true;
	}
	if (run[0])
		e1_local_speed();
	if (run[1])
		e2_tail();
	if (run[2])
		e3_claims();
	progress_clear();
	report(json);
	if (cfg.own_etcd)
		h_stop(&cluster);
	return 0;
}
