/*
 * output.c - the report of a benchmark run: table, JSON, SVG chart, and
 * (see output.h for what each function promises).
 *
 * It takes everything it prints as arguments and keeps no state, so that
 * a benchmark other than vmem-bench can link it without the workloads.
 * Nothing here exits or prints to stderr: errors go back to the caller.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

bool ratio_within(const struct ratio *q, double v)
{
	return q->at_least ? v >= q->target : v <= q->target;
}

void fmt_num(char *buf, size_t len, double v)
{
	if (!isfinite(v))
		snprintf(buf, len, "-");
	else if (v >= 100000)
		snprintf(buf, len, "%.0f", v);
	else if (v >= 100)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.2f", v);
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

static void figure_rows(FILE *f, const struct report *r)
{
	const char *lastwl = "";

	fprintf(f, "\n%-4s %-42s %9s %9s %10s %10s %10s  %-9s %s\n", "id", "variant", "live",
		"rounds", "median", "min", "max", "unit", "free segs");
	for (int i = 0; i < r->nfigures; i++) {
		const struct figure *g = &r->figures[i];
		char a[32], b[32], c[32], live[32], fs[32];

		if (strcmp(g->wl, lastwl) != 0 && i > 0)
			fputc('\n', f);
		lastwl = g->wl;
		if (g->live)
			snprintf(live, sizeof live, "%" PRIu64, g->live);
		else
			snprintf(live, sizeof live, "-");
		if (g->skipped) {
			fprintf(f, "%-4s %-42s %9s %9s  %s\n", g->wl, g->variant, live, "-", g->note);
			continue;
		}
		fmt_num(a, sizeof a, g->median);
		fmt_num(b, sizeof b, g->min);
		fmt_num(c, sizeof c, g->max);
		if (g->free_segs != FIGURE_NO_COUNT)
			snprintf(fs, sizeof fs, "%" PRIu64, g->free_segs);
		else
			snprintf(fs, sizeof fs, "-");
		fprintf(f, "%-4s %-42s %9s %9" PRIu64 " %10s %10s %10s  %-9s %s\n", g->wl, g->variant,
			live, g->rounds, a, b, c, g->unit, fs);
	}
}

static void ratio_rows(FILE *f, const struct report *r)
{
	fprintf(f, "\n%-16s %-46s %8s %8s  %s\n", "ratio", "meaning", "value", "target", "met");
	for (int i = 0; i < r->nratios; i++) {
		const struct ratio *q = &r->ratios[i];
		char v[32], t[32];

		fmt_num(v, sizeof v, q->value);
		snprintf(t, sizeof t, "%s %g", q->at_least ? ">=" : "<=", q->target);
		fprintf(f, "%-16s %-46s %8s %8s  %s\n", q->name, q->desc, v, t,
			!isfinite(q->value) ? "n/a" : ratio_within(q, q->value) ? "yes" : "NO");
	}
}

void report_table(FILE *f, const struct report *r)
{
	fprintf(f, "%s: %s %s, %s, %ld CPUs, %s mode, median of %d repetitions%s\n", r->bench,
		r->library, r->library_version, r->cpu, r->ncpu, r->quick ? "quick" : "full", r->reps,
		r->optimized ? "" : " (bench built WITHOUT optimization)");
	figure_rows(f, r);
	if (r->table_section != NULL)
		r->table_section(f, r->section_arg);
	ratio_rows(f, r);
	fflush(f);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

/* Closes a file that was written: 0, or -1 with errno set when a write failed. */
static int close_written(FILE *f)
{
	if (ferror(f)) {
		fclose(f);
		errno = EIO;
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

void json_member_str(FILE *f, const char *key, const char *v)
{
	fprintf(f, ", \"%s\": ", key);
	json_str(f, v);
}

void json_member_num(FILE *f, const char *key, double v)
{
	fprintf(f, ", \"%s\": ", key);
	json_num(f, v);
}

static void json_figure(FILE *f, const struct figure *g)
{
	fprintf(f, "{\"workload\": ");
	json_str(f, g->wl);
	json_member_str(f, "variant", g->variant);
	fprintf(f, ", \"live\": %" PRIu64 ", \"rounds\": %" PRIu64 ", \"threads\": %d", g->live,
		g->rounds, g->threads);
	json_member_str(f, "unit", g->unit);
	fprintf(f, ", \"skipped\": %s", g->skipped ? "true" : "false");
	if (g->free_segs != FIGURE_NO_COUNT)
		fprintf(f, ", \"free_segments\": %" PRIu64, g->free_segs);
	if (g->skipped)
		json_member_str(f, "note", g->note);
	fprintf(f, ", \"reps\": %d", g->reps);
	json_member_num(f, "median", g->median);
	json_member_num(f, "min", g->min);
	json_member_num(f, "max", g->max);
	fprintf(f, ", \"samples\": [");
	for (int k = 0; k < g->reps; k++) {
		if (k)
			fputs(", ", f);
		json_num(f, g->v[k]);
	}
	fprintf(f, "]}");
}

static void json_ratio(FILE *f, const struct ratio *q)
{
	fprintf(f, "{\"name\": ");
	json_str(f, q->name);
	json_member_str(f, "description", q->desc);
	json_member_num(f, "value", q->value);
	json_member_num(f, "target", q->target);
	fprintf(f, ", \"goal\": \"%s\", \"met\": %s}", q->at_least ? ">=" : "<=",
		!isfinite(q->value) ? "null" : ratio_within(q, q->value) ? "true" : "false");
}

int report_json(const char *path, const struct report *r)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "{\n  \"bench\": ");
	json_str(f, r->bench);
	fprintf(f, ",\n  \"format\": 1,\n  \"library_version\": ");
	json_str(f, r->library_version);
	fprintf(f, ",\n  \"cpu\": ");
	json_str(f, r->cpu);
	fprintf(f, ",\n  \"ncpu\": %ld,\n  \"quick\": %s,\n  \"reps\": %d,\n  \"seed\": %" PRIu64
		   ",\n  \"optimized\": %s,\n",
		r->ncpu, r->quick ? "true" : "false", r->reps, r->seed,
		r->optimized ? "true" : "false");
	fprintf(f, "  \"workloads\": [");
	for (size_t i = 0; i < r->nworkloads; i++) {
		fprintf(f, "%s\n    {\"id\": ", i ? "," : "");
		json_str(f, r->workloads[i].id);
		json_member_str(f, "name", r->workloads[i].name);
		json_member_str(f, "description", r->workloads[i].desc);
		fputc('}', f);
	}
	fprintf(f, "\n  ],\n  \"figures\": [");
	for (int i = 0; i < r->nfigures; i++) {
		fprintf(f, "%s\n    ", i ? "," : "");
		json_figure(f, &r->figures[i]);
	}
	fprintf(f, "\n  ]");
	if (r->json_section != NULL)
		r->json_section(f, r->section_arg);
	fprintf(f, ",\n  \"ratios\": [");
	for (int i = 0; i < r->nratios; i++) {
		fprintf(f, "%s\n    ", i ? "," : "");
		json_ratio(f, &r->ratios[i]);
	}
	fprintf(f, "\n  ]\n}\n");
	return close_written(f);
}

/* ------------------------------------------------------------------------ */
/* SVG chart                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * The layout, in SVG user units (pixels).  The writer cannot measure a
 * font, so it estimates a text's width from its number of characters,
 * generously: EM_NORMAL and EM_BOLD are above the mean advance of DejaVu
 * Sans (Debian's sans-serif), measured at 0.51 and 0.59 em on this chart's
 * texts, so that the room made for a text holds it.
 */
#define CH_MIN_W 760.0   /* canvas width, grown for a long title or legend */
#define CH_L 90.0        /* left margin: the y tick labels and the y axis title */
#define CH_R 30.0
#define CH_T 70.0        /* above the plot: title and subtitle */
#define CH_PLOT_H 360.0
#define CH_UNDER 58.0    /* from the plot to the legend: x tick labels, x axis title */
#define CH_BOTTOM 12.0   /* under the legend */
#define CH_ROW 20.0      /* a legend row */
#define CH_SWATCH 38.0   /* a legend entry's line and marker, before its text */
#define CH_PAD 10.0      /* inside the legend box, and between its columns */
#define CH_NOTE 16.0     /* the note line under the legend's rows */
#define CH_MAXCOLS 8     /* legend columns at most */
#define EM_NORMAL 0.58
#define EM_BOLD 0.64

struct layout {
	double w, h;          /* the canvas */
	double plot_r, plot_b; /* the plot's right and bottom edges */
	double x0, x1, y0, y1; /* the axes, in decades */
	int cols, rows;       /* the legend's grid */
	double colx[CH_MAXCOLS]; /* each legend column's left edge, inside the box */
};

static double text_width(const char *s, double font_px, double em)
{
	size_t chars = 0;

	for (; *s; s++)
		chars += ((unsigned char)*s & 0xc0) != 0x80; /* UTF-8: count lead bytes only */
	return (double)chars * font_px * em;
}

static double entry_width(const struct chart_series *s)
{
	return CH_SWATCH + text_width(s->label, 12, EM_NORMAL);
}

/*
 * The legend's grid: the most columns (entries in row-major order, each
 * column as wide as its widest entry) that fit in the box under the plot.
 * When even one column does not fit, the canvas grows.
 */
static void legend_grid(struct layout *lo, const struct chart *c)
{
	double room = lo->w - CH_L - CH_R, need;
	int cols = c->nseries < CH_MAXCOLS ? c->nseries : CH_MAXCOLS;

	if (cols < 1)
		cols = 1;
	for (;; cols--) {
		need = CH_PAD;
		for (int col = 0; col < cols; col++) {
			double widest = 0;

			for (int i = col; i < c->nseries; i += cols)
				widest = fmax(widest, entry_width(&c->series[i]));
			lo->colx[col] = need;
			need += widest + CH_PAD;
		}
		if (need <= room || cols == 1)
			break;
	}
	if (need > room)
		lo->w += need - room;
	lo->cols = cols;
	lo->rows = (c->nseries + cols - 1) / cols;
}

static void layout_chart(struct layout *lo, const struct chart *c)
{
	double title = text_width(c->title, 15, EM_BOLD), sub = text_width(c->subtitle, 12, EM_NORMAL);

	lo->w = fmax(CH_MIN_W, fmax(title, sub) + 2 * CH_PAD);
	if (c->note != NULL)
		lo->w = fmax(lo->w, CH_L + CH_R + 2 * CH_PAD + text_width(c->note, 10, EM_NORMAL));
	legend_grid(lo, c);
	lo->plot_r = lo->w - CH_R;
	lo->plot_b = CH_T + CH_PLOT_H;
	lo->h = lo->plot_b + CH_UNDER + CH_ROW * lo->rows + CH_PAD + (c->note ? CH_NOTE : 0) +
		CH_BOTTOM;
}

static void xml_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default:
			if ((unsigned char)*s >= 0x20)
				fputc(*s, f);
		}
	}
}

static double sx(const struct layout *lo, double v)
{
	return CH_L + (log10(v) - lo->x0) / (lo->x1 - lo->x0) * (lo->plot_r - CH_L);
}

static double sy(const struct layout *lo, double v)
{
	return CH_T + CH_PLOT_H * (1 - (log10(v) - lo->y0) / (lo->y1 - lo->y0));
}

static bool in_series(const struct figure *g, const char *wl, const char *variant)
{
	return strcmp(g->wl, wl) == 0 && strcmp(g->variant, variant) == 0 && !g->skipped;
}

/* A marker, left open for its <title>; svg_marker_end closes it. */
static void svg_marker(FILE *f, const struct chart_series *st, double x, double y)
{
	if (st->square)
		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\"",
			x - 4, y - 4, st->dashed ? "white" : st->color);
	else
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"", x, y,
			st->dashed ? "white" : st->color);
	fprintf(f, " stroke=\"%s\" stroke-width=\"1.5\">", st->color);
}

static void svg_marker_end(FILE *f, const struct chart_series *st)
{
	fputs(st->square ? "</rect>" : "</circle>", f);
}

static void svg_series(FILE *f, const struct layout *lo, const struct chart *c,
		       const struct chart_series *st, const struct figure *figs, int nfigs)
{
	bool any = false;

	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", st->color,
		st->dashed ? " stroke-dasharray=\"6,4\"" : "");
	for (int i = 0; i < nfigs; i++) {
		if (!in_series(&figs[i], c->workload, st->variant))
			continue;
		fprintf(f, "%s%.1f,%.1f", any ? " " : "", sx(lo, (double)figs[i].live),
			sy(lo, figs[i].median));
		any = true;
	}
	fprintf(f, "\"/>\n");
	for (int i = 0; i < nfigs; i++) {
		const struct figure *g = &figs[i];
		double x;

		if (!in_series(g, c->workload, st->variant))
			continue;
		x = sx(lo, (double)g->live);
		/* min..max bar */
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
			x, sy(lo, g->min), x, sy(lo, g->max), st->color);
		svg_marker(f, st, x, sy(lo, g->median));
		fprintf(f, "<title>");
		xml_str(f, st->variant);
		fprintf(f, ", %" PRIu64 " live: %.1f ns (min %.1f, max %.1f)</title>", g->live,
			g->median, g->min, g->max);
		svg_marker_end(f, st);
		fputc('\n', f);
	}
}

/*
 * Grid lines at 1..9 x each decade of one axis, the decades darker and
 * labelled: the x axis's as powers of ten, the y axis's as numbers.
 */
static void svg_grid(FILE *f, const struct layout *lo, bool xaxis)
{
	double d0 = xaxis ? lo->x0 : lo->y0, d1 = xaxis ? lo->x1 : lo->y1;

	for (double d = d0; d <= d1; d++) {
		for (int m = 1; m <= 9; m++) {
			double v = pow(10, d) * m, at;

			if (log10(v) > d1 + 1e-9)
				break;
			at = xaxis ? sx(lo, v) : sy(lo, v);
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
				xaxis ? at : CH_L, xaxis ? CH_T : at, xaxis ? at : lo->plot_r,
				xaxis ? lo->plot_b : at, m == 1 ? "#bbb" : "#eee");
			if (m > 1)
				continue;
			if (xaxis)
				fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">10"
					   "<tspan dy=\"-6\" font-size=\"9\">%.0f</tspan></text>\n",
					at, lo->plot_b + 20, d);
			else
				fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
					CH_L - 8, at + 4, v);
		}
	}
}

static void svg_axes(FILE *f, const struct layout *lo, const struct chart *c)
{
	double ymid = (CH_T + lo->plot_b) / 2;

	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n",
		CH_L, lo->plot_b, lo->plot_r, lo->plot_b);
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n",
		CH_L, CH_T, CH_L, lo->plot_b);
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">", (CH_L + lo->plot_r) / 2,
		lo->plot_b + 42);
	xml_str(f, c->xlabel);
	fprintf(f, "</text>\n<text x=\"22\" y=\"%.0f\" text-anchor=\"middle\" "
		   "transform=\"rotate(-90 22 %.0f)\">",
		ymid, ymid);
	xml_str(f, c->ylabel);
	fprintf(f, "</text>\n");
}

static void svg_legend(FILE *f, const struct layout *lo, const struct chart *c)
{
	double box_h = CH_ROW * lo->rows + CH_PAD + (c->note ? CH_NOTE : 0);

	fprintf(f, "<g transform=\"translate(%.0f,%.0f)\">\n"
		   "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\" "
		   "stroke=\"#888\"/>\n",
		CH_L, lo->plot_b + CH_UNDER, lo->plot_r - CH_L, box_h);
	for (int i = 0; i < c->nseries; i++) {
		const struct chart_series *st = &c->series[i];
		double x = lo->colx[i % lo->cols], y = 16 + CH_ROW * (i / lo->cols);

		fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
			   "stroke-width=\"2\"%s/>",
			x, y, x + 30, y, st->color, st->dashed ? " stroke-dasharray=\"6,4\"" : "");
		svg_marker(f, st, x + 15, y);
		svg_marker_end(f, st);
		fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">", x + CH_SWATCH, y + 4);
		xml_str(f, st->label);
		fprintf(f, "</text>\n");
	}
	if (c->note != NULL) {
		fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" fill=\"#444\">", CH_PAD,
			16 + CH_ROW * lo->rows - 2);
		xml_str(f, c->note);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</g>\n");
}

int chart_svg(const char *path, const struct chart *c, const struct figure *figs, int nfigs)
{
	struct layout lo;
	double xmin = INFINITY, xmax = 0, ymin = INFINITY, ymax = 0;
	FILE *f;

	for (int i = 0; i < nfigs; i++) {
		const struct figure *g = &figs[i];

		if (strcmp(g->wl, c->workload) != 0)
			continue;
		xmin = fmin(xmin, (double)g->live);
		xmax = fmax(xmax, (double)g->live);
		if (g->skipped)
			continue;
		ymin = fmin(ymin, g->min);
		ymax = fmax(ymax, g->max);
	}
	if (!(xmax > 0) || !(ymax > 0))
		return 1;
	memset(&lo, 0, sizeof lo);
	layout_chart(&lo, c);
	lo.x0 = floor(log10(xmin));
	lo.x1 = ceil(log10(xmax));
	if (lo.x1 <= lo.x0)
		lo.x1 = lo.x0 + 1;
	lo.y0 = floor(log10(ymin));
	lo.y1 = ceil(log10(ymax));
	if (lo.y1 <= lo.y0)
		lo.y1 = lo.y0 + 1;

	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		   "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
		lo.w, lo.h, lo.w, lo.h);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" "
		   "font-weight=\"bold\">",
		lo.w / 2);
	xml_str(f, c->title);
	fprintf(f, "</text>\n<text x=\"%.0f\" y=\"44\" text-anchor=\"middle\" fill=\"#444\">",
		lo.w / 2);
	xml_str(f, c->subtitle);
	fprintf(f, "</text>\n");
	svg_grid(f, &lo, true);
	svg_grid(f, &lo, false);
	svg_axes(f, &lo, c);
	for (int i = 0; i < c->nseries; i++)
		svg_series(f, &lo, c, &c->series[i], figs, nfigs);
	svg_legend(f, &lo, c);
	fprintf(f, "</svg>\n");
	return close_written(f);
}
