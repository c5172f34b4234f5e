/*
 * baselines.h - the allocators vmem-bench measures libvmem against, run
 * in the same process by the same loops (bench/README.md describes each):
 *
 *   (a) an uncontended mutex lock+unlock pair;
 *   (b) glibc malloc(16) + free;
 *   (c) a mutex-protected LIFO of free IDs;
 *   (d) a mutex-protected bitmap with summary words;
 *   (e) the naive sorted list of free extents (rmalloc), W6's comparison;
 *   (f) the LIFO plus the memory traffic of boundary tags and a hash;
 *   (g) W9's loop calling empty functions in a shared library (callfloor.c).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef BENCH_BASELINES_H
#define BENCH_BASELINES_H

#include "harness.h"

extern const struct idalg alg_lifo;   /* (c) */
extern const struct idalg alg_bitmap; /* (d) */
extern const struct idalg alg_rlist;  /* (e) */
extern const struct idalg alg_tfloor; /* (f) */

/* (a), (b) and (g): a figure each, of `iters` pairs a repetition */
void run_mutex_pair(uint64_t iters);
void run_malloc_pair(uint64_t iters);
void run_call_floor(uint64_t iters);

#endif
