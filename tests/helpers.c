/*
 * helpers.c - the helpers the cmocka suites share; see helpers.h.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "helpers.h"

#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- arenas ---------------------------------------------------------------- */

void check_arena_at(vmem_t *vm, const char *file, int line)
{
	char msg[600];
	if (!arena_check(vm, msg, sizeof(msg)))
		fail_msg("%s:%d: %s", file, line, msg);
}

void check_and_destroy_at(vmem_t *vm, const char *file, int line)
{
	check_arena_at(vm, file, line);
	vmem_destroy(vm);
}

vmem_t *arena_new(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t q,
		  vmem_size_t qmax, int flags)
{
	vmem_t *vm = vmem_create(name, base, size, q, qmax, flags);
	if (vm == NULL)
		fail_msg("vmem_create(%s) failed: errno %d", name ? name : "(null)", errno);
	CHECK_ARENA(vm);
	return vm;
}

vmem_t *arena_child(const char *name, vmem_t *source, vmem_size_t q, vmem_size_t qmax,
		    vmem_size_t import_quantum)
{
	vmem_t *vm = arena_new(name, 0, 0, q, qmax, 0);
	assert_int_equal(vmem_set_source(vm, source, import_quantum), 0);
	return vm;
}

void walk_into(vmem_t *vm, int mask, struct seglist *l)
{
	assert_int_equal(seglist_walk(vm, mask, l), 0);
}

void alloc_each(vmem_t *vm, vmem_addr_t *a, int n, vmem_size_t unit, int period, int flags)
{
	for (int i = 0; i < n; i++) {
		vmem_size_t size = unit * (1 + (vmem_size_t)(i % period));
		int rc = vmem_alloc(vm, size, flags, &a[i]);
		if (rc != 0)
			fail_msg("%s: allocation %d of %d, %#" PRIx64 " units: %d", vmem_name(vm), i,
				 n, size, rc);
	}
}

void free_each(vmem_t *vm, const vmem_addr_t *a, int n, vmem_size_t unit, int period, int first,
	       int step)
{
	for (int i = first; i < n; i += step) {
		vmem_size_t size = unit * (1 + (vmem_size_t)(i % period));
		int rc = vmem_free(vm, a[i], size);
		if (rc != 0)
			fail_msg("%s: free of [%#" PRIx64 ", +%#" PRIx64 "): %d", vmem_name(vm), a[i],
				 size, rc);
	}
}

bool walk_first(vmem_t *vm, int mask, struct seg *out)
{
	struct seglist l = {0};
	walk_into(vm, mask, &l);
	bool found = l.n > 0;
	if (found)
		*out = l.v[0];
	seglist_free(&l);
	return found;
}

int import_from_pool(void *pool, vmem_size_t size, int vmflags, vmem_addr_t *addrp)
{
	(void)vmflags;
	return vmem_alloc(pool, size, VM_NOSLEEP, addrp);
}

void release_to_pool(void *pool, vmem_addr_t addr, vmem_size_t size)
{
	if (vmem_free(pool, addr, size) != 0)
		abort();
}

vmem_stats_t stats_of(vmem_t *vm)
{
	vmem_stats_t st;
	assert_int_equal(stats_read(vm, &st), 0);
	return st;
}

vmem_stats_t expect_empty(vmem_t *vm)
{
	vmem_reap(vm);
	CHECK_ARENA(vm);
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.alloc_total, 0);
	assert_int_equal(st.nalloc, 0);
	assert_int_equal(st.cached_total, 0);
	return st;
}

vmem_stats_t expect_child_empty(vmem_t *vm)
{
	vmem_stats_t st = expect_empty(vm);
	assert_int_equal(st.import_total, 0);
	assert_int_equal(st.span_total, 0);
	assert_int_equal(st.imports, st.releases);
	return st;
}

/* ---- snapshots ---------------------------------------------------------------- */

#define STATS_FIELDS(X)                                                                            \
	X(size)                                                                                    \
	X(reserved)                                                                                \
	X(span_total)                                                                              \
	X(alloc_total)                                                                             \
	X(free_total)                                                                              \
	X(cached_total)                                                                            \
	X(import_total)                                                                            \
	X(nspans)                                                                                  \
	X(nalloc)                                                                                  \
	X(nfree)                                                                                   \
	X(allocs)                                                                                  \
	X(frees)                                                                                   \
	X(fails)                                                                                   \
	X(imports)                                                                                 \
	X(releases)                                                                                \
	X(waits)                                                                                   \
	X(tag_bytes)                                                                               \
	X(qcache_hits)                                                                             \
	X(qcache_misses)                                                                           \
	X(hash_bytes)                                                                              \
	X(arena_bytes)

/* Every field is compared: a new one must join the list. */
_Static_assert(sizeof(vmem_stats_t) == 8 + 19 * 8, "vmem_stats_t grew: extend STATS_FIELDS");

bool stats_same(const vmem_stats_t *before, const vmem_stats_t *after, uint64_t extra_fails,
		char *why, size_t len)
{
	vmem_stats_t want = *before;
	want.fails += extra_fails;
#define COMPARE(f)                                                                                 \
	if (want.f != after->f) {                                                                  \
		snprintf(why, len, "stats." #f " %" PRIu64 " -> %" PRIu64, (uint64_t)want.f,       \
			 (uint64_t)after->f);                                                      \
		return false;                                                                      \
	}
	STATS_FIELDS(COMPARE)
#undef COMPARE
	return true;
}

void snapshot_take(vmem_t *vm, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(stats_read(vm, &s->st), 0);
	walk_into(vm, VMEM_ALLOC | VMEM_FREE | VMEM_SPAN, &s->segs);
}

void snapshot_free(struct snapshot *s)
{
	seglist_free(&s->segs);
}

bool snapshot_same(const struct snapshot *before, const struct snapshot *after,
		   uint64_t extra_fails, char *why, size_t len)
{
	if (!stats_same(&before->st, &after->st, extra_fails, why, len))
		return false;
	const struct seglist *a = &before->segs, *b = &after->segs;
	if (a->n != b->n) {
		snprintf(why, len, "the walk had %zu segments, now %zu", a->n, b->n);
		return false;
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct seg *x = &a->v[i], *y = &b->v[i];
		if (x->addr != y->addr || x->size != y->size || x->type != y->type) {
			snprintf(why, len,
				 "segment %zu was [%#" PRIx64 ", +%#" PRIx64 ") type %d, now [%#" PRIx64
				 ", +%#" PRIx64 ") type %d",
				 i, x->addr, x->size, x->type, y->addr, y->size, y->type);
			return false;
		}
	}
	return true;
}

bool arena_unchanged(vmem_t *vm, struct snapshot *before, uint64_t extra_fails, char *why,
		     size_t len)
{
	struct snapshot now;
	snapshot_take(vm, &now);
	bool same = snapshot_same(before, &now, extra_fails, why, len);
	snapshot_free(&now);
	snapshot_free(before);
	if (!same)
		return false;
	return arena_check(vm, why, len);
}

void expect_unchanged_at(vmem_t *vm, struct snapshot *before, uint64_t extra_fails,
			 const char *what, const char *file, int line)
{
	char why[600];
	if (!arena_unchanged(vm, before, extra_fails, why, sizeof(why)))
		fail_msg("%s:%d: after %s: %s", file, line, what, why);
}

/* ---- randomness and size of a run ------------------------------------------ */

uint64_t rand_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t rand_below(uint64_t *state, uint64_t n)
{
	return n ? rand_next(state) % n : 0;
}

uint64_t test_seed(uint64_t dflt)
{
	const char *e = getenv("VMEM_TEST_SEED");
	uint64_t seed = e ? strtoull(e, NULL, 0) : dflt;
	fprintf(stderr, "# seed %" PRIu64 " (set VMEM_TEST_SEED to replay)\n", seed);
	return seed;
}

uint64_t test_scale(uint64_t n)
{
	const char *e = getenv("VMEM_TEST_SCALE");
	uint64_t k = e ? strtoull(e, NULL, 0) : 1;
	return n * (k ? k : 1);
}

void pin_to_one_cpu(bool on)
{
	static cpu_set_t before;
	static bool pinned;
	if (on && !pinned) {
		int cpu = sched_getcpu();
		if (cpu < 0 || sched_getaffinity(0, sizeof(before), &before) != 0)
			return;
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		pinned = sched_setaffinity(0, sizeof(one), &one) == 0;
	} else if (!on && pinned) {
		sched_setaffinity(0, sizeof(before), &before);
		pinned = false;
	}
}

bool test_sanitized(void)
{
	const char *e = getenv("VMEM_TEST_SANITIZED");
	return e != NULL && *e != '\0' && strcmp(e, "0") != 0;
}

/* ---- output ------------------------------------------------------------------ */

void redirect_begin(struct redirect *r, int fd)
{
	fflush(stdout);
	fflush(stderr);
	r->fd = fd;
	r->f = tmpfile();
	assert_non_null(r->f);
	r->saved = dup(fd);
	assert_true(r->saved >= 0);
	dup2(fileno(r->f), fd);
}

long redirect_bytes(struct redirect *r)
{
	fflush(stdout);
	fflush(stderr);
	struct stat st;
	if (fstat(fileno(r->f), &st) != 0)
		return -1;
	return (long)st.st_size;
}

void redirect_text(struct redirect *r, char *buf, size_t len)
{
	fflush(stdout);
	fflush(stderr);
	ssize_t n = pread(fileno(r->f), buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
}

long redirect_end(struct redirect *r)
{
	long n = redirect_bytes(r);
	dup2(r->saved, r->fd);
	close(r->saved);
	fclose(r->f);
	return n;
}

/* ---- threads ------------------------------------------------------------------ */

static atomic_int g_reports;
static char g_first[512];
static pthread_mutex_t g_first_lock = PTHREAD_MUTEX_INITIALIZER;

void report(const char *fmt, ...)
{
	pthread_mutex_lock(&g_first_lock);
	if (atomic_fetch_add(&g_reports, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(g_first, sizeof(g_first), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&g_first_lock);
}

bool reported(void)
{
	return atomic_load_explicit(&g_reports, memory_order_relaxed) != 0;
}

void report_reset(void)
{
	pthread_mutex_lock(&g_first_lock);
	atomic_store(&g_reports, 0);
	g_first[0] = '\0';
	pthread_mutex_unlock(&g_first_lock);
}

void report_check(void)
{
	if (atomic_load(&g_reports) == 0)
		return;
	pthread_mutex_lock(&g_first_lock);
	char msg[sizeof(g_first)];
	memcpy(msg, g_first, sizeof(msg));
	pthread_mutex_unlock(&g_first_lock);
	fail_msg("%s", msg);
}

/* a, the result of vmem_xalloc(size, align, phase, nocross, lo, hi), must
 * meet the request (align 0: none); else report(). */
static void report_unless_meets(vmem_addr_t a, vmem_size_t size, vmem_size_t align,
				vmem_size_t phase, vmem_size_t nocross, vmem_addr_t lo, vmem_addr_t hi)
{
	struct fitq r = {size, align ? align : 1, phase, nocross, lo, hi};
	if (!fitq_holds(&r, a))
		report("xalloc(%" PRIu64 ", align %" PRIu64 ", phase %" PRIu64 ", nocross %" PRIu64
		       ", [%#" PRIx64 ", %#" PRIx64 "]) gave %#" PRIx64,
		       size, align, phase, nocross, lo, hi, a);
}

void shadow_init(struct shadow *sh, vmem_size_t units)
{
	sh->own = calloc(units, sizeof(*sh->own));
	assert_non_null(sh->own);
	sh->units = units;
}

void shadow_fini(struct shadow *sh)
{
	free(sh->own);
	sh->own = NULL;
	sh->units = 0;
}

void shadow_clear(struct shadow *sh)
{
	for (vmem_size_t u = 0; u < sh->units; u++)
		atomic_store_explicit(&sh->own[u], 0, memory_order_relaxed);
}

void shadow_mark(struct shadow *sh, vmem_addr_t a, vmem_size_t n, const char *who)
{
	if (a >= sh->units || n > sh->units - a) {
		report("%s: [%#" PRIx64 ", +%" PRIu64 ") lies outside the shadowed range", who, a, n);
		return;
	}
	for (vmem_size_t i = 0; i < n; i++)
		if (atomic_exchange_explicit(&sh->own[a + i], 1, memory_order_acq_rel) != 0) {
			report("%s: unit %#" PRIx64 " handed out twice (segment [%#" PRIx64
			       ", +%" PRIu64 "))",
			       who, a + i, a, n);
			return;
		}
}

void shadow_unmark(struct shadow *sh, vmem_addr_t a, vmem_size_t n)
{
	for (vmem_size_t i = 0; i < n; i++)
		if (atomic_exchange_explicit(&sh->own[a + i], 0, memory_order_acq_rel) != 1) {
			report("unit %#" PRIx64 " was not marked before its free", a + i);
			return;
		}
}

void shadow_check_clean(struct shadow *sh)
{
	for (vmem_size_t u = 0; u < sh->units; u++)
		if (atomic_load(&sh->own[u]) != 0)
			fail_msg("unit %#" PRIx64 " still marked at the end", (uint64_t)u);
}

void threads_start(pthread_t *tids, int n, void *(*fn)(void *), void *args, size_t stride)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * stride),
				 0);
}

void threads_join(pthread_t *tids, int n)
{
	for (int i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
}

int join_within(pthread_t t, unsigned int seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	return pthread_timedjoin_np(t, NULL, &ts);
}

/* One look at an arena while threads use it; problems go to report(). */
static void watch_once(vmem_t *vm)
{
	char msg[600];
	if (!arena_check(vm, msg, sizeof(msg)))
		report("concurrent vmem_check: %s", msg);
	vmem_stats_t st = stats_of(vm);
	if (st.span_total != st.alloc_total + st.free_total)
		report("torn statistics: span %" PRIu64 " != alloc %" PRIu64 " + free %" PRIu64,
		       st.span_total, st.alloc_total, st.free_total);
	struct seglist segs = {0};
	walk_into(vm, VMEM_ALLOC | VMEM_FREE, &segs);
	for (size_t i = 1; i < segs.n; i++)
		if (segs.v[i].addr < segs.v[i - 1].addr + segs.v[i - 1].size)
			report("vmem_walk out of order at %#" PRIx64, segs.v[i].addr);
	seglist_free(&segs);
	(void)vmem_size(vm, VMEM_ALLOC);
}

void watch_until_joined(pthread_t *tids, int n, vmem_t *const *watch, int nwatch,
			unsigned int reap_every, unsigned int pause_us)
{
	bool *joined = calloc((size_t)n, sizeof(*joined));
	assert_non_null(joined);
	for (unsigned int round = 0;; round++) {
		vmem_t *vm = watch[round % (unsigned int)nwatch];
		watch_once(vm);
		if (round % reap_every == 0)
			vmem_reap(vm);
		usleep(pause_us);
		int alive = 0;
		for (int i = 0; i < n; i++) {
			if (!joined[i] && pthread_tryjoin_np(tids[i], NULL) == 0)
				joined[i] = true;
			alive += !joined[i];
		}
		if (alive == 0)
			break;
	}
	free(joined);
}

/* ---- a random load ------------------------------------------------------------ */

struct held {
	vmem_addr_t addr;
	vmem_size_t size;
	bool x;
	int ar;
};

static void load_free(struct load *w, const struct held *h)
{
	if (w->own)
		shadow_unmark(w->own, h->addr, h->size);
	vmem_t *vm = w->arena[h->ar];
	int rc = h->x ? vmem_xfree(vm, h->addr, h->size) : vmem_free(vm, h->addr, h->size);
	if (rc != 0)
		report("%s: free of [%#" PRIx64 ", +%" PRIu64 ") (x=%d) returned %d", vmem_name(vm),
		       h->addr, h->size, h->x, rc);
	w->frees[h->ar]++;
}

/* One allocation on arena ar, drawn from r and the generator s. */
static int load_alloc(struct load *w, int ar, uint64_t r, uint64_t *s, struct held *h)
{
	vmem_t *vm = w->arena[ar];
	vmem_size_t q = w->quantum[ar] ? w->quantum[ar] : 1;
	int pol = policies[(r >> 20) % NPOLICIES];
	vmem_addr_t a = 0;
	int rc;
	*h = (struct held){0, 0, (int)((r >> 24) % 100) < w->xalloc_pct, ar};
	if (!h->x) {
		bool big = (int)((r >> 28) % 100) < w->big_pct;
		h->size = q * (1 + (r >> 36) % (big ? w->big : w->small));
		/* the default is VM_NOSLEEP: both ways */
		rc = vmem_alloc(vm, h->size, pol | ((r >> 48) & 1 ? VM_NOSLEEP : 0), &a);
	} else {
		uint64_t r2 = rand_next(s);
		vmem_size_t size = 1 + r2 % w->xsize;
		vmem_size_t align = (r2 >> 8) % 3 == 0 ? 0 : (vmem_size_t)1 << ((r2 >> 12) % w->align_log);
		vmem_size_t phase = align > 1 ? (r2 >> 16) % align : 0;
		vmem_size_t nocross = 0;
		if ((r2 >> 24) % 3 == 0) {
			nocross = 1;
			while (nocross < size || (w->nocross_fits && phase % nocross + size > nocross))
				nocross <<= 1;
			nocross <<= (r2 >> 28) % 3;
		}
		vmem_addr_t lo = 0, hi = VMEM_ADDR_MAX;
		if (w->own && w->span && (r2 >> 32) % 4 == 0) {
			lo = (r2 >> 36) % w->own->units;
			hi = lo + w->window + (r2 >> 44) % w->span;
		}
		h->size = q * size;
		rc = vmem_xalloc(vm, h->size, q * align, q * phase, q * nocross, lo, hi, pol, &a);
		if (rc == 0)
			report_unless_meets(a, h->size, q * align, q * phase, q * nocross, lo, hi);
	}
	h->addr = a;
	if (rc == 0 && w->own)
		shadow_mark(w->own, a, h->size, h->x ? "vmem_xalloc" : "vmem_alloc");
	if (rc == 0 && w->check_contains && (r >> 56) == 0 && vmem_contains(vm, a, h->size) != 1)
		report("vmem_contains says no for an allocation");
	return rc;
}

void *load_main(void *arg)
{
	struct load *w = arg;
	struct held live[LOAD_LIVE];
	int n = 0;
	uint64_t s = w->seed;
	for (uint64_t it = 0; (w->stop ? !atomic_load(w->stop) : it < w->iters) && !reported();
	     it++) {
		uint64_t r = rand_next(&s);
		w->ops++;
		if (n == w->live || (n > 0 && (int)(r % 100) < w->free_pct)) {
			int k = (int)((r >> 8) % (uint64_t)n);
			load_free(w, &live[k]);
			live[k] = live[--n];
			continue;
		}
		int ar = (int)((r >> 16) % (uint64_t)w->narena);
		int rc = load_alloc(w, ar, r, &s, &live[n]);
		if (rc == 0) {
			w->ok[ar]++;
			n++;
		} else if (rc == ENOMEM) {
			w->nomem[ar]++;
		} else {
			report("%s: an allocation returned %d", vmem_name(w->arena[ar]), rc);
		}
	}
	while (n > 0)
		load_free(w, &live[--n]);
	return NULL;
}

void loads_init(struct load *w, int n, const struct load *mix, vmem_t *const *arenas, int narena,
		uint64_t seed, uint64_t step, uint64_t iters)
{
	for (int i = 0; i < n; i++) {
		w[i] = *mix;
		memcpy(w[i].arena, arenas, (size_t)narena * sizeof(*arenas));
		w[i].narena = narena;
		w[i].seed = seed + (uint64_t)i * step;
		w[i].iters = iters;
	}
}

struct load_total load_total(const struct load *w, int n, int ar)
{
	struct load_total t = {0, 0, 0, 0};
	for (int i = 0; i < n; i++) {
		t.ok += w[i].ok[ar];
		t.nomem += w[i].nomem[ar];
		t.frees += w[i].frees[ar];
		t.ops += w[i].ops;
	}
	return t;
}

struct load_total expect_counted(vmem_t *vm, const struct load *w, int n, int ar)
{
	vmem_stats_t st = stats_of(vm);
	struct load_total t = load_total(w, n, ar);
	assert_int_equal(st.allocs, t.ok);
	assert_int_equal(st.frees, t.frees);
	assert_int_equal(st.fails, t.nomem);
	return t;
}

/* ---- sleepers ------------------------------------------------------------------- */

void *sleeper_main(void *arg)
{
	struct sleeper *z = arg;
	uint64_t s = z->seed;
	for (uint64_t i = 0; i < z->rounds && !reported(); i++) {
		uint64_t r = rand_next(&s);
		vmem_size_t n = 1 + r % z->max_size;
		int flags = VM_SLEEP | policies[(r >> 20) % NPOLICIES];
		bool x = (int)((r >> 8) % 100) < z->xalloc_pct;
		vmem_addr_t a;
		int rc;
		if (x && z->constrain) {
			/* always satisfiable in an empty arena */
			vmem_addr_t hi = (r >> 12) & 1 ? z->base + z->units / 2 + 8 : VMEM_ADDR_MAX;
			rc = vmem_xalloc(z->vm, n, (r >> 16) & 1 ? 2 : 0, 0, (r >> 17) & 1 ? 8 : 0,
					 z->base, hi, flags, &a);
		} else if (x) {
			rc = vmem_xalloc(z->vm, n, 0, 0, 0, 0, VMEM_ADDR_MAX, flags, &a);
		} else {
			rc = vmem_alloc(z->vm, n, flags, &a);
		}
		if (rc != 0) {
			report("%s: a VM_SLEEP request returned %d", vmem_name(z->vm), rc);
			break;
		}
		if (a < z->base || a + n > z->base + z->units) {
			report("%s: a sleeper got [%#" PRIx64 ", +%" PRIu64 ") outside the arena",
			       vmem_name(z->vm), a, n);
			break;
		}
		shadow_mark(z->own, a - z->base, n, "sleeper");
		if ((int)((r >> 24) % 100) < z->nap_pct)
			usleep(z->nap_us);
		else
			sched_yield();
		shadow_unmark(z->own, a - z->base, n);
		rc = x ? vmem_xfree(z->vm, a, n) : vmem_free(z->vm, a, n);
		if (rc != 0)
			report("%s: a sleeper's free returned %d", vmem_name(z->vm), rc);
		z->done++;
		if (z->progress)
			atomic_fetch_add(z->progress, 1);
	}
	return NULL;
}

/* ---- fork ---------------------------------------------------------------------- */

void fork_arenas_create(struct fork_arenas *fa)
{
	static const vmem_size_t q[FORK_ARENAS] = {1, 4096, 1, 16};
	memcpy(fa->q, q, sizeof(q));
	fa->vm[0] = arena_new("fork-ids", 0, 1 << 20, 1, 16, 0);
	fa->vm[1] = arena_new("fork-pages", 1ull << 32, 4096ull << 12, 4096, 0, 0);
	fa->vm[2] = arena_child("fork-child", fa->vm[0], 1, 8, 256);
	fa->vm[3] = arena_new("fork-debug", 0, 1 << 20, 16, 64, VMC_DEBUG);
}

/* What the threads do while the main thread forks. */
static const struct load fork_mix = {
	.live = 64, .free_pct = 50, .xalloc_pct = 25, .small = 24, .xsize = 24, .align_log = 2,
	.nocross_fits = true,
};

void fork_loads_start(struct fork_arenas *fa, struct load *w, pthread_t *tids, int n,
		      uint64_t seed, atomic_int *stop)
{
	loads_init(w, n, &fork_mix, fa->vm, FORK_ARENAS, seed, 77, 0);
	for (int i = 0; i < n; i++) {
		memcpy(w[i].quantum, fa->q, sizeof(fa->q));
		w[i].stop = stop;
	}
	threads_start(tids, n, load_main, w, sizeof(*w));
}

void fork_arenas_finish(struct fork_arenas *fa)
{
	for (int i = 0; i < FORK_ARENAS; i++) {
		vmem_reap(fa->vm[i]);
		CHECK_ARENA(fa->vm[i]);
	}
	vmem_reap(fa->vm[2]); /* its slabs, back to ids */
	for (int i = 0; i < FORK_ARENAS; i++) {
		vmem_stats_t st = stats_of(fa->vm[i]);
		assert_int_equal(st.alloc_total, 0);
		assert_int_equal(st.allocs, st.frees);
	}
	fork_arenas_destroy(fa);
}

void fork_arenas_destroy(struct fork_arenas *fa)
{
	for (int k = FORK_ARENAS; k-- > 0;)
		vmem_destroy(fa->vm[k]);
}

bool fork_run(int (*child)(void *), void *arg, char *msg, size_t len)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(msg, len, "fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0)
		_exit(child(arg));
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status)) {
		snprintf(msg, len, "child killed by signal %d%s", WTERMSIG(status),
			 WTERMSIG(status) == SIGALRM ? " (a lock held across the fork)" : "");
		return false;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(msg, len, "child exit status %d", WEXITSTATUS(status));
		return false;
	}
	return true;
}
