/*
 * workloads.h - vmem-bench's workloads W1..W9 and the baselines' run (B):
 * what each measures, at which sizes, and the names of its figures, which
 * the report looks up (bench/README.md explains each workload).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef BENCH_WORKLOADS_H
#define BENCH_WORKLOADS_H

#include "harness.h"

#define MAXSIZES 8

/* How big each workload is, in full and in quick mode. */
struct sizes {
	size_t w1_live;          /* W1-W3, W7, baselines (c)-(f) */
	uint64_t w1_rounds;
	size_t w4_live;          /* W4, W5 */
	uint64_t w4_rounds;
	uint64_t base_iters;     /* baselines (a), (b), (g) and W9 */
	size_t w6_sizes[MAXSIZES];
	int w6_n;
	uint64_t w6_rounds;
	struct budget naive;     /* the naive list, fragmented, in W6 */
	size_t w8_sizes[MAXSIZES];
	int w8_n;
	size_t wa_sizes[2];      /* WA: live ranges */
	uint64_t wa_rounds;
};

struct sizes sizes_of(bool quick);

/* Figures' variants that the ratios and the W6 chart look up. */
#define V_INSTANT "vmem instantfit"
#define V_QC1 "vmem instantfit, qcache_max=1"
#define V_VFRAG "vmem instantfit, fragmented"   /* the four W6 series, and the floor (f) */
#define V_VDENSE "vmem instantfit, dense"
#define V_NFRAG "naive list, fragmented"
#define V_NDENSE "naive list, dense"
#define V_FDENSE "(f) tag+hash floor, dense"
#define V_LIFO "(c) lifo-mutex"
#define V_BITMAP "(d) bitmap-mutex"
#define V_MUTEX "(a) mutex lock+unlock"
#define V_MALLOC "(b) malloc(16)+free"
#define V_FLOOR "(f) tag+hash floor"
#define V_CALLS "(g) empty library call pair"
#define V_CALLS_ATOMIC "(h) empty call pair + one atomic"
#define V_W9 "vmem_alloc+free, 1-8 quanta, cached"
#define V_W9U "vmem_alloc+free, cached, VMC_UNCHECKED"
#define V_W9T "vmem_alloc+free, cached, 2nd thread up"
#define V_WA "vmem_xalloc, 4 KiB-2 MiB, align<=64 KiB"

/* W8's rows: one measurement of the library's memory each. */
struct memrow {
	const char *layout;  /* "dense", "fragmented" or "cached" */
	uint64_t live;
	uint64_t nalloc, nsegs_free;
	uint64_t tag_bytes, hash_bytes, arena_bytes;
	uint64_t rss_before, rss_after;
};

extern struct memrow memrows[3 * MAXSIZES];
extern int nmemrows;

/* W8's layouts: dense (n allocations in a row), fragmented (W6's
 * populate), or cached (n allocations through a quantum cache) */
enum layout { L_DENSE, L_FRAG, L_CACHED };

/* One W8 row: n live IDs in W8's arena, laid out as layout. */
void run_memory(size_t n, enum layout layout);

/* libvmem as W1-W3 drive it: size-1 IDs, no quantum caching unless the
 * idparams ask for it (bench/missdriver.c runs it under cachegrind) */
extern const struct idalg alg_vmem;

struct workload {
	struct workload_info info; /* id, name, description */
	void (*run)(const struct sizes *);
};

extern const struct workload workloads[];
extern const size_t nworkloads;

/* Runs workload w when selected[w], or every workload when selected is NULL. */
void workloads_run(const bool *selected);

#endif
