/*
 * report.h - what vmem-bench reports beyond its figures: the ratios to the
 * project's targets, the W8 memory section and the W6 chart, put together
 * for the generic output module (output.h).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include "output.h"

/* The report of this run: the harness's figures, W8's rows, the ratios. */
void report_of_run(struct report *r);

/* The W6 chart of r's figures (this run's, or a JSON file's); returns as chart_svg. */
int w6_svg(const char *path, const struct report *r);

#endif
