/*
 * vmem-bench.c - latency, scaling and memory figures for libvmem: the
 * command line.  `vmem-bench --help` lists the options; bench/README.md
 * explains each workload and how to read the figures.
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
	fprintf(f,
		"usage: vmem-bench [OPTION]... [WORKLOAD]...\n"
		"       vmem-bench --svg-from-json FILE --svg FILE\n"
		"\n"
		"Measures libvmem's latency, scaling and memory through its public API, beside\n"
		"simple baseline allocators run in the same process, and prints a table to\n"
		"stdout.  Progress goes to stderr when it is a terminal.  Each timed figure is\n"
		"the median of its repetitions, with min and max.  Measure with a release build\n"
		"on a quiet machine; bench/README.md explains the workloads and the figures.\n"
		"\n"
		"options:\n"
		"  --quick               every workload small (10^4 live IDs, 4*10^4 rounds, W6\n"
		"                        and W8 up to 10^6 live): a smoke test of a few\n"
		"                        seconds, not a measurement\n"
		"  --reps N              timed repetitions per figure, %d..%d (default 5)\n"
		"  --seed N              seed of the random stream, decimal or 0x-hex; every\n"
		"                        allocator sees the same stream (default\n"
		"                        %#llx, so that runs repeat; 0 means it)\n"
		"  --json FILE           also write the run to FILE as JSON: every figure with\n"
		"                        its samples, the W8 memory rows and the ratios\n"
		"  --svg FILE            also write the W6 figure (latency against live\n"
		"                        segments, log-log) to FILE as SVG\n"
		"  --svg-from-json FILE  run nothing: redraw the W6 figure from FILE, a JSON\n"
		"                        file written by --json, into the --svg FILE\n"
		"  -h, --help            print this help and exit\n"
		"\n"
		"workloads (default: all; name each by its id or its name, in any case):\n",
		5, MAXREP, (unsigned long long)DEFAULT_SEED);
	for (size_t i = 0; i < nworkloads; i++)
		fprintf(f, "  %-3s %-14s %s\n", workloads[i].info.id, workloads[i].info.name,
			workloads[i].info.desc);
	fprintf(f,
		"\n"
		"Under the table, ratios of figures from the same run are set against the\n"
		"project's targets: design goals of libvmem, not tests of this machine.  Where\n"
		"a baseline measured in the run already misses a target, the table names it.\n"
		"\n"
		"Exit status: 0 when the run and its files were written, 1 when a workload or\n"
		"a file failed, 2 on a bad command line.\n");
}

/* --svg-from-json: the W6 chart of a JSON file written by an earlier run */
static int redraw(const char *from, const char *svg)
{
	struct report_file rf;
	int rc;

	if (report_read_json(from, &rf) != 0)
		die("%s: %s", from, errno == EINVAL ? "not a JSON file of vmem-bench" : strerror(errno));
	rc = w6_svg(svg, &rf.report);
	if (rc < 0)
		die("%s: %s", svg, strerror(errno));
	if (rc > 0)
		die("%s: no W6 figures to draw", from);
	report_file_free(&rf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *json = NULL, *svg = NULL, *from = NULL;
	bool quick, any = false;
	bool *sel = calloc(nworkloads, sizeof *sel);
	unsigned long long reps = 0, seed = 0;
	struct report rep;
	const struct cli_number numbers[] = {
		CLI_REPS(&reps),
		{"seed", 0, UINT64_MAX, "--seed takes a number, decimal or 0x-hex", &seed},
	};
	const struct cli_string strings[] = {
		{"json", &json},
		{"svg", &svg},
		{"svg-from-json", &from},
	};
	struct cli cli = {usage, CLI_TABLE(numbers), CLI_TABLE(strings), false};

	if (sel == NULL)
		die("out of memory");
	int status = cli_parse(&cli, argc, argv);
	if (status >= 0) {
		free(sel);
		return status;
	}
	quick = cli.quick;
	opt.reps = (int)reps;
	opt.seed = seed;
	for (int i = optind; i < argc; i++) {
		bool found = false;

		for (size_t w = 0; w < nworkloads; w++) {
			if (strcasecmp(argv[i], workloads[w].info.id) == 0 ||
			    strcasecmp(argv[i], workloads[w].info.name) == 0)
				sel[w] = found = any = true;
		}
		if (!found) {
			fprintf(stderr, "vmem-bench: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (from != NULL && (svg == NULL || json != NULL || any || quick)) {
		fprintf(stderr, "vmem-bench: --svg-from-json runs nothing and needs --svg, "
				"and nothing else\n");
		return 2;
	}
	progress_init(isatty(STDERR_FILENO));
	options_defaults(quick);
	if (from != NULL) {
		free(sel);
		return redraw(from, svg);
	}
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
