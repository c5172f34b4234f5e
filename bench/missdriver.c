/*
 * missdriver.c - the loops of issue 15's counted targets, one per process,
 * for bench/arena-misses.sh to run under cachegrind (not installed).
 *
 *   missdriver w1|w2|w3|f|c LIVE ROUNDS [WARMUP]
 *       an ID arena [1, 2^24) with quantum 1 and no quantum caching
 *       (vmem_create("bench", 1, 2^24 - 1, 1, 0, 0)), LIVE size-1 IDs
 *       allocated in a row, WARMUP rounds (default 0), then ROUNDS rounds,
 *       each freeing a random live ID and allocating one.  w1, w2, w3 are
 *       vmem-bench's W1 (VM_INSTANTFIT), W2 (VM_NEXTFIT) and W3
 *       (VM_FIRSTFIT); f is its baseline (f), the tag+hash floor, over the
 *       same range, and c its baseline (c), a locked LIFO of free IDs,
 *       whose own memory stays in cache: what the loop itself misses.
 *       The loops are vmem-bench's own (harness.h), and the
 *       random stream starts from vmem-bench's default seed, so a run with
 *       ROUNDS = 0 does everything but the rounds.
 *   missdriver w8 LIVE
 *       W8 dense: prints the tag+hash bytes per live segment of LIVE IDs
 *       allocated in a row, measured as vmem-bench's W8 measures it.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#include "baselines.h"
#include "workloads.h"

#define DRIVER_BASE 1u
#define DRIVER_SIZE ((1ULL << 24) - 1) /* [1, 2^24) */

static const struct {
	const char *name;
	const struct idalg *alg;
	int flags;
} loops[] = {
	{"w1", &alg_vmem, VM_INSTANTFIT},
	{"w2", &alg_vmem, VM_NEXTFIT},
	{"w3", &alg_vmem, VM_FIRSTFIT},
	{"f", &alg_tfloor, 0},
	{"c", &alg_lifo, 0},
};

static void usage(void)
{
	fprintf(stderr, "usage: missdriver w1|w2|w3|f|c LIVE ROUNDS [WARMUP]\n"
			"       missdriver w8 LIVE\n");
	exit(2);
}

static unsigned long long number(const char *s, unsigned long long hi)
{
	unsigned long long v;

	if (!parse_number(s, 0, hi, &v))
		usage();
	return v;
}

static int churn(const struct idalg *alg, int flags, size_t live, uint64_t rounds,
		 uint64_t warmup)
{
	struct idparams prm = {DRIVER_BASE, DRIVER_SIZE, live, flags, 0};
	uint64_t *ids = xmalloc(live * sizeof ids[0]);
	uint64_t rng = opt.seed;
	void *ctx = alg->create(&prm);

	alg->populate_dense(ctx, ids, live, &rng);
	alg->churn(ctx, ids, live, warmup, &rng);
	alg->churn(ctx, ids, live, rounds, &rng);
	alg->destroy(ctx);
	free(ids);
	return 0;
}

/* W8 dense, as vmem-bench prints it: (tag_bytes + hash_bytes) / nalloc */
static int w8(size_t live)
{
	const struct memrow *m;

	run_memory(live, L_DENSE);
	m = &memrows[nmemrows - 1];
	printf("%.2f\n", (double)(m->tag_bytes + m->hash_bytes) / (double)m->nalloc);
	return 0;
}

int main(int argc, char **argv)
{
	size_t live;

	options_defaults(false);
	if (argc < 3)
		usage();
	live = (size_t)number(argv[2], DRIVER_SIZE / 2);
	if (live == 0)
		usage();
	if (strcmp(argv[1], "w8") == 0) {
		if (argc != 3)
			usage();
		return w8(live);
	}
	if (argc != 4 && argc != 5)
		usage();
	for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++)
		if (strcmp(argv[1], loops[i].name) == 0)
			return churn(loops[i].alg, loops[i].flags, live, number(argv[3], UINT64_MAX),
				     argc == 5 ? number(argv[4], UINT64_MAX) : 0);
	usage();
	return 2;
}
