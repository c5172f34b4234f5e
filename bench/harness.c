/*
 * harness.c - how vmem-bench measures (see harness.h): messages, the
 * machine's name and memory, the registry of figures and their medians,
 * and the runners that time an ID allocator from one thread, from a fresh
 * fragmented arena again and again, and from several threads.
 *
 * Every timed figure is the median of opt.reps repetitions (5 or more),
 * with min and max beside it; every repetition reads the monotonic clock
 * around its loop only.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <unistd.h>

#include "harness.h"

struct options opt;
char cpu_model[128] = "unknown CPU";
long ncpu = 1;

static bool progress_tty;

void options_defaults(bool quick)
{
	opt.quick = quick;
	if (opt.reps == 0)
		opt.reps = 5;
	if (opt.seed == 0)
		opt.seed = DEFAULT_SEED;
}

void progress_init(bool stderr_is_tty)
{
	progress_tty = stderr_is_tty;
}

void die(const char *fmt, ...)
{
	va_list ap;

	if (progress_tty)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

bool parse_number(const char *s, unsigned long long lo, unsigned long long hi,
		  unsigned long long *out)
{
	char *end;

	if (*s == '\0' || *s == '-')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno == 0 && *end == '\0' && *out >= lo && *out <= hi;
}

int cli_parse(struct cli *cli, int argc, char **argv)
{
	enum { QUICK = 256, HELP, NUMBER = 512, STRING = 1024 };
	struct option longopts[2 + cli->nnumbers + cli->nstrings + 1];
	size_t n = 0;
	int c;

	longopts[n++] = (struct option){"quick", no_argument, NULL, QUICK};
	longopts[n++] = (struct option){"help", no_argument, NULL, HELP};
	for (size_t i = 0; i < cli->nnumbers; i++)
		longopts[n++] = (struct option){cli->numbers[i].name, required_argument, NULL,
						NUMBER + (int)i};
	for (size_t i = 0; i < cli->nstrings; i++)
		longopts[n++] = (struct option){cli->strings[i].name, required_argument, NULL,
						STRING + (int)i};
	longopts[n] = (struct option){NULL, 0, NULL, 0};
	cli->quick = false;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == QUICK) {
			cli->quick = true;
		} else if (c >= STRING && c < STRING + (int)cli->nstrings) {
			*cli->strings[c - STRING].to = optarg;
		} else if (c >= NUMBER && c < NUMBER + (int)cli->nnumbers) {
			const struct cli_number *num = &cli->numbers[c - NUMBER];

			if (!parse_number(optarg, num->lo, num->hi, num->to)) {
				fprintf(stderr, "%s: %s\n", program_invocation_short_name, num->error);
				return 2;
			}
		} else if (c == 'h' || c == HELP) {
			cli->usage(stdout);
			return 0;
		} else { /* getopt_long has said what is wrong */
			cli->usage(stderr);
			return 2;
		}
	}
	return -1;
}

void progress(const char *fmt, ...)
{
	va_list ap;

	if (!progress_tty)
		return;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

void progress_clear(void)
{
	if (progress_tty) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

uint64_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void read_cpu_model(void)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		/* x86 has "model name"; some arm64 kernels only "Hardware" or "CPU part" */
		if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0 ||
		    strncmp(line, "cpu model", 9) == 0) {
			char *v = strchr(line, ':');
			size_t len;

			if (v == NULL)
				continue;
			v++;
			while (*v == ' ' || *v == '\t')
				v++;
			len = strcspn(v, "\n");
			if (len == 0)
				continue;
			if (len >= sizeof cpu_model)
				len = sizeof cpu_model - 1;
			memcpy(cpu_model, v, len);
			cpu_model[len] = '\0';
			break;
		}
	}
	fclose(f);
}

/* ------------------------------------------------------------------------ */
/* Figures                                                                   */
/* ------------------------------------------------------------------------ */

struct figure results[MAXRESULTS];
int nresults;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct figure *new_result(const char *wl, const char *variant, uint64_t live, uint64_t rounds,
			  int threads, const char *unit)
{
	struct figure *r;

	if (nresults == MAXRESULTS)
		die("too many results");
	r = &results[nresults++];
	memset(r, 0, sizeof *r);
	snprintf(r->wl, sizeof r->wl, "%s", wl);
	snprintf(r->variant, sizeof r->variant, "%s", variant);
	snprintf(r->unit, sizeof r->unit, "%s", unit);
	r->live = live;
	r->rounds = rounds;
	r->threads = threads;
	r->median = r->min = r->max = NAN;
	r->free_segs = FIGURE_NO_COUNT;
	return r;
}

void skip_result(const char *wl, const char *variant, uint64_t live, const char *fmt, ...)
{
	struct figure *r = new_result(wl, variant, live, 0, 1, "ns/pair");
	va_list ap;

	r->skipped = true;
	va_start(ap, fmt);
	vsnprintf(r->note, sizeof r->note, fmt, ap);
	va_end(ap);
}

bool process_single_threaded(void)
{
	return __libc_single_threaded != 0;
}

void finish_result(struct figure *r)
{
	double s[MAXREP];
	int n = r->reps;

	memcpy(s, r->v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof s[0], cmp_double);
	r->min = s[0];
	r->max = s[n - 1];
	r->median = (n % 2) ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

struct report run_report(const char *bench, const char *library, const char *library_version,
			 const struct workload_info *workloads, size_t nworkloads)
{
	return (struct report){
		.bench = bench,
		.library = library,
		.library_version = library_version,
		.cpu = cpu_model,
		.ncpu = ncpu,
		.quick = opt.quick,
#ifdef __OPTIMIZE__
		.optimized = true,
#endif
		.reps = opt.reps,
		.seed = opt.seed,
		.workloads = workloads,
		.nworkloads = nworkloads,
		.figures = results,
		.nfigures = nresults,
	};
}

const struct figure *find_result(const char *wl, const char *variant, uint64_t live)
{
	for (int i = 0; i < nresults; i++) {
		const struct figure *r = &results[i];

		if (strcmp(r->wl, wl) == 0 && strcmp(r->variant, variant) == 0 &&
		    (live == 0 || r->live == live) && !r->skipped)
			return r;
	}
	return NULL;
}

double med(const char *wl, const char *variant, uint64_t live)
{
	const struct figure *r = find_result(wl, variant, live);

	return r ? r->median : NAN;
}

void w9_sizes(uint64_t *sz)
{
	uint64_t rng = opt.seed;

	for (unsigned int i = 0; i < W9_SIZES; i++)
		sz[i] = W9_QUANTUM * (1 + pick(xs_next(&rng), 8));
}

/* ------------------------------------------------------------------------ */
/* Runners                                                                   */
/* ------------------------------------------------------------------------ */

void run_id(const char *wl, const char *variant, const struct idalg *alg,
	    const struct idparams *prm, enum start start, uint64_t rounds)
{
	size_t n = prm->live;
	uint64_t *live = xmalloc((start == DENSE ? 1 : 2) * n * sizeof live[0]);
	void *ctx = alg->create(prm);
	uint64_t rng = opt.seed;
	struct figure *res;

	progress("%s %s live=%zu: populate", wl, variant, n);
	if (start == DENSE)
		alg->populate_dense(ctx, live, n, &rng);
	else
		alg->populate(ctx, live, n, &rng);
	progress("%s %s live=%zu: warm up", wl, variant, n);
	alg->churn(ctx, live, n, warmup_rounds(rounds), &rng);
	res = new_result(wl, variant, n, rounds, 1, "ns/pair");
	for (int i = 0; i < opt.reps; i++) {
		uint64_t t0;

		progress("%s %s live=%zu: repetition %d/%d", wl, variant, n, i + 1, opt.reps);
		t0 = now_ns();
		alg->churn(ctx, live, n, rounds, &rng);
		res->v[res->reps++] = (double)(now_ns() - t0) / (double)rounds;
	}
	finish_result(res);
	res->free_segs = alg->free_segs(ctx);
	alg->destroy(ctx);
	free(live);
}

/*
 * Under a long churn of size-1 IDs both first fit (the naive list) and
 * libvmem's instant fit compact the arena: each allocation fills a hole.
 * A continuous run from a fragmented start would therefore measure a
 * different fragmentation at each size.  Instead every timed pair comes
 * from the first live/FRESH_DIV rounds after a fragmenting populate: a
 * repetition runs cycles of (create, populate, timed churn of at most
 * live/FRESH_DIV rounds, destroy) until it has timed `rounds` pairs; only
 * the churn is timed.
 *
 * With a budget (the naive list) a calibration cycle comes first; the
 * rounds are cut to what fits in budget->seconds, and when even
 * budget->min_rounds would not fit the size is recorded as stopped and
 * false is returned.
 */
#define FRESH_DIV 4

/* Pairs a second the allocator reaches at this size, as ns per pair. */
static double calibrate(const struct idalg *alg, const struct idparams *prm, uint64_t *live,
			uint64_t cycle, double calib_s, uint64_t *rng)
{
	size_t n = prm->live;
	void *ctx = alg->create(prm);
	uint64_t c = 16, dt, t0;

	alg->populate(ctx, live, n, rng);
	for (;;) {
		t0 = now_ns();
		alg->churn(ctx, live, n, c, rng);
		dt = now_ns() - t0;
		if (dt >= calib_s * 1e9 || 2 * c > cycle)
			break;
		c *= 2;
	}
	/* the least of three windows, so that a preemption cannot stop the list */
	for (int k = 0; k < 2; k++) {
		t0 = now_ns();
		alg->churn(ctx, live, n, c, rng);
		t0 = now_ns() - t0;
		dt = t0 < dt ? t0 : dt;
	}
	alg->destroy(ctx);
	return (double)dt / (double)c;
}

bool run_fresh(const char *wl, const char *variant, const struct idalg *alg,
	       const struct idparams *prm, uint64_t rounds, const struct budget *budget)
{
	size_t n = prm->live;
	uint64_t cycle = n / FRESH_DIV ? n / FRESH_DIV : 1;
	uint64_t *live = xmalloc(2 * n * sizeof live[0]);
	uint64_t rng = opt.seed, t0;
	struct figure *res;
	void *ctx;

	if (budget != NULL) {
		double ns;

		progress("%s %s live=%zu: calibrate", wl, variant, n);
		ns = calibrate(alg, prm, live, cycle, budget->calib_s, &rng);
		if (ns * (double)rounds > budget->seconds * 1e9)
			rounds = (uint64_t)(budget->seconds * 1e9 / ns);
		if (rounds < budget->min_rounds) {
			skip_result(wl, variant, n, "stopped: ~%.3g ns/pair, %" PRIu64 " pairs would take > %.3g s",
				    ns, budget->min_rounds, budget->seconds);
			free(live);
			return false;
		}
	}
	res = new_result(wl, variant, n, rounds, 1, "ns/pair");
	for (int i = 0; i < opt.reps; i++) {
		uint64_t done = 0, elapsed = 0;

		while (done < rounds) {
			uint64_t k = rounds - done < cycle ? rounds - done : cycle;

			progress("%s %s live=%zu: repetition %d/%d, %" PRIu64 "%%", wl, variant, n,
				 i + 1, opt.reps, 100 * done / rounds);
			ctx = alg->create(prm);
			alg->populate(ctx, live, n, &rng);
			t0 = now_ns();
			alg->churn(ctx, live, n, k, &rng);
			elapsed += now_ns() - t0;
			done += k;
			if (done >= rounds)
				res->free_segs = alg->free_segs(ctx);
			alg->destroy(ctx);
		}
		res->v[res->reps++] = (double)elapsed / (double)done;
	}
	finish_result(res);
	free(live);
	return true;
}

#define MAXTHR 8

struct thr_arg {
	const struct idalg *alg;
	void *ctx;
	uint64_t *live;
	size_t n;
	uint64_t rounds;
	uint64_t rng;
	pthread_barrier_t *bar;
	uint64_t t_start, t_end;
};

static void *thr_main(void *p)
{
	struct thr_arg *a = p;

	pthread_barrier_wait(a->bar);
	a->t_start = now_ns();
	a->alg->churn(a->ctx, a->live, a->n, a->rounds, &a->rng);
	a->t_end = now_ns();
	return NULL;
}

/*
 * Run `rounds` pairs in total, split over nthr threads, each churning its
 * own slice of the live set.  The figure is total pairs over the wall time
 * from the first thread's start to the last thread's end (each thread reads
 * the clock itself, so a descheduled main thread cannot skew it).
 */
static double threads_once(const struct idalg *alg, void *ctx, uint64_t *live, size_t n,
			   int nthr, uint64_t rounds, uint64_t *rng)
{
	pthread_t tid[MAXTHR];
	struct thr_arg arg[MAXTHR];
	pthread_barrier_t bar;
	uint64_t t0 = UINT64_MAX, t1 = 0, total = 0;

	pthread_barrier_init(&bar, NULL, (unsigned int)nthr);
	for (int t = 0; t < nthr; t++) {
		size_t lo = n * (size_t)t / (size_t)nthr, hi = n * (size_t)(t + 1) / (size_t)nthr;

		arg[t] = (struct thr_arg){alg, ctx, live + lo, hi - lo, rounds / (uint64_t)nthr,
					  xs_next(rng) | 1, &bar, 0, 0};
		if (pthread_create(&tid[t], NULL, thr_main, &arg[t]) != 0)
			die("pthread_create failed");
	}
	for (int t = 0; t < nthr; t++) {
		pthread_join(tid[t], NULL);
		t0 = arg[t].t_start < t0 ? arg[t].t_start : t0;
		t1 = arg[t].t_end > t1 ? arg[t].t_end : t1;
		total += arg[t].rounds;
	}
	pthread_barrier_destroy(&bar);
	return (double)total / ((double)(t1 - t0) / 1e9) / 1e6;
}

void run_threads(const char *variant, const struct idalg *alg, const struct idparams *prm,
		 int nthr, uint64_t rounds)
{
	size_t n = prm->live;
	uint64_t *live = xmalloc(2 * n * sizeof live[0]);
	void *ctx = alg->create(prm);
	uint64_t rng = opt.seed;
	struct figure *res;
	char name[64];

	snprintf(name, sizeof name, "%s, %d thread%s", variant, nthr, nthr > 1 ? "s" : "");
	progress("W7 %s: populate", name);
	alg->populate(ctx, live, n, &rng);
	threads_once(alg, ctx, live, n, nthr, warmup_rounds(rounds), &rng);
	res = new_result("W7", name, n, rounds, nthr, "Mpairs/s");
	for (int i = 0; i < opt.reps; i++) {
		progress("W7 %s: repetition %d/%d", name, i + 1, opt.reps);
		res->v[res->reps++] = threads_once(alg, ctx, live, n, nthr, rounds, &rng);
	}
	finish_result(res);
	alg->destroy(ctx);
	free(live);
}
