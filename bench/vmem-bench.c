/*
 * vmem-bench.c - latency, scaling and memory figures for libvmem: the
 * command line.
 *
 *   vmem-bench [--quick] [--reps N] [--seed N] [--json FILE] [--svg FILE] [WORKLOAD...]
 *
 * bench/README.md explains each workload and how to read the figures.
 *
 * The program is in files by concern:
 *   harness.c    how it measures: options, clock, random stream, medians,
 *                CPU name, the loops every allocator runs, the runners;
 *   baselines.c  the allocators libvmem is compared with, (a)..(g)
 *                (callfloor.c is (g)'s shared library);
 *   workloads.c  W1..W9: libvmem driven through its public API;
 *   report.c     the ratios to the project's targets, W8's memory rows and
 *                the W6 chart, handed to
 *   output.c     the table, the JSON and the SVG, which know no workload.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "report.h"
#include "workloads.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: vmem-bench [--quick] [--reps N] [--seed N] [--json FILE] [--svg FILE] "
		   "[WORKLOAD...]\n\nworkloads (default: all):\n");
	for (size_t i = 0; i < nworkloads; i++)
		fprintf(f, "  %-3s %-14s %s\n", workloads[i].info.id, workloads[i].info.name,
			workloads[i].info.desc);
}

int main(int argc, char **argv)
{
	const char *json = NULL, *svg = NULL;
	bool quick = false, any = false;
	bool *sel = calloc(nworkloads, sizeof *sel);
	struct report rep;

	if (sel == NULL)
		die("out of memory");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool found = false;

		if (strcmp(a, "--quick") == 0) {
			quick = true;
		} else if (strcmp(a, "--json") == 0 && i + 1 < argc) {
			json = argv[++i];
		} else if (strcmp(a, "--svg") == 0 && i + 1 < argc) {
			svg = argv[++i];
		} else if (strcmp(a, "--reps") == 0 && i + 1 < argc) {
			opt.reps = atoi(argv[++i]);
			if (opt.reps < 5 || opt.reps > MAXREP) {
				fprintf(stderr, "vmem-bench: --reps must be 5..%d\n", MAXREP);
				return 2;
			}
		} else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
			opt.seed = strtoull(argv[++i], NULL, 0);
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			for (size_t w = 0; w < nworkloads; w++) {
				if (strcasecmp(a, workloads[w].info.id) == 0 ||
				    strcasecmp(a, workloads[w].info.name) == 0)
					sel[w] = found = any = true;
			}
			if (!found) {
				fprintf(stderr, "vmem-bench: unknown argument '%s'\n", a);
				usage(stderr);
				return 2;
			}
		}
	}
	progress_init(isatty(STDERR_FILENO));
	options_defaults(quick);
	read_cpu_model();

	workloads_run(any ? sel : NULL);
	progress_clear();

	report_of_run(&rep);
	report_table(stdout, &rep);
	if (json != NULL && report_json(json, &rep) != 0)
		die("%s: %s", json, strerror(errno));
	if (svg != NULL) {
		int rc = w6_svg(svg, &rep);

		if (rc < 0)
			die("%s: %s", svg, strerror(errno));
		if (rc > 0)
			fprintf(stderr, "vmem-bench: --svg: W6 did not run, no figure written\n");
	}
	free(sel);
	return 0;
}
