/*
 * test_misuse.c - every misuse is caught: the regression tests of issue 14.
 *
 *  - a bad free of a cached size (double, wrong size, inside another
 *    allocation, never allocated, another arena's, outside every span)
 *    returns EINVAL and changes nothing, where it used to return 0 and then
 *    hand the same ID out twice; VMC_UNCHECKED skips exactly that check;
 *  - two threads freeing the same cached ID at once: exactly one succeeds;
 *  - several threads double-free on purpose, behind a barrier, while a
 *    shadow ownership map checks that no ID is ever held twice;
 *  - fork() while another thread sleeps in VM_SLEEP: the child goes on;
 *  - any power-of-two quantum up to 2^63 with any qcache_max works;
 *  - debug reports name the mistake, VMEM_DEBUG=abort aborts, and the
 *    leak report names the IDs, not the caches' slabs;
 *  - the contract's settled points: a failed cached allocation counts no
 *    hit and no miss, EINVAL comes before EBUSY, an import that overlaps
 *    the arena's own span is given back and the request fails.
 */
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- bad frees of cached sizes ---------------------------------------------- */

/* The reproducer, then every kind of bad free of a cached size. */
TEST(test_cached_bad_frees)
{
	vmem_t *v = arena_new("qc", 1, 1000, 1, 1, 0);
	vmem_addr_t a, b, c;
	assert_int_equal(vmem_alloc(v, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_free(v, a, 1), 0);
	EXPECT_FAIL(v, EINVAL, vmem_free(v, a, 1));
	assert_int_equal(vmem_alloc(v, 1, VM_NOSLEEP, &b), 0);
	assert_int_equal(vmem_alloc(v, 1, VM_NOSLEEP, &c), 0);
	assert_int_not_equal(b, c);
	assert_int_equal(vmem_free(v, b, 1), 0);
	assert_int_equal(vmem_free(v, c, 1), 0);
	CHECK_AND_DESTROY(v);

	vmem_t *vm = arena_new("cached", 0x1000, 0x100000, 16, 8 * 16, 0);
	vmem_t *other = arena_new("other", 0x1000, 0x100000, 16, 8 * 16, 0);
	vmem_addr_t x, y, o, never;
	assert_int_equal(vmem_alloc(vm, 64, VM_NOSLEEP, &x), 0);
	assert_int_equal(vmem_alloc(vm, 16, VM_NOSLEEP, &y), 0);
	assert_int_equal(vmem_alloc(other, 16, VM_NOSLEEP, &o), 0);
	/* an object of y's slab that nobody was handed */
	assert_int_equal(vmem_alloc(vm, 16, VM_NOSLEEP, &never), 0);
	assert_int_equal(vmem_free(vm, never, 16), 0);
	never = never == y + 16 ? y + 32 : y + 16;
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, x, 32));        /* wrong size */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, x, 128));       /* wrong size, other cache */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, x + 16, 16));   /* inside another allocation */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, x + 16, 48));   /* its tail */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, never, 16));    /* never allocated */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, 0x800000, 16)); /* outside every span */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, y + 8, 16));    /* not on a quantum, in y's */
	if (o != x && o != y)
		EXPECT_FAIL(vm, EINVAL, vmem_free(vm, o, 16)); /* another arena's ID */
	assert_int_equal(vmem_free(vm, x, 64), 0);
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, x, 64)); /* freed twice */
	assert_int_equal(vmem_free(vm, y, 16), 0);
	assert_int_equal(vmem_free(other, o, 16), 0);
	expect_empty(vm);
	CHECK_AND_DESTROY(vm);
	CHECK_AND_DESTROY(other);
}

/* VMC_UNCHECKED skips the check on cached sizes, and only there: a double
 * free returns 0, and the checker then sees the object twice (Q6), which
 * is the duplicate the flag risks; other sizes stay checked. */
TEST(test_unchecked_flag)
{
	vmem_t *vm = arena_new("unchecked", 0x1000, 0x100000, 1, 4, VMC_UNCHECKED);
	vmem_addr_t a, big;
	assert_int_equal(vmem_alloc(vm, 100, VM_NOSLEEP, &big), 0);
	assert_int_equal(vmem_free(vm, big, 100), 0);
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, big, 100));
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_free(vm, a, 1), 0);
	assert_int_equal(vmem_free(vm, a, 1), 0); /* unchecked: accepted */
	char why[256];
	assert_int_equal(vmem_check(vm, why, sizeof(why)), 100 + 6);
	vmem_destroy(vm);
}

/* ---- threads ------------------------------------------------------------------ */

#define RACE_ROUNDS 300
#define RACE_IDS 64

struct race {
	vmem_t *vm;
	pthread_barrier_t *bar;
	atomic_int *go;           /* both spin on it, so that they start together */
	vmem_addr_t *ids;         /* allocated by thread 0 each round */
	atomic_int *wins;         /* per ID: frees that returned 0 */
	int id;
};

/*
 * Each round, thread 0 allocates RACE_IDS cached IDs; then both threads
 * free all of them, in the same order, as fast as they can, so that their
 * frees of one ID overlap again and again.  Each ID must be freed exactly
 * once: one free returns 0 and the other EINVAL.  A check that is not an
 * atomic read-modify-write lets both succeed now and then.
 */
static void *race_main(void *arg)
{
	struct race *r = arg;
	/* every round, whatever was reported: both threads meet at its barriers */
	for (int round = 0; round < RACE_ROUNDS; round++) {
		if (r->id == 0) {
			for (int k = 0; k < RACE_IDS; k++) {
				atomic_store(&r->wins[k], 0);
				if (vmem_alloc(r->vm, 1 + k % 4, VM_NOSLEEP, &r->ids[k]) != 0)
					report("round %d: allocation failed", round);
			}
		}
		pthread_barrier_wait(r->bar);
		atomic_fetch_add(r->go, 1);
		while (atomic_load(r->go) < 2 * (round + 1))
			; /* both are here: go */
		for (int k = 0; k < RACE_IDS; k++) {
			int rc = vmem_free(r->vm, r->ids[k], 1 + k % 4);
			if (rc == 0)
				atomic_fetch_add(&r->wins[k], 1);
			else if (rc != EINVAL)
				report("round %d: vmem_free returned %d", round, rc);
		}
		pthread_barrier_wait(r->bar);
		if (r->id == 0)
			for (int k = 0; k < RACE_IDS; k++)
				if (atomic_load(&r->wins[k]) != 1)
					report("round %d: ID %#llx freed %d times", round,
					       (unsigned long long)r->ids[k], atomic_load(&r->wins[k]));
	}
	return NULL;
}

TEST(test_racing_double_free)
{
	vmem_t *vm = arena_new("race", 0x1000, 0x100000, 1, 4, 0);
	pthread_barrier_t bar;
	atomic_int go = 0;
	vmem_addr_t ids[RACE_IDS];
	atomic_int wins[RACE_IDS];
	struct race r[2] = {{vm, &bar, &go, ids, wins, 0}, {vm, &bar, &go, ids, wins, 1}};
	pthread_t t[2];
	report_reset();
	pthread_barrier_init(&bar, NULL, 2);
	threads_start(t, 2, race_main, r, sizeof(r[0]));
	threads_join(t, 2);
	pthread_barrier_destroy(&bar);
	report_check();
	expect_empty(vm);
	CHECK_AND_DESTROY(vm);
}

#define DF_THREADS 4
#define DF_HELD 16

struct doubler {
	vmem_t *vm;
	struct shadow *own;
	pthread_barrier_t *bar;
	uint64_t seed;
	int rounds;
	int accepted; /* second frees that returned 0: must stay 0 */
};

/*
 * Each round, every thread churns cached sizes for a while with the shadow
 * marking what it holds; then each frees what it holds and waits at a
 * barrier; behind it, while no thread allocates, each frees its last ID a
 * second time, which must fail; a second barrier lets them go on.
 */
static void *doubler_main(void *arg)
{
	struct doubler *d = arg;
	vmem_addr_t held[DF_HELD];
	vmem_size_t size[DF_HELD];
	int n = 0;
	for (int round = 0; round < d->rounds && !reported(); round++) {
		for (int op = 0; op < 200; op++) {
			if (n == DF_HELD || (n > 0 && rand_below(&d->seed, 2) == 0)) {
				int k = (int)rand_below(&d->seed, (uint64_t)n);
				shadow_unmark(d->own, held[k], size[k]);
				if (vmem_free(d->vm, held[k], size[k]) != 0)
					report("a legal free failed");
				held[k] = held[--n];
				size[k] = size[n];
			} else {
				vmem_size_t s = 1 + rand_below(&d->seed, 8);
				if (vmem_alloc(d->vm, s, VM_NOSLEEP, &held[n]) != 0) {
					report("allocation failed");
					break;
				}
				shadow_mark(d->own, held[n], s, "doubler");
				size[n++] = s;
			}
		}
		vmem_addr_t last = n > 0 ? held[n - 1] : 0;
		vmem_size_t lastsize = n > 0 ? size[n - 1] : 0;
		while (n > 0) {
			n--;
			shadow_unmark(d->own, held[n], size[n]);
			if (vmem_free(d->vm, held[n], size[n]) != 0)
				report("a legal free failed");
		}
		pthread_barrier_wait(d->bar);
		if (lastsize != 0 && vmem_free(d->vm, last, lastsize) != EINVAL)
			d->accepted++;
		pthread_barrier_wait(d->bar);
	}
	return NULL;
}

TEST(test_threads_double_free)
{
	vmem_t *vm = arena_new("doubles", 0, 1 << 20, 1, 8, 0);
	struct shadow own;
	pthread_barrier_t bar;
	struct doubler d[DF_THREADS];
	pthread_t t[DF_THREADS];
	int rounds = test_sanitized() ? 30 : (int)test_scale(300);
	shadow_init(&own, 1 << 20);
	pthread_barrier_init(&bar, NULL, DF_THREADS);
	report_reset();
	for (int i = 0; i < DF_THREADS; i++)
		d[i] = (struct doubler){vm, &own, &bar, test_seed(0xdf) + (uint64_t)i, rounds, 0};
	threads_start(t, DF_THREADS, doubler_main, d, sizeof(d[0]));
	threads_join(t, DF_THREADS);
	report_check();
	for (int i = 0; i < DF_THREADS; i++)
		assert_int_equal(d[i].accepted, 0);
	shadow_check_clean(&own);
	shadow_fini(&own);
	pthread_barrier_destroy(&bar);
	expect_empty(vm);
	CHECK_AND_DESTROY(vm);
}

/* ---- fork with a sleeper -------------------------------------------------------- */

static void *sleeping_alloc(void *arg)
{
	vmem_addr_t a;
	return (void *)(intptr_t)vmem_alloc(arg, 128, VM_SLEEP, &a);
}

/* Wait up to seconds for pid; its status, or -1 (then it was killed). */
static int wait_child(pid_t pid, int seconds)
{
	int st;
	for (int i = 0; i < seconds * 20; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		usleep(50 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* A thread sleeps in VM_SLEEP when the main thread forks: the child must
 * return from fork and use that arena (it used to hang in the atfork
 * handler, destroying a condition variable that still had a waiter). */
TEST(test_fork_with_sleeper)
{
	vmem_t *vm = arena_new("sleepy", 0, 64, 1, 0, 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, sleeping_alloc, vm), 0);
	while (vmem_seam_nwaiters(vm) == 0)
		usleep(1000);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		vmem_addr_t a;
		int bad = vmem_alloc(vm, 8, VM_NOSLEEP, &a) != 0 || vmem_free(vm, a, 8) != 0;
		/* the child's own sleep, woken by its own add */
		bad |= vmem_add(vm, 0x1000, 256, VM_NOSLEEP) != 0 ||
		       vmem_alloc(vm, 128, VM_SLEEP, &a) != 0 || vmem_check(vm, NULL, 0) != 0;
		_exit(bad);
	}
	int st = wait_child(pid, 20);
	assert_true(st != -1); /* the child did not hang */
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(vmem_add(vm, 0x1000, 256, VM_NOSLEEP), 0); /* wakes the sleeper */
	assert_int_equal(join_within(t, 20), 0);
	vmem_destroy(vm);
}

/* ---- huge quanta ---------------------------------------------------------------- */

/* Any power-of-two quantum up to 2^63 with any qcache_max creates an arena
 * at once (a slab size past 2^63 used to spin) and works; under UBSan no
 * clz(0) (a slab size that wrapped to 0). */
TEST(test_huge_quanta)
{
	static const vmem_size_t mult[] = {1, 2, 3, 5, 9, 16, 17};
	for (unsigned int lg = 48; lg < 64; lg++) {
		vmem_size_t q = (vmem_size_t)1 << lg;
		for (size_t m = 0; m < sizeof(mult) / sizeof(mult[0]) + 1; m++) {
			vmem_size_t qmax = m < sizeof(mult) / sizeof(mult[0])
						   ? (mult[m] <= VMEM_ADDR_MAX / q ? mult[m] * q : VMEM_ADDR_MAX)
						   : VMEM_ADDR_MAX;
			vmem_t *vm = arena_new("huge", 0, 0, q, qmax, 0);
			/* one span of up to 4 quanta, starting at q, ending by 2^64 */
			vmem_size_t n = lg == 63 ? 1 : lg == 62 ? 3 : 4;
			assert_int_equal(vmem_add(vm, q, n * q, VM_NOSLEEP), 0);
			vmem_addr_t a, b;
			assert_int_equal(vmem_alloc(vm, q, VM_NOSLEEP, &a), 0);
			if (n > 1) {
				assert_int_equal(vmem_alloc(vm, 2 * q, VM_NOSLEEP, &b), 0);
				assert_int_equal(vmem_free(vm, b, 2 * q), 0);
			}
			assert_int_equal(vmem_free(vm, a, q), 0);
			EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, q));
			expect_empty(vm);
			CHECK_AND_DESTROY(vm);
		}
	}
}

/* ---- debug reports ------------------------------------------------------------------ */

/* What went to stderr since redirect_begin, which ends. */
static char *slurp(struct redirect *r)
{
	static char buf[8192];
	redirect_text(r, buf, sizeof(buf));
	redirect_end(r);
	return buf;
}

static void expect_text(const char *out, const char *want)
{
	if (strstr(out, want) == NULL)
		fail_msg("the report lacks \"%s\":\n%s", want, out);
}

/* Each misuse, reported with the mistake it is; the leak report names the
 * outstanding IDs, and only those. */
TEST(test_debug_names_the_mistake)
{
	struct redirect r;
	redirect_begin(&r, 2);
	vmem_t *vm = vmem_create("dbg", 0x1000, 0x10000, 1, 16, VMC_DEBUG);
	vmem_addr_t a, b, x;
	assert_non_null(vm);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_free(vm, a, 1), 0);
	assert_int_equal(vmem_alloc(vm, 4, VM_NOSLEEP, &b), 0);
	assert_int_equal(vmem_xalloc(vm, 100, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &x), 0);
	assert_int_equal(vmem_free(vm, a, 1), EINVAL);
	assert_int_equal(vmem_free(vm, b, 2), EINVAL);
	assert_int_equal(vmem_free(vm, b + 1, 1), EINVAL);
	assert_int_equal(vmem_free(vm, 0x9000, 3), EINVAL);
	assert_int_equal(vmem_free(vm, 0x90000, 3), EINVAL);
	assert_int_equal(vmem_free(vm, x, 50), EINVAL);
	assert_int_equal(vmem_free(vm, x + 2, 100), EINVAL);
	assert_int_equal(vmem_xfree(vm, x, 100), 0);
	assert_int_equal(vmem_xfree(vm, x, 100), EINVAL);
	vmem_destroy(vm); /* b is still out */
	const char *out = slurp(&r);
	expect_text(out, "vmem_free(0x1000, 1): double free");
	expect_text(out, "wrong size: allocated with size 4");
	expect_text(out, "inside another allocation");
	expect_text(out, "vmem_free(0x9000, 3): never allocated");
	expect_text(out, "outside every span");
	expect_text(out, "wrong size: allocated with size 100");
	expect_text(out, "vmem_xfree");
	char leak[96];
	snprintf(leak, sizeof(leak), "leaked [%#llx, %#llx] (4 units)", (unsigned long long)b,
		 (unsigned long long)(b + 3));
	expect_text(out, leak);
	expect_text(out, "1 allocations, 4 units outstanding at destroy");

	/* one allocation and its free, then destroy: nothing is reported (the
	 * caches' slab used to show as a leak) */
	redirect_begin(&r, 2);
	vm = vmem_create("quiet", 0x1000, 0x10000, 1, 16, VMC_DEBUG);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_free(vm, a, 1), 0);
	vmem_destroy(vm);
	out = slurp(&r);
	if (out[0] != '\0')
		fail_msg("a clean arena reported:\n%s", out);
}

/* VMEM_DEBUG=abort: the first misuse reports and aborts (in a child); with
 * VMEM_DEBUG=1 the same misuse only reports. */
TEST(test_debug_abort)
{
	for (int abort_mode = 0; abort_mode < 2; abort_mode++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);
			dup2(fd, 2);
			setenv("VMEM_DEBUG", abort_mode ? "abort" : "1", 1);
			vmem_t *vm = vmem_create("abort", 0, 100, 1, 4, 0);
			vmem_addr_t a;
			if (vm == NULL || vmem_alloc(vm, 1, VM_NOSLEEP, &a) != 0 || vmem_free(vm, a, 1) != 0)
				_exit(3);
			int rc = vmem_free(vm, a, 1);
			_exit(rc == EINVAL ? 0 : 4);
		}
		int st = wait_child(pid, 20);
		if (abort_mode)
			assert_true(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
		else
			assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

/* ---- the contract's settled points ------------------------------------------------------ */

/* A cached vmem_alloc that fails counts a failure, and neither a hit nor
 * a miss. */
TEST(test_failed_cached_alloc_counts)
{
	vmem_t *vm = arena_new("tiny", 0, 8, 1, 4, 0);
	vmem_addr_t a[8], x;
	int n = 0;
	while (n < 8 && vmem_alloc(vm, 1, VM_NOSLEEP, &a[n]) == 0)
		n++;
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, 1, VM_NOSLEEP, &x));
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, 3, VM_NOSLEEP, &x));
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.qcache_hits + st.qcache_misses, (uint64_t)n);
	assert_int_equal(st.fails, 2);
	for (int i = 0; i < n; i++)
		assert_int_equal(vmem_free(vm, a[i], 1), 0);
	CHECK_AND_DESTROY(vm);
}

/* Argument errors (EINVAL) come before state errors (EBUSY). */
TEST(test_einval_before_ebusy)
{
	vmem_t *vm = arena_new("busy", 0, 1024, 4, 0, 0);
	vmem_t *src = arena_new("src", 0x10000, 1024, 4, 0, 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 4, VM_NOSLEEP, &a), 0);
	EXPECT_FAIL(vm, EBUSY, vmem_set_source(vm, src, 0));
	EXPECT_FAIL(vm, EINVAL, vmem_set_source(vm, src, 6));       /* not a multiple */
	EXPECT_FAIL(vm, EINVAL, vmem_set_source(vm, vm, 0));        /* a loop */
	EXPECT_FAIL(vm, EINVAL, vmem_set_source(vm, NULL, 0));
	EXPECT_FAIL(vm, EINVAL, vmem_set_import(vm, NULL, NULL, NULL, 0));
	EXPECT_FAIL(vm, EINVAL, vmem_set_import(vm, import_from_pool, release_to_pool, src, 2));
	EXPECT_FAIL(vm, EBUSY, vmem_set_import(vm, import_from_pool, release_to_pool, src, 4));
	assert_int_equal(vmem_free(vm, a, 4), 0);
	CHECK_AND_DESTROY(vm);
	CHECK_AND_DESTROY(src);
}

/* An arena's own span overlaps what its source hands out: the import that
 * would overlap goes back to the source, and the request fails with ENOMEM. */
TEST(test_import_overlapping_own_span)
{
	vmem_t *src = arena_new("src", 0x1000, 0x1000, 1, 0, 0);
	vmem_t *vm = arena_new("child", 0x1000, 0x100, 1, 0, 0);
	vmem_addr_t a;
	assert_int_equal(vmem_set_source(vm, src, 0), 0);
	vmem_stats_t before = stats_of(src);
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, 0x200, VM_NOSLEEP | VM_FIRSTFIT, &a));
	vmem_stats_t after = stats_of(src);
	assert_int_equal(after.alloc_total, before.alloc_total); /* given back */
	assert_int_equal(vmem_alloc(vm, 0x80, VM_NOSLEEP, &a), 0); /* its own span still works */
	assert_int_equal(vmem_free(vm, a, 0x80), 0);
	CHECK_AND_DESTROY(vm);
	CHECK_AND_DESTROY(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cached_bad_frees),
		cmocka_unit_test(test_unchecked_flag),
		cmocka_unit_test(test_racing_double_free),
		cmocka_unit_test(test_threads_double_free),
		cmocka_unit_test(test_fork_with_sleeper),
		cmocka_unit_test(test_huge_quanta),
		cmocka_unit_test(test_debug_names_the_mistake),
		cmocka_unit_test(test_debug_abort),
		cmocka_unit_test(test_failed_cached_alloc_counts),
		cmocka_unit_test(test_einval_before_ebusy),
		cmocka_unit_test(test_import_overlapping_own_span),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
