/*
 * output.h - the report of a benchmark run: the table on stdout, the JSON
 * document, and a log-log SVG chart of one workload's figures.
 *
 * This module knows nothing of vmem-bench's workloads: a program hands it
 * a struct report (its header, its figures, its ratios) and may add
 * sections of its own through two hooks.  So any benchmark of this project
 * can print and write its results in the same table and JSON format, and
 * read a JSON file back to redraw a chart, by linking output.c alone.
 *
 * Functions that write files return 0, or -1 with errno set; they never
 * exit, so the caller decides how to report an error.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef BENCH_OUTPUT_H
#define BENCH_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FIGURE_MAXREP 101           /* repetitions a figure can hold */
#define FIGURE_NO_COUNT UINT64_MAX  /* free_segs when there is no count */

/* One timed figure: the samples of its repetitions and their statistics. */
struct figure {
	char wl[8];          /* workload id: "B", "W1"... */
	char variant[64];
	uint64_t live;
	uint64_t rounds;     /* per repetition (pairs), or iterations */
	int threads;
	char unit[12];       /* "ns/pair" or "Mpairs/s" */
	bool skipped;        /* not measured; note says why */
	char note[96];
	uint64_t free_segs;  /* free extents at the end of the run, or FIGURE_NO_COUNT */
	int reps;
	double v[FIGURE_MAXREP];
	double median, min, max;
};

/*
 * A ratio of two figures against one of the project's targets (a design
 * goal, not a test of the machine).  floor is the same ratio computed for
 * a floor measured in the same run, one that does only part of the work,
 * so that a reader can tell a target that no allocator built that way
 * could meet on this machine; NAN (and floor_name NULL) when there is none.
 */
struct ratio {
	const char *name;
	const char *desc;
	double value;
	double target;
	bool at_least;          /* the goal is value >= target; otherwise value <= target */
	double floor;
	const char *floor_name; /* how the floor's ratio is computed, e.g. "(f)/(c)" */
};

/* true when v meets q's target; false when it does not or is not a number */
bool ratio_within(const struct ratio *q, double v);

struct workload_info {
	const char *id, *name, *desc;
};

/* Everything a report says.  The hooks are optional. */
struct report {
	const char *bench;           /* the program: "vmem-bench" */
	const char *library;         /* what it measures: "libvmem" */
	const char *library_version;
	const char *cpu;
	long ncpu;
	bool quick;
	bool optimized;              /* was the benchmark compiled with optimization */
	int reps;
	uint64_t seed;
	const struct workload_info *workloads;
	size_t nworkloads;
	const struct figure *figures;
	int nfigures;
	const struct ratio *ratios;
	int nratios;
	/*
	 * Sections of the program's own, between the figures and the ratios.
	 * json_section writes a member of the top-level object, starting with
	 * the comma that separates it from the one before.
	 */
	void (*table_section)(FILE *f, const void *arg);
	void (*json_section)(FILE *f, const void *arg);
	const void *section_arg;
};

void report_table(FILE *f, const struct report *r);
int report_json(const char *path, const struct report *r);

/* Pieces for the hooks. */
void fmt_num(char *buf, size_t len, double v);
void json_str(FILE *f, const char *s);
void json_num(FILE *f, double v); /* null when not finite */
/* `, "key": value`: a member of an object after its first */
void json_member_str(FILE *f, const char *key, const char *v);
void json_member_num(FILE *f, const char *key, double v);

/*
 * A JSON file written by report_json, read back: the header and the
 * figures (not the workloads, the ratios or the program's own sections).
 */
struct jval;

struct report_file {
	struct report report;
	struct figure *figures;
	struct jval *doc; /* the document read, which holds the header's strings */
};

int report_read_json(const char *path, struct report_file *out);
void report_file_free(struct report_file *rf);

/*
 * A log-log chart of one workload's figures: the median against live,
 * with min..max bars, one line per series, and a legend under the plot.
 * The canvas grows to hold the legend and the title, so that nothing is
 * drawn outside it.
 */
struct chart_series {
	const char *variant; /* the figures' variant */
	const char *label;   /* the legend's text */
	const char *color;
	bool square, dashed; /* marker shape; a dashed line and hollow markers */
};

struct chart {
	const char *workload; /* figures of this workload; the x axis spans all of them */
	const char *title, *subtitle, *xlabel, *ylabel;
	const struct chart_series *series;
	int nseries;
	const char *note; /* a line under the legend, or NULL */
};

/* 0 when written; 1 when the workload has no figures to draw (no file is
 * written); -1 with errno set when the file cannot be written */
int chart_svg(const char *path, const struct chart *c, const struct figure *figs, int nfigs);

#endif
