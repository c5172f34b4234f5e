/*
 * workloads.c - vmem-bench's workloads: libvmem driven through its public
 * API (<vmem.h> and vmem_get_stats) by the harness's loops, beside the
 * baselines, at the sizes of full or quick mode.
 *
 * Each workload creates its arenas, populates them (not timed), warms up,
 * and leaves its figures in the harness's registry, in the order of the
 * table; W8 leaves memory rows instead.  Arenas are created with
 * qcache_max = 0 (no quantum caching) unless a variant says otherwise.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#include "baselines.h"
#include "workloads.h"

/* Full mode measures; quick mode is a smoke test of a few seconds. */
struct sizes sizes_of(bool quick)
{
	static const size_t decades[] = {1000, 10000, 100000, 1000000, 10000000};
	struct sizes sz = {
		.w1_live = quick ? 10000 : 100000,
		.w1_rounds = quick ? 40000 : 2000000,
		.w4_live = quick ? 2000 : 10000,
		.w4_rounds = quick ? 40000 : 2000000,
		.base_iters = quick ? 200000 : 10000000,
		.w6_n = quick ? 4 : 5, /* quick: up to 10^6, so that every ratio exists */
		.w6_rounds = quick ? 20000 : 2000000,
		.naive = {.seconds = quick ? 0.03 : 1.5,
			  .min_rounds = quick ? 1000 : 10000,
			  .calib_s = quick ? 0.002 : 0.02},
		.w8_n = quick ? 4 : 5,
		.wa_sizes = {10000, 100000}, /* both in quick mode too, for the ratio */
		.wa_rounds = quick ? 40000 : 2000000,
	};

	memcpy(sz.w6_sizes, decades, sizeof decades);
	memcpy(sz.w8_sizes, decades, sizeof decades);
	return sz;
}

/* Arenas (in quanta).  The ID arena of W1; the big one of W6-W8; W4's. */
#define ID_BASE 1u
#define ID_SIZE ((1ULL << 22) - 1)         /* [1, 2^22) */
#define BIG_SIZE ((1ULL << 26) - 1)        /* [1, 2^26): room for 2 x 10^7 during populate */
#define W4_QUANTUM 4096u
#define W4_QSHIFT 12
#define W4_SIZE (1ULL << 32)
#define W5_ALIGN (16u * W4_QUANTUM)

/* ------------------------------------------------------------------------ */
/* libvmem as the loops see it                                               */
/* ------------------------------------------------------------------------ */

/* ---- size-1 IDs ---- */

struct vctx {
	vmem_t *vm;
	int flags;
};

static void *vmem_id_create(const struct idparams *p)
{
	struct vctx *c = xmalloc(sizeof *c);

	c->vm = vmem_create("bench", p->base, p->size, 1, p->qcache_max, 0);
	if (c->vm == NULL)
		die("vmem_create: %s", strerror(errno));
	c->flags = p->flags;
	return c;
}

static void vmem_id_destroy(void *vctx)
{
	struct vctx *c = vctx;

	vmem_destroy(c->vm);
	free(c);
}

#define V_ALLOC(c, p) vmem_alloc((c)->vm, 1, (c)->flags, (p))
#define V_FREE(c, a) vmem_free((c)->vm, (a), 1)
DEFINE_ID_LOOPS(vmem, struct vctx, V_ALLOC, V_FREE)

/* libvmem's count of free segments, or FIGURE_NO_COUNT */
static uint64_t arena_free_segs(vmem_t *vm)
{
	vmem_stats_t st;

	memset(&st, 0, sizeof st);
	st.size = sizeof st;
	return vmem_get_stats(vm, &st) == 0 ? st.nfree : FIGURE_NO_COUNT;
}

static uint64_t vmem_id_free_segs(void *vctx)
{
	return arena_free_segs(((struct vctx *)vctx)->vm);
}

const struct idalg alg_vmem = IDALG(vmem, vmem_id_create, vmem_id_destroy, vmem_id_free_segs);

/* ---- random-sized segments (W4 vmem_alloc, W5 vmem_xalloc) ---- */

struct sctx {
	vmem_t *vm;
	int flags;
	unsigned int qshift;
	vmem_size_t align;
};

#define S_ALLOC(c, size, phase, p) vmem_alloc((c)->vm, (size), (c)->flags, (p))
#define S_FREE(c, a, size) vmem_free((c)->vm, (a), (size))
DEFINE_SEG_LOOPS(valloc, struct sctx, S_ALLOC, S_FREE)

#define X_ALLOC(c, size, phase, p)                                                     \
	vmem_xalloc((c)->vm, (size), (c)->align, (phase), 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, \
		    (c)->flags, (p))
#define X_FREE(c, a, size) vmem_xfree((c)->vm, (a), (size))
DEFINE_SEG_LOOPS(xalloc, struct sctx, X_ALLOC, X_FREE)

/*
 * WA: an address space as a GPU driver or an mmap layer uses it.  Ranges
 * of a random power of two from 4 KiB to 2 MiB, aligned to their size up
 * to 64 KiB, through vmem_xalloc; the freed slot gets a new random size.
 * populate allocates n ranges in a row; the warm-up churn scatters them.
 */
#define WA_SIZE (1ULL << 40)
#define WA_ALIGN_MAX (64u * 1024)
#define WA_NSIZES 10 /* 2^12 .. 2^21 bytes */
#define WA_RSIZE(r) ((uint64_t)W4_QUANTUM << pick((r), WA_NSIZES))
#define WA_ALLOC(c, size, p)                                                             \
	vmem_xalloc((c)->vm, (size), (size) < WA_ALIGN_MAX ? (size) : WA_ALIGN_MAX, 0, 0, \
		    VMEM_ADDR_MIN, VMEM_ADDR_MAX, (c)->flags, (p))
#define WA_REPLACE(tag, ALLOC, FREE, ctx, live, j, s)                                    \
	do {                                                                             \
		if (UNLIKELY(FREE(ctx, live[j].addr, live[j].size) != 0))                \
			die(#tag ": free failed");                                       \
		live[j].size = WA_RSIZE(xs_next(&s));                                    \
		if (UNLIKELY(ALLOC(ctx, live[j].size, &live[j].addr) != 0))              \
			die(#tag ": allocation of %" PRIu64 " failed", live[j].size);    \
	} while (0)
DEFINE_CHURN(wa, struct sctx, struct seg, WA_REPLACE, WA_ALLOC, X_FREE)

static void populate_wa(void *vctx, struct seg *live, size_t n, uint64_t *rng)
{
	struct sctx *ctx = vctx;
	uint64_t s = *rng;

	for (size_t i = 0; i < n; i++) {
		live[i].size = WA_RSIZE(xs_next(&s));
		if (UNLIKELY(WA_ALLOC(ctx, live[i].size, &live[i].addr) != 0))
			die("WA: populate: allocation %zu failed", i);
	}
	*rng = s;
}

typedef void seg_populate_fn(void *, struct seg *, size_t, uint64_t *);
typedef void seg_churn_fn(void *, struct seg *, size_t, uint64_t, uint64_t *);

/* A segment workload on ctx's arena: populate n, warm up, timed churn;
 * destroys the arena. */
static void seg_measure(struct sctx *ctx, const char *wl, const char *variant, size_t n,
			uint64_t rounds, seg_populate_fn *populate, seg_churn_fn *churn)
{
	struct seg *live = xmalloc(2 * n * sizeof live[0]);
	uint64_t rng = opt.seed;
	struct figure *res;

	progress("%s %s: populate", wl, variant);
	populate(ctx, live, n, &rng);
	progress("%s %s: warm up", wl, variant);
	churn(ctx, live, n, warmup_rounds(rounds), &rng);
	res = new_result(wl, variant, n, rounds, 1, "ns/pair");
	for (int i = 0; i < opt.reps; i++) {
		uint64_t t0;

		progress("%s %s: repetition %d/%d", wl, variant, i + 1, opt.reps);
		t0 = now_ns();
		churn(ctx, live, n, rounds, &rng);
		res->v[res->reps++] = (double)(now_ns() - t0) / (double)rounds;
	}
	finish_result(res);
	res->free_segs = arena_free_segs(ctx->vm);
	vmem_destroy(ctx->vm);
	free(live);
}

/* An arena of size bytes at 0 with quantum 4096, no caching. */
static void seg_arena(struct sctx *ctx, vmem_size_t size, int flags, vmem_size_t align)
{
	ctx->vm = vmem_create("bench-mixed", 0, size, W4_QUANTUM, 0, 0);
	if (ctx->vm == NULL)
		die("vmem_create: %s", strerror(errno));
	ctx->flags = flags;
	ctx->qshift = W4_QSHIFT;
	ctx->align = align;
}

/* W4 and W5: one arena, populated fragmented, then timed churn. */
static void run_seg(const struct sizes *sz, const char *wl, const char *variant, bool x, int flags)
{
	struct sctx ctx;

	seg_arena(&ctx, W4_SIZE, flags, W5_ALIGN);
	seg_measure(&ctx, wl, variant, sz->w4_live, sz->w4_rounds,
		    x ? populate_xalloc : populate_valloc, x ? churn_xalloc : churn_valloc);
}

/* ------------------------------------------------------------------------ */
/* The workloads                                                             */
/* ------------------------------------------------------------------------ */

static void wl_baselines(const struct sizes *sz)
{
	struct idparams prm = {ID_BASE, ID_SIZE, sz->w1_live, 0, 0};

	run_mutex_pair(sz->base_iters);
	run_malloc_pair(sz->base_iters);
	run_call_floor(sz->base_iters);
	run_id("B", V_LIFO, &alg_lifo, &prm, DENSE, sz->w1_rounds);
	run_id("B", V_BITMAP, &alg_bitmap, &prm, DENSE, sz->w1_rounds);
	run_id("B", V_FLOOR, &alg_tfloor, &prm, DENSE, sz->w1_rounds);
	run_id("B", "(e) naive list", &alg_rlist, &prm, DENSE, sz->w1_rounds);
}

static void wl_w1(const struct sizes *sz)
{
	struct idparams prm = {ID_BASE, ID_SIZE, sz->w1_live, VM_INSTANTFIT, 0};

	run_id("W1", V_INSTANT, &alg_vmem, &prm, DENSE, sz->w1_rounds);
	/* the same through a quantum cache (not the arena path the targets name) */
	prm.qcache_max = 1;
	run_id("W1", V_QC1, &alg_vmem, &prm, DENSE, sz->w1_rounds);
}

static void wl_w2(const struct sizes *sz)
{
	struct idparams prm = {ID_BASE, ID_SIZE, sz->w1_live, VM_NEXTFIT, 0};

	run_id("W2", "vmem nextfit", &alg_vmem, &prm, DENSE, sz->w1_rounds);
}

static void wl_w3(const struct sizes *sz)
{
	struct idparams prm = {ID_BASE, ID_SIZE, sz->w1_live, VM_FIRSTFIT, 0};

	run_id("W3", "vmem firstfit", &alg_vmem, &prm, DENSE, sz->w1_rounds);
}

static void wl_w4(const struct sizes *sz)
{
	run_seg(sz, "W4", "vmem_alloc instantfit", false, VM_INSTANTFIT);
	run_seg(sz, "W4", "vmem_alloc bestfit", false, VM_BESTFIT);
}

static void wl_w5(const struct sizes *sz)
{
	run_seg(sz, "W5", "vmem_xalloc instantfit", true, VM_INSTANTFIT);
	run_seg(sz, "W5", "vmem_xalloc bestfit", true, VM_BESTFIT);
}

/*
 * W6: W1 at each live-set size, under two conditions, for libvmem and the
 * naive list alike.  "dense": populate_dense, then the continuous W1 loop
 * (this stays unfragmented: each free leaves one hole and the next
 * allocation fills it).  "fragmented": about live/2 free extents between
 * the live IDs, held there by run_fresh.  The naive list stops at the first
 * size where a repetition would exceed its budget.
 */
static void wl_w6(const struct sizes *sz)
{
	bool naive = true;

	for (int i = 0; i < sz->w6_n; i++) {
		struct idparams prm = {ID_BASE, BIG_SIZE, sz->w6_sizes[i], VM_INSTANTFIT, 0};

		run_id("W6", V_VDENSE, &alg_vmem, &prm, DENSE, sz->w6_rounds);
		run_fresh("W6", V_VFRAG, &alg_vmem, &prm, sz->w6_rounds, NULL);
		run_id("W6", V_NDENSE, &alg_rlist, &prm, DENSE, sz->w6_rounds);
		/* what the memory alone costs at this size: vmem's line should
		 * follow it at a constant distance */
		run_id("W6", V_FDENSE, &alg_tfloor, &prm, DENSE, sz->w6_rounds);
		if (naive) {
			naive = run_fresh("W6", V_NFRAG, &alg_rlist, &prm, sz->w6_rounds, &sz->naive);
		} else {
			skip_result("W6", V_NFRAG, sz->w6_sizes[i], "stopped: a smaller size was too slow");
		}
	}
}

/*
 * W7 variants.  Each runs W1 (instant fit) on one shared arena from 1 and 2
 * threads.  The LIFO baseline (c) runs beside it for the cost of the lock
 * alone under contention.
 */
static const struct w7_variant {
	const char *name;
	const struct idalg *alg;
	vmem_size_t qcache_max;
} w7_variants[] = {
	{"vmem instantfit, qcache_max=0", &alg_vmem, 0},
	{V_QC1, &alg_vmem, 1},
	{V_LIFO, &alg_lifo, 0},
};

static void wl_w7(const struct sizes *sz)
{
	for (size_t v = 0; v < sizeof w7_variants / sizeof w7_variants[0]; v++) {
		const struct w7_variant *wv = &w7_variants[v];
		struct idparams prm = {ID_BASE, ID_SIZE, sz->w1_live, VM_INSTANTFIT, wv->qcache_max};

		for (int t = 1; t <= 2; t++)
			run_threads(wv->name, wv->alg, &prm, t, sz->w1_rounds);
	}
}

static void wl_wa(const struct sizes *sz)
{
	for (int i = 0; i < 2; i++) {
		struct sctx ctx;

		seg_arena(&ctx, WA_SIZE, VM_INSTANTFIT, 0);
		seg_measure(&ctx, "WA", V_WA, sz->wa_sizes[i], sz->wa_rounds, populate_wa, churn_wa);
	}
}

/* ---- W8: memory ---- */

struct memrow memrows[3 * MAXSIZES];
int nmemrows;

void run_memory(size_t n, enum layout layout)
{
	bool fragmented = layout == L_FRAG;
	struct idparams prm = {ID_BASE, BIG_SIZE, n, VM_INSTANTFIT, layout == L_CACHED ? 1 : 0};
	uint64_t *live = NULL;
	struct vctx *ctx;
	struct memrow *m = &memrows[nmemrows++];
	vmem_stats_t st;
	uint64_t rng = opt.seed;

	memset(m, 0, sizeof *m);
	m->layout = layout == L_CACHED ? "cached" : fragmented ? "fragmented" : "dense";
	m->live = n;
	if (fragmented) {
		live = xmalloc(2 * n * sizeof live[0]);
		memset(live, 0, 2 * n * sizeof live[0]); /* touched before the RSS reading */
	}
	progress("W8 %s live=%zu", m->layout, n);
	m->rss_before = rss_bytes();
	ctx = vmem_id_create(&prm);
	if (fragmented) {
		populate_vmem(ctx, live, n, &rng);
	} else {
		for (size_t i = 0; i < n; i++) {
			vmem_addr_t a;

			if (vmem_alloc(ctx->vm, 1, VM_INSTANTFIT, &a) != 0)
				die("W8: allocation %zu failed", i);
		}
	}
	memset(&st, 0, sizeof st);
	st.size = sizeof st;
	if (vmem_get_stats(ctx->vm, &st) != 0)
		die("vmem_get_stats failed");
	m->rss_after = rss_bytes();
	m->nalloc = st.nalloc;
	m->nsegs_free = st.nfree;
	m->tag_bytes = st.tag_bytes;
	m->hash_bytes = st.hash_bytes;
	m->arena_bytes = st.arena_bytes;
	/* a cache's slabs are the arena's allocated segments */
	if (layout != L_CACHED && st.nalloc != n)
		die("W8: vmem_get_stats says %" PRIu64 " allocated segments, expected %zu",
		    st.nalloc, n);
	vmem_id_destroy(ctx);
	free(live);
}

static void wl_w8(const struct sizes *sz)
{
	for (int i = 0; i < sz->w8_n; i++) {
		run_memory(sz->w8_sizes[i], L_DENSE);
		run_memory(sz->w8_sizes[i], L_FRAG);
		run_memory(sz->w8_sizes[i], L_CACHED);
	}
}

/* ---- W9: alloc+free pairs through the quantum caches ---- */

#define V9_ALLOC(vm, n, ap) vmem_alloc((vm), (n), VM_NOSLEEP, (ap))
DEFINE_W9_LOOP(w9_loop_vmem, vmem_t *, V9_ALLOC, vmem_free)

static void w9_run(const char *variant, int flags, uint64_t iters)
{
	vmem_t *vm = vmem_create("bench-qcache", 1ULL << 20, 1ULL << 32, W9_QUANTUM,
				 8 * W9_QUANTUM, flags);

	if (vm == NULL)
		die("W9: vmem_create failed");
	w9_loop_vmem(vm, "W9", iters, new_result("W9", variant, 0, iters, 1, "ns/pair"));
	vmem_destroy(vm);
}

/* A thread that does nothing until told to stop: it makes the process
 * multi-threaded, which is what a checked free's atomic depends on. */
static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static bool idle_stop;

static void *idle_thread(void *arg)
{
	pthread_mutex_lock(&idle_mu);
	while (!idle_stop)
		pthread_cond_wait(&idle_cv, &idle_mu);
	pthread_mutex_unlock(&idle_mu);
	return arg;
}

/*
 * Checked frees (the default) in a process with one thread, which can do
 * the check without an atomic instruction (no other thread can race with
 * it), then VMC_UNCHECKED, then checked frees again with a second thread
 * alive, where each free pays one compare-and-exchange.  Once a process
 * has started a thread, glibc counts it as multi-threaded for good: the
 * first figure is taken only while none has been started (W7 runs last
 * for that), and is skipped otherwise.
 */
static void wl_w9(const struct sizes *sz)
{
	pthread_t t;

	if (process_single_threaded())
		w9_run(V_W9, 0, sz->base_iters);
	else
		skip_result("W9", V_W9, 0, "the process already started a thread (run W9 before W7)");
	w9_run(V_W9U, VMC_UNCHECKED, sz->base_iters);
	idle_stop = false;
	if (pthread_create(&t, NULL, idle_thread, NULL) != 0)
		die("W9: pthread_create failed");
	w9_run(V_W9T, 0, sz->base_iters);
	pthread_mutex_lock(&idle_mu);
	idle_stop = true;
	pthread_cond_signal(&idle_cv);
	pthread_mutex_unlock(&idle_mu);
	pthread_join(t, NULL);
}

/* In the order they run, which is the order of the table.  W7 comes last,
 * after W9. */
const struct workload workloads[] = {
	{{"B", "baselines", "baselines (a)-(g), W1 loop for (c)-(f)"}, wl_baselines},
	{{"W1", "id-churn", "size-1 IDs in [1, 2^22), instant fit"}, wl_w1},
	{{"W2", "pid", "W1 with VM_NEXTFIT"}, wl_w2},
	{{"W3", "lowest-id", "W1 with VM_FIRSTFIT"}, wl_w3},
	{{"W4", "mixed", "1-64 pages in 2^32 bytes, quantum 4096"}, wl_w4},
	{{"W5", "xalloc", "W4 via vmem_xalloc, align 16 pages, random phase"}, wl_w5},
	{{"WA", "address-space", "xalloc 4 KiB-2 MiB in 2^40 bytes, 10^4, 10^5 live"}, wl_wa},
	{{"W6", "constant-time", "W1 at 10^3..10^7 live, vs. the naive list"}, wl_w6},
	{{"W8", "memory", "library bytes per live segment, 10^3..10^7"}, wl_w8},
	{{"W9", "qcache", "alloc+free pairs of 1-8 quanta through the caches"}, wl_w9},
	/* last: after its threads, the process is multi-threaded for good (W9) */
	{{"W7", "threads", "W1 on one shared arena, 1 and 2 threads"}, wl_w7},
};
const size_t nworkloads = sizeof workloads / sizeof workloads[0];

void workloads_run(const bool *selected)
{
	const struct sizes sz = sizes_of(opt.quick);

	for (size_t w = 0; w < nworkloads; w++)
		if (selected == NULL || selected[w])
			workloads[w].run(&sz);
}
