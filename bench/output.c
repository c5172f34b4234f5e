/*
 * output.c - the report of a benchmark run: table, JSON, SVG chart, and
 * the JSON read back (see output.h for what each function promises).
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

/*
 * The ratios, worded so that a reader does not take a missed target for a
 * fault of the machine: the targets are the project's design goals, and a
 * floor measured in the same run shows where one cannot be met at all.
 */
static void ratio_rows(FILE *f, const struct report *r)
{
	fprintf(f, "\nRatios to the project's targets.  A target is a design goal of %s, not a\n"
		   "test of this machine: \"no\" under \"within target\" says that %s has not\n"
		   "reached that goal here.  Some targets lie below a floor measured in this same\n"
		   "run, a baseline that does only part of the work: the last column names it.\n",
		r->library, r->library);
	fprintf(f, "\n%-16s %-46s %8s  %-14s  %-13s  %s\n", "ratio", "meaning", "value",
		"project target", "within target", "floor in this run");
	for (int i = 0; i < r->nratios; i++) {
		const struct ratio *q = &r->ratios[i];
		const char *within = !isfinite(q->value) ? "n/a" : ratio_within(q, q->value) ? "yes" : "no";
		char v[32], t[32];

		fmt_num(v, sizeof v, q->value);
		snprintf(t, sizeof t, "%s %g", q->at_least ? ">=" : "<=", q->target);
		if (q->floor_name == NULL || !isfinite(q->floor)) {
			fprintf(f, "%-16s %-46s %8s  %-14s  %s\n", q->name, q->desc, v, t, within);
		} else {
			char fv[32];

			fmt_num(fv, sizeof fv, q->floor);
			fprintf(f, "%-16s %-46s %8s  %-14s  %-13s  %s%s = %s\n", q->name, q->desc, v,
				t, within,
				ratio_within(q, q->floor) ? "floor " : "target is below floor ",
				q->floor_name, fv);
		}
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
/* JSON read back                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A small reader for what report_json writes (and for any JSON): the whole
 * text becomes a tree of values.  A number keeps its text as well, so that
 * a 64-bit integer (the seed) survives.
 */
enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool truth;         /* J_BOOL */
	char *text;         /* J_STR: the string; J_NUM: its digits */
	char *key;          /* a member of an object: its name */
	struct jval *kid;   /* J_ARR, J_OBJ: the first element */
	struct jval *next;  /* the next element of the same array or object */
};

struct jparse {
	const char *p;
	int depth;
};

#define JSON_MAXDEPTH 32

static void jfree(struct jval *v)
{
	while (v != NULL) {
		struct jval *next = v->next;

		jfree(v->kid);
		free(v->text);
		free(v->key);
		free(v);
		v = next;
	}
}

static void jskip(struct jparse *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t put_utf8(char *o, unsigned long cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The 4 hex digits of a \u escape at p, or -1. */
static long hex4(const char *p)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* A string starting at its opening quote; NULL when malformed. */
static char *jstring(struct jparse *ps)
{
	const char *s = ps->p + 1, *q = s;
	char *out, *o;

	/* room for the raw text up to the closing quote: an escape never grows */
	while (*q != '\0' && *q != '"')
		q += q[0] == '\\' && q[1] != '\0' ? 2 : 1;
	out = o = malloc((size_t)(q - s) + 1);
	if (out == NULL)
		return NULL;
	while (*s != '"') {
		if ((unsigned char)*s < 0x20)
			goto bad; /* the end of the text, or a raw control character */
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case '"': case '\\': case '/': *o++ = *s; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			long cp = hex4(s + 1);

			if (cp < 0)
				goto bad;
			s += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && s[1] == '\\' && s[2] == 'u') {
				long lo = hex4(s + 3);

				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					s += 6;
				}
			}
			o += put_utf8(o, (unsigned long)cp);
			break;
		}
		default:
			goto bad;
		}
		s++;
	}
	*o = '\0';
	ps->p = s + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static struct jval *jvalue(struct jparse *ps);

/* The elements of an array or the members of an object, after its bracket. */
static bool jelements(struct jparse *ps, struct jval *v, char close)
{
	struct jval **tail = &v->kid;

	jskip(ps);
	if (*ps->p == close) {
		ps->p++;
		return true;
	}
	for (;;) {
		char *key = NULL;
		struct jval *e;

		jskip(ps);
		if (close == '}') {
			if (*ps->p != '"' || (key = jstring(ps)) == NULL)
				return false;
			jskip(ps);
			if (*ps->p++ != ':') {
				free(key);
				return false;
			}
		}
		e = jvalue(ps);
		if (e == NULL) {
			free(key);
			return false;
		}
		e->key = key;
		*tail = e;
		tail = &e->next;
		jskip(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p != close)
			return false;
		ps->p++;
		return true;
	}
}

static struct jval *jvalue(struct jparse *ps)
{
	struct jval *v = calloc(1, sizeof *v);
	bool ok = true;

	if (v == NULL)
		return NULL;
	jskip(ps);
	if (*ps->p == '{' || *ps->p == '[') {
		char close = *ps->p == '{' ? '}' : ']';

		v->type = close == '}' ? J_OBJ : J_ARR;
		ps->p++;
		ok = ++ps->depth <= JSON_MAXDEPTH && jelements(ps, v, close);
		ps->depth--;
	} else if (*ps->p == '"') {
		v->type = J_STR;
		ok = (v->text = jstring(ps)) != NULL;
	} else if (strncmp(ps->p, "true", 4) == 0 || strncmp(ps->p, "false", 5) == 0) {
		v->type = J_BOOL;
		v->truth = *ps->p == 't';
		ps->p += v->truth ? 4 : 5;
	} else if (strncmp(ps->p, "null", 4) == 0) {
		v->type = J_NULL;
		ps->p += 4;
	} else {
		char *end;

		v->type = J_NUM;
		(void)strtod(ps->p, &end);
		ok = end != ps->p && (v->text = strndup(ps->p, (size_t)(end - ps->p))) != NULL;
		ps->p = end;
	}
	if (!ok) {
		jfree(v);
		return NULL;
	}
	return v;
}

static const struct jval *jget(const struct jval *obj, const char *key, enum jtype type)
{
	if (obj == NULL || obj->type != J_OBJ)
		return NULL;
	for (const struct jval *m = obj->kid; m != NULL; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m->type == type ? m : NULL;
	return NULL;
}

static const char *jget_str(const struct jval *obj, const char *key)
{
	const struct jval *v = jget(obj, key, J_STR);

	return v ? v->text : NULL;
}

static double jget_num(const struct jval *obj, const char *key)
{
	const struct jval *v = jget(obj, key, J_NUM);

	return v ? strtod(v->text, NULL) : NAN;
}

static uint64_t jget_u64(const struct jval *obj, const char *key, uint64_t none)
{
	const struct jval *v = jget(obj, key, J_NUM);

	return v ? strtoull(v->text, NULL, 10) : none;
}

static bool jget_bool(const struct jval *obj, const char *key)
{
	const struct jval *v = jget(obj, key, J_BOOL);

	return v != NULL && v->truth;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap = cap ? 2 * cap : 65536);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static void figure_from_json(struct figure *g, const struct jval *o)
{
	const char *note = jget_str(o, "note");
	const struct jval *s = jget(o, "samples", J_ARR);

	memset(g, 0, sizeof *g);
	snprintf(g->wl, sizeof g->wl, "%s", jget_str(o, "workload"));
	snprintf(g->variant, sizeof g->variant, "%s", jget_str(o, "variant"));
	snprintf(g->unit, sizeof g->unit, "%s", jget_str(o, "unit"));
	snprintf(g->note, sizeof g->note, "%s", note ? note : "");
	g->live = jget_u64(o, "live", 0);
	g->rounds = jget_u64(o, "rounds", 0);
	g->threads = (int)jget_u64(o, "threads", 1);
	g->skipped = jget_bool(o, "skipped");
	g->free_segs = jget_u64(o, "free_segments", FIGURE_NO_COUNT);
	g->median = jget_num(o, "median");
	g->min = jget_num(o, "min");
	g->max = jget_num(o, "max");
	for (const struct jval *e = s ? s->kid : NULL; e != NULL && g->reps < FIGURE_MAXREP; e = e->next)
		g->v[g->reps++] = e->type == J_NUM ? strtod(e->text, NULL) : NAN;
}

/* A figure needs these members, as strings, to be read back. */
static bool figure_well_formed(const struct jval *o)
{
	return jget_str(o, "workload") && jget_str(o, "variant") && jget_str(o, "unit");
}

int report_read_json(const char *path, struct report_file *out)
{
	char *text = read_text(path);
	struct jparse ps = {text, 0};
	struct jval *doc;
	const struct jval *figs;
	int n = 0;

	memset(out, 0, sizeof *out);
	if (text == NULL)
		return -1;
	doc = jvalue(&ps);
	if (doc != NULL) {
		jskip(&ps);
		if (*ps.p != '\0') { /* something after the document */
			jfree(doc);
			doc = NULL;
		}
	}
	free(text);
	if (doc == NULL || doc->type != J_OBJ ||
	    (figs = jget(doc, "figures", J_ARR)) == NULL || jget_str(doc, "cpu") == NULL) {
		jfree(doc);
		errno = EINVAL;
		return -1;
	}
	for (const struct jval *e = figs->kid; e != NULL; e = e->next) {
		if (!figure_well_formed(e)) {
			jfree(doc);
			errno = EINVAL;
			return -1;
		}
		n++;
	}
	out->figures = calloc(n ? (size_t)n : 1, sizeof out->figures[0]);
	if (out->figures == NULL) {
		jfree(doc);
		errno = ENOMEM;
		return -1;
	}
	for (const struct jval *e = figs->kid; e != NULL; e = e->next)
		figure_from_json(&out->figures[out->report.nfigures++], e);
	out->doc = doc;
	out->report.bench = jget_str(doc, "bench");
	out->report.library_version = jget_str(doc, "library_version");
	out->report.cpu = jget_str(doc, "cpu");
	out->report.ncpu = (long)jget_u64(doc, "ncpu", 1);
	out->report.quick = jget_bool(doc, "quick");
	out->report.optimized = jget_bool(doc, "optimized");
	out->report.reps = (int)jget_u64(doc, "reps", 0);
	out->report.seed = jget_u64(doc, "seed", 0);
	out->report.figures = out->figures;
	return 0;
}

void report_file_free(struct report_file *rf)
{
	free(rf->figures);
	jfree(rf->doc);
	memset(rf, 0, sizeof *rf);
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
