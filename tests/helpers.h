/*
 * helpers.h - what the cmocka suites share, written once (in the manner of
 * liburing's test/helpers.h).  A suite of the public API includes this and
 * nothing of lib/ but seams.h, which this includes; model.h (the reference
 * the suites and the fuzzer share: 128-bit arithmetic, TOP_LAST/TOP_END,
 * the fit oracle, the reference model) comes with it.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_TEST_HELPERS_H
#define VMEM_TEST_HELPERS_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "model.h"
#include "seams.h"
#include "vmem.h"

/* A cmocka test: TEST(test_x) { ... }, whose state argument goes unused. */
#define TEST(name) static void name(void **state __attribute__((unused)))

/* ---- arenas ---------------------------------------------------------------- */

/* Fail the current test when an invariant of vm is broken. */
#define CHECK_ARENA(vm) check_arena_at((vm), __FILE__, __LINE__)
void check_arena_at(vmem_t *vm, const char *file, int line);
/* CHECK_ARENA, then vmem_destroy. */
#define CHECK_AND_DESTROY(vm) check_and_destroy_at((vm), __FILE__, __LINE__)
void check_and_destroy_at(vmem_t *vm, const char *file, int line);

/* vmem_create that must work (the test fails with errno otherwise); the
 * new arena passes its invariants. */
vmem_t *arena_new(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t q,
		  vmem_size_t qmax, int flags);
/* A child arena with no span of its own, importing from source. */
vmem_t *arena_child(const char *name, vmem_t *source, vmem_size_t q, vmem_size_t qmax,
		    vmem_size_t import_quantum);

/* vmem_walk(mask) into l (replacing what it held), which must work. */
void walk_into(vmem_t *vm, int mask, struct seglist *l);

/* a[i] = vmem_alloc of unit * (1 + i % period) for i in [0, n), each of
 * which must work. */
void alloc_each(vmem_t *vm, vmem_addr_t *a, int n, vmem_size_t unit, int period, int flags);
/* vmem_free of a[first], a[first + step], ... below n, with the sizes
 * alloc_each gave them; each must work. */
void free_each(vmem_t *vm, const vmem_addr_t *a, int n, vmem_size_t unit, int period, int first,
	       int step);

/* The first segment vmem_walk(mask) shows; false when there is none. */
bool walk_first(vmem_t *vm, int mask, struct seg *out);

/* Import callbacks over a pool arena (the callback's argument): import
 * allocates from it with VM_NOSLEEP, release frees into it and aborts if
 * the pool refuses (a release of something never imported). */
int import_from_pool(void *pool, vmem_size_t size, int vmflags, vmem_addr_t *addrp);
void release_to_pool(void *pool, vmem_addr_t addr, vmem_size_t size);

/* After a reap nothing is allocated (or cached) and the invariants hold;
 * the statistics then. */
vmem_stats_t expect_empty(vmem_t *vm);

/* The same for a child arena: every span it imported went back. */
vmem_stats_t expect_child_empty(vmem_t *vm);

/* The whole vmem_get_stats, which must work. */
vmem_stats_t stats_of(vmem_t *vm);

/* ---- invariant I12: a failed call changes nothing but the fails counter ---- */

/* All an arena shows: its statistics and every segment of its walk. */
struct snapshot {
	vmem_stats_t st;
	struct seglist segs;
};

void snapshot_take(vmem_t *vm, struct snapshot *s);
void snapshot_free(struct snapshot *s);
/* Statistics equal but for extra_fails more failures; else why names the
 * first field that differs. */
bool stats_same(const vmem_stats_t *before, const vmem_stats_t *after, uint64_t extra_fails,
		char *why, size_t len);
/* The same for two snapshots, segments included. */
bool snapshot_same(const struct snapshot *before, const struct snapshot *after,
		   uint64_t extra_fails, char *why, size_t len);

/* vm still shows *before (fails aside: extra_fails more) and its
 * invariants hold; else false and why.  Frees *before. */
bool arena_unchanged(vmem_t *vm, struct snapshot *before, uint64_t extra_fails, char *why,
		     size_t len);
/* The same, failing the test. */
#define EXPECT_UNCHANGED(vm, before, extra_fails, what)                                           \
	expect_unchanged_at((vm), (before), (extra_fails), (what), __FILE__, __LINE__)
void expect_unchanged_at(vmem_t *vm, struct snapshot *before, uint64_t extra_fails,
			 const char *what, const char *file, int line);

/* call must return err and leave vm as it was; for ENOMEM, but for one
 * more failure counted. */
#define EXPECT_FAIL(vm, err, call)                                                                 \
	do {                                                                                       \
		struct snapshot before_;                                                           \
		snapshot_take((vm), &before_);                                                     \
		int rc_ = (call);                                                                  \
		if (rc_ != (err))                                                                  \
			fail_msg("%s:%d: %s returned %d, expected %d", __FILE__, __LINE__, #call,  \
				 rc_, (err));                                                      \
		expect_unchanged_at((vm), &before_, (err) == ENOMEM ? 1 : 0, #call, __FILE__,      \
				    __LINE__);                                                     \
	} while (0)

/* ---- randomness and size of a run ------------------------------------------ */

/* splitmix64: small, seedable, so that a failure replays. */
uint64_t rand_next(uint64_t *state);
/* Uniform enough in [0, n); 0 when n is 0. */
uint64_t rand_below(uint64_t *state, uint64_t n);
/* VMEM_TEST_SEED if set, else dflt; printed once, for replay. */
uint64_t test_seed(uint64_t dflt);
/* n times VMEM_TEST_SCALE (default 1). */
uint64_t test_scale(uint64_t n);
/* VMEM_TEST_SANITIZED is set: the sanitizer jobs, which run a tenth. */
bool test_sanitized(void);
/* on: keep the calling thread on the CPU it runs on now; off: on every CPU
 * it could use before.  The caches are per CPU, so a single-threaded run
 * makes the same mappings every time only when it stays on one CPU. */
void pin_to_one_cpu(bool on);

/* Built with ASan or TSan (whose runtimes keep records of every mapping a
 * process ever had, and may hang a thread started in the child of a
 * multi-threaded fork). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                        \
	__has_feature(memory_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifndef SANITIZER_BUILD
#define SANITIZER_BUILD 0
#endif

/* ---- output ------------------------------------------------------------------ */

/* fd (1 or 2) goes into a temporary file until redirect_end: debug arenas'
 * reports stay out of the log, and a test can count what was written. */
struct redirect {
	int fd, saved;
	FILE *f;
};

void redirect_begin(struct redirect *r, int fd);
/* Bytes written to it so far. */
long redirect_bytes(struct redirect *r);
/* What was written to it so far, NUL-terminated, cut to len - 1 bytes. */
void redirect_text(struct redirect *r, char *buf, size_t len);
/* Restore fd; the bytes written to it meanwhile. */
long redirect_end(struct redirect *r);

/* ---- threads ------------------------------------------------------------------ */

/* Worker threads never call cmocka: report() keeps the first problem, from
 * any thread, and the main thread fails the test with report_check(). */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool reported(void);
void report_reset(void);
void report_check(void);

/* One byte per unit of [0, units): a unit handed out twice, at the same
 * moment, is caught when it happens (set with an atomic exchange), and so
 * is a free of a unit not held. */
struct shadow {
	atomic_uchar *own;
	vmem_size_t units;
};

void shadow_init(struct shadow *sh, vmem_size_t units);
void shadow_fini(struct shadow *sh);
void shadow_clear(struct shadow *sh);
/* [a, a + n) is now held by who; report() if a unit was held already. */
void shadow_mark(struct shadow *sh, vmem_addr_t a, vmem_size_t n, const char *who);
/* [a, a + n) is given back; report() if a unit was not held. */
void shadow_unmark(struct shadow *sh, vmem_addr_t a, vmem_size_t n);
/* Fail the test if any unit is still held. */
void shadow_check_clean(struct shadow *sh);

/* Start fn in n threads; thread i gets (char *)args + i * stride. */
void threads_start(pthread_t *tids, int n, void *(*fn)(void *), void *args, size_t stride);
void threads_join(pthread_t *tids, int n);
/* Join t within seconds of now: 0, or ETIMEDOUT. */
int join_within(pthread_t t, unsigned int seconds);
/* While the n threads run, the main thread looks at the arenas, one each
 * round in turn: the invariant checker, statistics that add up, a walk in
 * address order (problems go to report()), and every reap_every-th round a
 * reap.  Returns when every thread has exited (all are joined). */
void watch_until_joined(pthread_t *tids, int n, vmem_t *const *watch, int nwatch,
			unsigned int reap_every, unsigned int pause_us);

/* ---- a random load ------------------------------------------------------------ */

#define LOAD_ARENAS 4
#define LOAD_LIVE 256

/*
 * A load thread, at random: frees what it holds, or allocates on one of
 * its arenas with vmem_alloc (every policy; mostly small, often cached
 * sizes) or vmem_xalloc with random constraints, whose result it checks.
 * Sizes, alignments, phases and nocross blocks are in quanta of the arena.
 * With a shadow, every unit it holds is marked (arenas of quantum 1 over
 * the shadow's range).  It runs iters operations, or until *stop when
 * stop is set, or until report() was called; then it frees what it holds.
 */
struct load {
	/* the mix */
	int live;                 /* the most it holds at once, up to LOAD_LIVE */
	int free_pct;             /* chance of a free, while it holds something */
	int xalloc_pct;           /* chance that an allocation is a vmem_xalloc */
	int big_pct;              /* chance that a vmem_alloc takes 1..big quanta, not 1..small */
	vmem_size_t small, big, xsize; /* vmem_xalloc takes 1..xsize quanta */
	unsigned int align_log;   /* two in three get an alignment of 2^(0..align_log-1) */
	bool nocross_fits;        /* a nocross block leaves room for the size at the phase */
	vmem_size_t window, span; /* with a shadow, a quarter get [lo, lo + window +
				   * rand % span], lo in its range */
	bool check_contains;      /* now and then, vmem_contains of a new allocation */
	/* the arenas */
	vmem_t *arena[LOAD_ARENAS];
	vmem_size_t quantum[LOAD_ARENAS]; /* 0: 1 */
	int narena;
	struct shadow *own;
	uint64_t seed, iters;
	atomic_int *stop;
	/* what it did, by arena */
	uint64_t ok[LOAD_ARENAS], nomem[LOAD_ARENAS], frees[LOAD_ARENAS];
	uint64_t ops;
};

void *load_main(void *arg);

/* n loads of the mix on the arenas, seeded seed, seed + step, ..., each
 * to run iters operations. */
void loads_init(struct load *w, int n, const struct load *mix, vmem_t *const *arenas, int narena,
		uint64_t seed, uint64_t step, uint64_t iters);

/* The counts of n loads on arena ar, added up. */
struct load_total {
	uint64_t ok, nomem, frees, ops;
};
struct load_total load_total(const struct load *w, int n, int ar);
/* The arena counted what n loads did on it (arena ar of theirs): their
 * allocations, frees and failures; the total. */
struct load_total expect_counted(vmem_t *vm, const struct load *w, int n, int ar);

/* ---- sleepers ------------------------------------------------------------------- */

/*
 * A sleeper makes VM_SLEEP requests of 1..max_size units and gives each
 * back before the next, after a nap or a yield: every sleeper always
 * finishes unless a wake-up is lost.  What it gets must lie in
 * [base, base + units), and is marked in own at its offset from base.
 * Errors go to report().
 */
struct sleeper {
	vmem_t *vm;
	vmem_addr_t base;
	vmem_size_t units;
	struct shadow *own;
	vmem_size_t max_size;
	int xalloc_pct;   /* chance of a vmem_xalloc */
	bool constrain;   /* which now and then has an alignment, nocross or maxaddr */
	int nap_pct;      /* chance of a nap of nap_us, else a yield */
	unsigned int nap_us;
	uint64_t seed, rounds;
	uint64_t done;
	atomic_uint_fast64_t *progress; /* counts every request met, when set */
};

void *sleeper_main(void *arg);

/* ---- fork ---------------------------------------------------------------------- */

/* The arenas the fork tests fork with: ids (quantum 1, caches), pages
 * (quantum 4096), a child of ids (quantum 1, caches, imports of 256), and
 * a VMC_DEBUG one (quantum 16, caches). */
#define FORK_ARENAS 4
struct fork_arenas {
	vmem_t *vm[FORK_ARENAS];
	vmem_size_t q[FORK_ARENAS];
};

void fork_arenas_create(struct fork_arenas *fa);
/* Start n load threads (w[0..n)) on every arena, until *stop. */
void fork_loads_start(struct fork_arenas *fa, struct load *w, pthread_t *tids, int n,
		      uint64_t seed, atomic_int *stop);
/* The parent after the forks: every arena intact, and once reaped empty,
 * with as many frees as allocations; then destroyed. */
void fork_arenas_finish(struct fork_arenas *fa);
/* Destroy them, the child before its source: a forked child's copies are
 * its own to destroy (valgrind counts tags left at exit as leaks). */
void fork_arenas_destroy(struct fork_arenas *fa);

/* Fork; the child runs child(arg) and exits with what it returns, without
 * cmocka.  True when it exited 0; else msg says what happened (a child
 * killed by SIGALRM ran into a lock held across the fork). */
bool fork_run(int (*child)(void *), void *arg, char *msg, size_t len);

#endif /* VMEM_TEST_HELPERS_H */
