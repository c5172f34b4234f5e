/*
 * test_api.c - every public function and every error the contract names.
 *
 * The pattern throughout (EXPECT_FAIL, helpers.h): take a snapshot of an
 * arena (vmem_get_stats plus a vmem_walk of every segment), make a call
 * that must fail, take another snapshot and require the two to be
 * identical (for ENOMEM: identical but for the fails counter).
 * CHECK_ARENA runs the invariant checker after every step.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define PG 4096u

/* The start of some free segment: an address never handed out. */
static vmem_addr_t free_addr(vmem_t *vm)
{
	struct seg f;
	assert_true(walk_first(vm, VMEM_FREE, &f));
	return f.addr;
}

static uint64_t qc_count(vmem_t *vm)
{
	vmem_stats_t st = stats_of(vm);
	return st.qcache_hits + st.qcache_misses;
}

static void stats_consistent(vmem_t *vm)
{
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.span_total, st.alloc_total + st.free_total);
	assert_true(st.cached_total <= st.alloc_total);
	assert_true(st.import_total <= st.span_total);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), st.alloc_total);
	assert_int_equal(vmem_size(vm, VMEM_FREE), st.free_total);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), st.span_total);
}

/* ---- version, create, names --------------------------------------------- */

TEST(test_version)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%d.%d.%d", VMEM_VERSION_MAJOR, VMEM_VERSION_MINOR,
		 VMEM_VERSION_PATCH);
	assert_non_null(vmem_version());
	assert_string_equal(vmem_version(), "1.0.0");
	assert_string_equal(vmem_version(), buf);
	assert_int_equal(VMEM_NAMELEN, 32);
	assert_true(VMEM_QCACHE_MAX >= 16);
}

static void expect_create_einval(const char *what, vmem_addr_t base, vmem_size_t size,
				 vmem_size_t q, vmem_size_t qmax, int flags)
{
	errno = 0;
	vmem_t *vm = vmem_create(what, base, size, q, qmax, flags);
	if (vm != NULL) {
		vmem_destroy(vm);
		fail_msg("vmem_create (%s) succeeded", what);
	}
	if (errno != EINVAL)
		fail_msg("vmem_create (%s): errno %d, expected EINVAL", what, errno);
}

TEST(test_create_errors)
{
	expect_create_einval("quantum 0", 0, 4096, 0, 0, 0);
	expect_create_einval("quantum 3", 0, 4096, 3, 0, 0);
	expect_create_einval("quantum 6", 0, 4096, 6, 0, 0);
	expect_create_einval("quantum 4097", 0, 4096 * 4097ull, 4097, 0, 0);
	expect_create_einval("quantum 2^63+1", 0, 0, (1ull << 63) + 1, 0, 0);
	expect_create_einval("quantum max", 0, 0, VMEM_ADDR_MAX, 0, 0);
	expect_create_einval("base misaligned", 1, PG, PG, 0, 0);
	expect_create_einval("base misaligned 2", 0x800, PG, PG, 0, 0);
	expect_create_einval("size misaligned", 0, PG + 1, PG, 0, 0);
	expect_create_einval("size misaligned 2", 0, 16 * 3 + 8, 16, 0, 0);
	expect_create_einval("wrap", VMEM_ADDR_MAX - PG + 1, 2 * PG, PG, 0, 0);
	expect_create_einval("wrap q1", VMEM_ADDR_MAX, 2, 1, 0, 0);
	expect_create_einval("wrap all", 2, VMEM_ADDR_MAX, 1, 0, 0);
	expect_create_einval("flag 0x4", 0, PG, PG, 0, 0x4);
	expect_create_einval("flag policy", 0, PG, PG, 0, VM_BESTFIT);
	expect_create_einval("flag high", 0, PG, PG, 0, 0x40000000);
	expect_create_einval("flag sign", 0, PG, PG, 0, INT_MIN);
	expect_create_einval("both sleep", 0, PG, PG, 0, VM_SLEEP | VM_NOSLEEP);
	expect_create_einval("both sleep debug", 0, PG, PG, 0, VM_SLEEP | VM_NOSLEEP | VMC_DEBUG);

	/* the accepted corners */
	vmem_t *vm;
	vm = arena_new("end at 2^64", VMEM_ADDR_MAX - PG + 1, PG, PG, 0, 0);
	assert_int_equal(vmem_size(vm, VMEM_FREE), PG);
	assert_int_equal(vmem_contains(vm, VMEM_ADDR_MAX - PG + 1, PG), 1);
	vmem_destroy(vm);
	vm = arena_new("last unit", VMEM_ADDR_MAX, 1, 1, 0, 0);
	vmem_addr_t a = 0;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_true(a == VMEM_ADDR_MAX);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_free(vm, a, 1), 0);
	CHECK_AND_DESTROY(vm);
	vm = arena_new("up to 2^64 from 1", 1, VMEM_ADDR_MAX, 1, 0, 0);
	assert_int_equal(vmem_contains(vm, VMEM_ADDR_MAX, 1), 1);
	assert_int_equal(vmem_contains(vm, 0, 1), 0);
	vmem_destroy(vm);
	vm = arena_new("everything but the last", 0, VMEM_ADDR_MAX, 1, 0, 0);
	assert_true(vmem_size(vm, VMEM_FREE) == VMEM_ADDR_MAX);
	vmem_destroy(vm);
	vm = arena_new("empty", 0, 0, 1, 0, 0);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), ENOMEM);
	vmem_destroy(vm);
	vm = arena_new("empty, odd base", 12345, 0, 1, 0, 0);
	vmem_destroy(vm);
	vm = arena_new("huge quantum", 1ull << 63, 1ull << 63, 1ull << 63, 0, 0);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_true(a == 1ull << 63);
	CHECK_AND_DESTROY(vm);
	vm = arena_new("sleep flag", 0, PG, PG, 0, VM_SLEEP);
	vmem_destroy(vm);
	vm = arena_new("nosleep flag", 0, PG, PG, 0, VM_NOSLEEP);
	vmem_destroy(vm);
	vm = arena_new("debug flag", 0, PG, PG, 0, VMC_DEBUG | VM_NOSLEEP);
	vmem_destroy(vm);
}

TEST(test_names)
{
	vmem_t *vm = arena_new(NULL, 0, PG, PG, 0, 0);
	assert_non_null(vmem_name(vm));
	assert_string_equal(vmem_name(vm), "");
	vmem_destroy(vm);

	char buf[200];
	memset(buf, 'n', sizeof(buf));
	buf[sizeof(buf) - 1] = '\0';
	vm = arena_new(buf, 0, PG, PG, 0, 0);
	assert_int_equal(strlen(vmem_name(vm)), VMEM_NAMELEN - 1);
	assert_memory_equal(vmem_name(vm), buf, VMEM_NAMELEN - 1);
	vmem_destroy(vm);

	for (size_t len = VMEM_NAMELEN - 2; len <= VMEM_NAMELEN + 1; len++) {
		memset(buf, 0, sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)('a' + i % 26);
		vm = arena_new(buf, 0, PG, PG, 0, 0);
		size_t want = len < VMEM_NAMELEN - 1 ? len : VMEM_NAMELEN - 1;
		assert_int_equal(strlen(vmem_name(vm)), want);
		assert_memory_equal(vmem_name(vm), buf, want);
		/* the name is a copy */
		memset(buf, 'X', len);
		assert_int_equal(strlen(vmem_name(vm)), want);
		assert_int_equal(vmem_name(vm)[0], 'a');
		vmem_destroy(vm);
	}

	vm = arena_new("short", 0, PG, PG, 0, 0);
	assert_string_equal(vmem_name(vm), "short");
	vmem_destroy(vm);
}

TEST(test_destroy_null)
{
	vmem_destroy(NULL);
	/* destroy returns every page the arena mapped */
	vmem_t *vm = arena_new("warm", 0, 1 << 20, 16, 64, 0);
	vmem_destroy(vm);
	size_t before = os_mapped_bytes();
	vm = arena_new("pages", 0, 1 << 20, 16, 64, 0);
	vmem_addr_t a[300];
	alloc_each(vm, a, 300, 16, 20, VM_NOSLEEP);
	free_each(vm, a, 300, 16, 20, 0, 2);
	CHECK_AND_DESTROY(vm);
	assert_int_equal(os_mapped_bytes(), before);
}

TEST(test_qcache_max)
{
	vmem_addr_t a;
	struct {
		vmem_size_t qmax, cached, uncached;
	} cases[] = {
		{ 1, 16, 32 },
		{ 16, 16, 32 },
		{ 17, 32, 48 },
		{ 100, 112, 128 },
		{ 1ull << 40, 16 * VMEM_QCACHE_MAX, 16 * VMEM_QCACHE_MAX + 16 },
		{ VMEM_ADDR_MAX, 16 * VMEM_QCACHE_MAX, 16 * VMEM_QCACHE_MAX + 16 },
		{ VMEM_ADDR_MAX - 3, 16 * VMEM_QCACHE_MAX, 16 * VMEM_QCACHE_MAX + 16 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vmem_t *vm = arena_new("qc", 0x10000, 1 << 20, 16, cases[i].qmax, 0);
		uint64_t n0 = qc_count(vm);
		assert_int_equal(vmem_alloc(vm, cases[i].cached, VM_NOSLEEP, &a), 0);
		if (qc_count(vm) != n0 + 1)
			fail_msg("qcache_max %#llx: alloc of %llu not counted by the caches",
				 (unsigned long long)cases[i].qmax,
				 (unsigned long long)cases[i].cached);
		assert_int_equal(vmem_free(vm, a, cases[i].cached), 0);
		n0 = qc_count(vm);
		assert_int_equal(vmem_alloc(vm, cases[i].uncached, VM_NOSLEEP, &a), 0);
		if (qc_count(vm) != n0)
			fail_msg("qcache_max %#llx: alloc of %llu went through the caches",
				 (unsigned long long)cases[i].qmax,
				 (unsigned long long)cases[i].uncached);
		assert_int_equal(vmem_free(vm, a, cases[i].uncached), 0);
		CHECK_ARENA(vm);
		vmem_reap(vm);
		stats_consistent(vm);
		vmem_destroy(vm);
	}
	/* 0 turns caching off */
	vmem_t *vm = arena_new("qc0", 0x10000, 1 << 20, 16, 0, 0);
	assert_int_equal(vmem_alloc(vm, 16, VM_NOSLEEP, &a), 0);
	assert_int_equal(qc_count(vm), 0);
	assert_int_equal(vmem_free(vm, a, 16), 0);
	vmem_destroy(vm);
}

/* ---- allocation errors -------------------------------------------------- */

/* An arena with some history: allocations of several kinds, some freed,
 * quantum caches holding something. */
static vmem_t *busy_arena(int flags, vmem_addr_t *keep)
{
	vmem_t *vm = arena_new("busy", 0x100000, 0x100000, 16, 64, flags);
	vmem_addr_t a[40];
	alloc_each(vm, a, 40, 16, 10, VM_NOSLEEP);
	free_each(vm, a, 40, 16, 10, 0, 3);
	assert_int_equal(vmem_xalloc(vm, 256, 256, 32, 0, 0, VMEM_ADDR_MAX, VM_BESTFIT, keep), 0);
	CHECK_ARENA(vm);
	return vm;
}

TEST(test_alloc_errors)
{
	vmem_addr_t x, a = 0;
	vmem_t *vm = busy_arena(0, &x);
	vmem_addr_t *addrp = &a;

	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 0, VM_NOSLEEP, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 16, VM_NOSLEEP, NULL));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 200, VM_NOSLEEP, NULL));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, VMEM_ADDR_MAX, VM_NOSLEEP, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, VMEM_ADDR_MAX - 14, VM_NOSLEEP, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 16, VM_SLEEP | VM_NOSLEEP, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 200, VM_SLEEP | VM_NOSLEEP, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 16, VM_BESTFIT | VM_FIRSTFIT, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 200, VM_INSTANTFIT | VM_NEXTFIT, addrp));
	EXPECT_FAIL(vm, EINVAL,
		    vmem_alloc(vm, 16, VM_INSTANTFIT | VM_BESTFIT | VM_FIRSTFIT | VM_NEXTFIT, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 16, 0x4, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 200, 0x1000, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 16, VMC_DEBUG, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 16, VM_NOSLEEP | 0x40000000, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_alloc(vm, 16, INT_MIN, addrp));
	assert_int_equal(a, 0);

	vmem_addr_t M = VMEM_ADDR_MAX;
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 0, 0, 0, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, 0, M, 0, NULL));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, M, 0, 0, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, M - 3, 0, 0, 0, 0, M, 0, addrp));
	/* flags */
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, 0, M, VM_SLEEP | VM_NOSLEEP, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, 0, M, VM_BESTFIT | VM_NEXTFIT, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, 0, M, VM_FIRSTFIT | VM_INSTANTFIT, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, 0, M, 0x8, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, 0, M, VMC_DEBUG, addrp));
	/* align */
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 3, 0, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 48, 0, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 8, 0, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 1, 0, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, M, 0, 0, 0, M, 0, addrp));
	/* phase */
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 64, 8, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 64, 64, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 64, 128, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 16, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 16, 16, 0, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 1, 0, 0, M, 0, addrp));
	/* nocross */
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 48, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 8, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 64, 0, 0, 32, 0, M, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 256, 0, 0, 128, 0, M, VM_FIRSTFIT, addrp));
	/* bounds */
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, 0x100010, 0x10000f, 0, addrp));
	EXPECT_FAIL(vm, EINVAL, vmem_xalloc(vm, 16, 0, 0, 0, M, 0, 0, addrp));
	assert_int_equal(a, 0);

	/* the corners that are allowed */
	assert_int_equal(vmem_roundup_size(vm, 1), 16);
	assert_int_equal(vmem_roundup_size(vm, 16), 16);
	assert_int_equal(vmem_roundup_size(vm, 17), 32);
	assert_int_equal(vmem_roundup_size(vm, M), 0);
	assert_int_equal(vmem_roundup_size(vm, M - 14), 0);
	assert_true(vmem_roundup_size(vm, M - 15) == M - 15);
	assert_int_equal(vmem_xalloc(vm, 64, 0, 0, 64, 0, M, 0, &a), 0);
	assert_true(a / 64 == (a + 63) / 64);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_xfree(vm, a, 64), 0);
	assert_int_equal(vmem_xalloc(vm, 16, 64, 48, 0, 0, M, 0, &a), 0);
	assert_int_equal(a % 64, 48);
	assert_int_equal(vmem_xfree(vm, a, 16), 0);
	assert_int_equal(vmem_xalloc(vm, 20, 0, 0, 32, 0, M, VM_FIRSTFIT, &a), 0);
	assert_int_equal(vmem_xfree(vm, a, 20), 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_xfree(vm, x, 256), 0);
	CHECK_AND_DESTROY(vm);
}

TEST(test_enomem)
{
	vmem_addr_t a = 0, p[4];
	vmem_t *vm = arena_new("full", 0x10000, 4 * PG, PG, 0, 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vmem_alloc(vm, PG, VM_FIRSTFIT, &p[i]), 0);
		assert_int_equal(p[i], 0x10000 + i * PG);
	}
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, PG, VM_NOSLEEP, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, PG, 0, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, PG, VM_BESTFIT, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, PG, VM_FIRSTFIT, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, PG, VM_NEXTFIT | VM_NOSLEEP, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_xalloc(vm, PG, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	assert_int_equal(vmem_free(vm, p[1], PG), 0);
	assert_int_equal(vmem_free(vm, p[2], PG), 0);
	CHECK_ARENA(vm);
	/* free space exists, but not as asked */
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, 3 * PG, VM_NOSLEEP, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, 3 * PG, VM_FIRSTFIT, &a));
	EXPECT_FAIL(vm, ENOMEM,
		    vmem_xalloc(vm, PG, 0, 0, 0, 0x10000, 0x10000 + PG - 1, VM_BESTFIT, &a));
	EXPECT_FAIL(vm, ENOMEM,
		    vmem_xalloc(vm, 2 * PG, 4 * PG, 0, 0, 0, VMEM_ADDR_MAX, VM_FIRSTFIT, &a));
	EXPECT_FAIL(vm, ENOMEM,
		    vmem_xalloc(vm, 2 * PG, 0, 0, 2 * PG, 0, VMEM_ADDR_MAX, VM_NEXTFIT, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_xalloc(vm, PG, 0, 0, 0, 0, 0xffff, 0, &a));
	assert_int_equal(a, 0);
	/* the two free pages are usable */
	assert_int_equal(vmem_alloc(vm, 2 * PG, VM_NOSLEEP, &a), 0);
	assert_true(a == p[1] && p[2] == p[1] + PG);
	CHECK_AND_DESTROY(vm);

	/* ENOMEM with quantum caches present, for a size above them */
	vm = arena_new("full qc", 0, 64 * 16, 16, 64, 0);
	vmem_addr_t s[64];
	alloc_each(vm, s, 64, 16, 1, VM_NOSLEEP);
	free_each(vm, s, 64, 16, 1, 0, 2);
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, 160, VM_NOSLEEP, &a));
	free_each(vm, s, 64, 16, 1, 1, 2);
	expect_empty(vm);
	stats_consistent(vm);
	vmem_destroy(vm);
}

/* vmem_free of [a, +s) works, once: a second is refused and changes nothing. */
static void free_once(vmem_t *vm, vmem_addr_t a, vmem_size_t s)
{
	assert_int_equal(vmem_free(vm, a, s), 0);
	CHECK_ARENA(vm);
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, s));
}

TEST(test_bad_free)
{
	vmem_t *vm = arena_new("frees", 0x100000, 0x10000, 16, 64, 0);
	vmem_addr_t a, b, c, x;
	assert_int_equal(vmem_alloc(vm, 256, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_alloc(vm, 256, VM_NOSLEEP, &b), 0);
	assert_int_equal(vmem_alloc(vm, 1024, VM_BESTFIT, &c), 0);
	assert_int_equal(vmem_xalloc(vm, 512, 512, 0, 0, 0, VMEM_ADDR_MAX, 0, &x), 0);
	assert_int_equal(vmem_free(vm, b, 256), 0);
	CHECK_ARENA(vm);

	/* wrong size, interior, never allocated, double, outside */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, 128));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, 512));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, 0));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a + 16, 240));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a + 16, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a + 8, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, b, 256)); /* double */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, c + 512, 512));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, c, 512));
	vmem_addr_t fa = free_addr(vm);
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, fa, 256)); /* free space */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, fa + 256, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, 0, 256));        /* outside */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, 0x200000, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, VMEM_ADDR_MAX - 255, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, VMEM_ADDR_MAX, VMEM_ADDR_MAX));
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, x, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, x, 1024));
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, x, 0));
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, x + 256, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, b, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, fa, 256));
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, 0, 512));

	/* vmem_free of a vmem_xalloc segment above qcache_max acts as vmem_xfree */
	assert_int_equal(vmem_free(vm, x, 512), 0);
	CHECK_ARENA(vm);
	EXPECT_FAIL(vm, EINVAL, vmem_xfree(vm, x, 512));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, x, 512));
	free_once(vm, a, 256);
	free_once(vm, c, 1024);
	stats_consistent(vm);
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.alloc_total, 0);
	assert_int_equal(st.allocs, 4);
	assert_int_equal(st.frees, 4);
	vmem_destroy(vm);
}

/* Under VMC_DEBUG the check covers cached sizes too. */
TEST(test_bad_free_debug)
{
	/* the debug arena may report misuse on stderr: keep it out of the log */
	struct redirect quiet;
	redirect_begin(&quiet, 2);

	vmem_t *vm = arena_new("dbg", 0x100000, 0x10000, 16, 64, VMC_DEBUG);
	vmem_addr_t a, b, c, x, y;
	assert_int_equal(vmem_alloc(vm, 32, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_alloc(vm, 32, VM_NOSLEEP, &b), 0);
	assert_int_equal(vmem_alloc(vm, 16, VM_NOSLEEP, &c), 0);
	assert_int_equal(vmem_xalloc(vm, 32, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &x), 0);
	assert_int_equal(vmem_alloc(vm, 512, VM_NOSLEEP, &y), 0);
	assert_int_equal(vmem_free(vm, b, 32), 0);
	CHECK_ARENA(vm);
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, b, 32)); /* double, cached size */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, 16)); /* wrong size, both cached */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a, 48));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, c, 32));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, a + 16, 16)); /* interior */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, free_addr(vm), 16)); /* never allocated */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, free_addr(vm), 32));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, 0, 16));        /* outside */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, x, 32));        /* xalloc'd, cached size */
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, y, 16));
	EXPECT_FAIL(vm, EINVAL, vmem_free(vm, y, 64));
	assert_int_equal(vmem_xfree(vm, x, 32), 0);
	assert_int_equal(vmem_free(vm, y, 512), 0);
	free_once(vm, a, 32);
	free_once(vm, c, 16);
	vmem_reap(vm);
	stats_consistent(vm);
	vmem_destroy(vm);

	redirect_end(&quiet);
}

/* ---- spans -------------------------------------------------------------- */

TEST(test_add)
{
	vmem_t *vm = arena_new("spans", 0x10000, 0x10000, PG, 0, 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, PG, VM_NOSLEEP, &a), 0);

	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x40001, PG, VM_NOSLEEP));
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x40000, PG + 16, VM_NOSLEEP));
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x40000, 0, VM_NOSLEEP));
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, VMEM_ADDR_MAX - PG + 1, 2 * PG, VM_NOSLEEP));
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x10000, 0x10000, VM_NOSLEEP)); /* same */
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0xf000, 2 * PG, VM_NOSLEEP));    /* left */
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x1f000, 2 * PG, VM_NOSLEEP));   /* right */
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x14000, PG, VM_NOSLEEP));       /* inside */
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x0, 0x100000, VM_NOSLEEP));     /* around */
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x40000, PG, VM_SLEEP | VM_NOSLEEP));
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x40000, PG, 0x4));

	/* adjacent spans are fine, but they stay separate */
	assert_int_equal(vmem_add(vm, 0x20000, 0x10000, VM_NOSLEEP), 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_add(vm, 0xf000, PG, 0), 0);
	CHECK_ARENA(vm);
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, 0x2f000, 2 * PG, VM_NOSLEEP));
	assert_int_equal(vmem_add(vm, VMEM_ADDR_MAX - PG + 1, PG, VM_NOSLEEP), 0);
	CHECK_ARENA(vm);
	EXPECT_FAIL(vm, EINVAL, vmem_add(vm, VMEM_ADDR_MAX - PG + 1, PG, VM_NOSLEEP));

	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.nspans, 4);
	assert_int_equal(st.span_total, 0x20000 + 2 * PG);
	assert_int_equal(st.import_total, 0);
	stats_consistent(vm);

	/* nothing straddles 0x20000: the first span still has 15 free pages,
	 * the second 16; a 17-page request cannot be met */
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, 17 * PG, VM_NOSLEEP, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_xalloc(vm, 2 * PG, 0, 0, 0, 0x1f000, 0x20fff, 0, &a));
	assert_int_equal(vmem_alloc(vm, 16 * PG, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 0x20000);
	assert_int_equal(vmem_alloc(vm, PG, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 0xf000);
	assert_int_equal(vmem_xalloc(vm, PG, 0, 0, 0, 0x30000, VMEM_ADDR_MAX, 0, &a), 0);
	assert_true(a == VMEM_ADDR_MAX - PG + 1);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_xfree(vm, a, PG), 0);
	CHECK_AND_DESTROY(vm);
}

/* ---- import callbacks --------------------------------------------------- */

struct imp {
	vmem_t *vm;
	vmem_addr_t next;
	int fail;
	int calls, ok, rcalls;
	int lock_held;
	int bad;
	int nlive;
	vmem_addr_t live_addr[64];
	vmem_size_t live_size[64];
	vmem_size_t last_n;
	int last_flags;
	/* when set, the import callback first frees this (lock not held) */
	vmem_addr_t free_addr;
	vmem_size_t free_size;
	int free_rc;
};

static int imp_fn(void *arg, vmem_size_t n, int flags, vmem_addr_t *addrp)
{
	struct imp *c = arg;
	c->calls++;
	c->last_n = n;
	c->last_flags = flags;
	if (!vmem_seam_lock_free(c->vm))
		c->lock_held++;
	else if (c->free_size != 0) {
		c->free_rc = vmem_free(c->vm, c->free_addr, c->free_size);
		c->free_size = 0;
	}
	if (c->fail || c->nlive == 64)
		return ENOMEM;
	*addrp = c->next;
	c->ok++;
	c->live_addr[c->nlive] = c->next;
	c->live_size[c->nlive] = n;
	c->nlive++;
	c->next += n + 0x100000; /* never adjacent */
	return 0;
}

static void rel_fn(void *arg, vmem_addr_t addr, vmem_size_t n)
{
	struct imp *c = arg;
	c->rcalls++;
	if (!vmem_seam_lock_free(c->vm))
		c->lock_held++;
	for (int i = 0; i < c->nlive; i++) {
		if (c->live_addr[i] == addr) {
			if (c->live_size[i] != n)
				c->bad++;
			c->live_addr[i] = c->live_addr[c->nlive - 1];
			c->live_size[i] = c->live_size[c->nlive - 1];
			c->nlive--;
			return;
		}
	}
	c->bad++;
}

TEST(test_import)
{
	struct imp c = { .next = 0x1000000 };
	vmem_t *vm = arena_new("imp", 0, 0, PG, 0, 0);
	c.vm = vm;
	EXPECT_FAIL(vm, EINVAL, vmem_set_import(vm, imp_fn, rel_fn, &c, 100));
	EXPECT_FAIL(vm, EINVAL, vmem_set_import(vm, imp_fn, rel_fn, &c, PG + PG / 2));
	assert_int_equal(vmem_set_import(vm, imp_fn, rel_fn, &c, 16 * PG), 0);
	CHECK_ARENA(vm);

	vmem_addr_t a, b, x;
	assert_int_equal(vmem_alloc(vm, PG, VM_NOSLEEP, &a), 0);
	CHECK_ARENA(vm);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.lock_held, 0);
	assert_true(c.last_n >= 16 * PG && c.last_n % PG == 0);
	assert_false(c.last_flags & VM_SLEEP);
	assert_true(a >= c.live_addr[0] && a + PG <= c.live_addr[0] + c.live_size[0]);
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.imports, 1);
	assert_int_equal(st.import_total, c.last_n);
	assert_int_equal(st.span_total, c.last_n);
	stats_consistent(vm);

	assert_int_equal(vmem_alloc(vm, 20 * PG, VM_BESTFIT, &b), 0);
	CHECK_ARENA(vm);
	assert_int_equal(c.calls, 2);
	assert_true(c.last_n >= 20 * PG && c.last_n % PG == 0);

	/* import with alignment: only a size goes to the callback, so it must
	 * ask for enough */
	assert_int_equal(vmem_xalloc(vm, PG, 0x100000, 0x3000, 0, 0, VMEM_ADDR_MAX, 0, &x), 0);
	CHECK_ARENA(vm);
	assert_int_equal(x % 0x100000, 0x3000);

	assert_int_equal(vmem_free(vm, a, PG), 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_free(vm, b, 20 * PG), 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_xfree(vm, x, PG), 0);
	CHECK_ARENA(vm);
	assert_int_equal(c.rcalls, c.calls);
	assert_int_equal(c.nlive, 0);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.lock_held, 0);
	st = stats_of(vm);
	assert_int_equal(st.releases, st.imports);
	assert_int_equal(st.import_total, 0);
	assert_int_equal(st.span_total, 0);
	assert_int_equal(st.nspans, 0);

	/* a failed import: ENOMEM, nothing else changes */
	c.fail = 1;
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, PG, VM_NOSLEEP, &a));
	EXPECT_FAIL(vm, ENOMEM, vmem_xalloc(vm, PG, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	c.fail = 0;

	/* added spans are never released */
	assert_int_equal(vmem_add(vm, 0x10000, 4 * PG, VM_NOSLEEP), 0);
	int calls = c.calls;
	assert_int_equal(vmem_alloc(vm, 4 * PG, VM_NOSLEEP, &a), 0);
	assert_int_equal(c.calls, calls);
	assert_int_equal(a, 0x10000);
	assert_int_equal(vmem_free(vm, a, 4 * PG), 0);
	assert_int_equal(c.rcalls, c.ok);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 4 * PG);
	CHECK_ARENA(vm);

	/* destroy gives imported spans back, busy or not */
	assert_int_equal(vmem_alloc(vm, 8 * PG, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_alloc(vm, 40 * PG, VM_NOSLEEP, &b), 0);
	assert_true(c.nlive >= 1);
	vmem_destroy(vm);
	assert_int_equal(c.nlive, 0);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.rcalls, c.ok);
}

/* An import that turns out not to be needed (space came free meanwhile,
 * and the fit lies elsewhere) must not stay in the arena wholly free. */
TEST(test_import_unused)
{
	struct imp c = { .next = 0x1000000 };
	vmem_t *vm = arena_new("unused", 0x10000, 2 * PG, PG, 0, 0);
	c.vm = vm;
	assert_int_equal(vmem_set_import(vm, imp_fn, rel_fn, &c, 0), 0);
	vmem_addr_t x, a;
	assert_int_equal(vmem_alloc(vm, 2 * PG, VM_NOSLEEP, &x), 0);
	c.free_addr = x;
	c.free_size = 2 * PG;
	c.free_rc = -1;
	/* first fit prefers 0x10000, freed during the import, to the new span */
	assert_int_equal(vmem_alloc(vm, PG, VM_FIRSTFIT, &a), 0);
	assert_int_equal(c.free_rc, 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(a, 0x10000);
	CHECK_ARENA(vm);
	if (c.nlive != 0 || c.rcalls != 1)
		fail_msg("the imported span was not used and is still held (%d live, %d released)",
			 c.nlive, c.rcalls);
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.import_total, 0);
	assert_int_equal(st.imports, st.releases);
	assert_int_equal(vmem_free(vm, a, PG), 0);
	CHECK_AND_DESTROY(vm);
}

TEST(test_set_import_busy)
{
	struct imp c = { .next = 0x1000000 };
	vmem_t *src = arena_new("src", 0x1000000, 0x1000000, PG, 0, 0);
	vmem_addr_t a;

	/* vmem_alloc, then free: still busy */
	vmem_t *vm = arena_new("busy-alloc", 0x10000, 0x10000, PG, 4 * PG, 0);
	c.vm = vm;
	assert_int_equal(vmem_set_import(vm, imp_fn, rel_fn, &c, 0), 0);
	assert_int_equal(vmem_set_import(vm, imp_fn, rel_fn, &c, 4 * PG), 0);
	assert_int_equal(vmem_alloc(vm, PG, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_free(vm, a, PG), 0);
	vmem_reap(vm);
	CHECK_ARENA(vm);
	EXPECT_FAIL(vm, EBUSY, vmem_set_import(vm, imp_fn, rel_fn, &c, 0));
	EXPECT_FAIL(vm, EBUSY, vmem_set_source(vm, src, 0));
	vmem_destroy(vm);

	/* vmem_xalloc counts too */
	vm = arena_new("busy-xalloc", 0x10000, 0x10000, PG, 0, 0);
	assert_int_equal(vmem_xalloc(vm, PG, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a), 0);
	assert_int_equal(vmem_xfree(vm, a, PG), 0);
	EXPECT_FAIL(vm, EBUSY, vmem_set_source(vm, src, 0));
	EXPECT_FAIL(vm, EBUSY, vmem_set_import(vm, imp_fn, rel_fn, &c, 0));
	vmem_destroy(vm);

	/* a source that has allocated is still a fine source */
	vm = arena_new("child", 0, 0, PG, 0, 0);
	EXPECT_FAIL(vm, EINVAL, vmem_set_source(vm, src, 100));
	EXPECT_FAIL(vm, EINVAL, vmem_set_source(vm, src, PG / 2));
	assert_int_equal(vmem_set_source(vm, src, 2 * PG), 0);
	assert_int_equal(vmem_alloc(vm, PG, VM_NOSLEEP, &a), 0);
	CHECK_ARENA(vm);
	CHECK_ARENA(src);
	EXPECT_FAIL(vm, EBUSY, vmem_set_source(vm, src, 0));
	assert_int_equal(vmem_free(vm, a, PG), 0);
	vmem_destroy(vm);
	stats_consistent(src);
	assert_int_equal(vmem_size(src, VMEM_ALLOC), 0);
	vmem_destroy(src);
}

TEST(test_source_loop)
{
	vmem_t *a = arena_new("a", 0, 0x100000, PG, 0, 0);
	vmem_t *b = arena_new("b", 0, 0, PG, 0, 0);
	vmem_t *c = arena_new("c", 0, 0, PG, 0, 0);
	EXPECT_FAIL(a, EINVAL, vmem_set_source(a, a, 0));
	assert_int_equal(vmem_set_source(b, a, 0), 0);
	EXPECT_FAIL(a, EINVAL, vmem_set_source(a, b, 0));
	EXPECT_FAIL(b, EINVAL, vmem_set_source(b, b, 0));
	assert_int_equal(vmem_set_source(c, b, 0), 0);
	EXPECT_FAIL(a, EINVAL, vmem_set_source(a, c, 0));
	EXPECT_FAIL(b, EINVAL, vmem_set_source(b, c, 0));
	CHECK_ARENA(a);
	CHECK_ARENA(b);
	CHECK_ARENA(c);
	/* the chain works: c imports from b imports from a */
	vmem_addr_t x;
	assert_int_equal(vmem_alloc(c, PG, VM_NOSLEEP, &x), 0);
	assert_true(x < 0x100000);
	assert_int_equal(vmem_contains(a, x, PG), 1);
	CHECK_ARENA(a);
	CHECK_ARENA(b);
	CHECK_ARENA(c);
	assert_true(vmem_size(a, VMEM_ALLOC) >= PG);
	assert_int_equal(vmem_free(c, x, PG), 0);
	CHECK_ARENA(c);
	assert_int_equal(vmem_size(b, VMEM_ALLOC | VMEM_FREE), 0);
	assert_int_equal(vmem_size(a, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(b);
	vmem_destroy(a);
}

TEST(test_source_and_limit)
{
	vmem_t *p = arena_new("parent", 0x100000, 256 * PG, PG, 0, 0);
	vmem_t *c = arena_new("child", 0, 0, PG, 0, 0);
	assert_int_equal(vmem_set_source(c, p, 4 * PG), 0);
	vmem_addr_t a[16], x;
	vmem_stats_t st;

	assert_int_equal(vmem_alloc(c, PG, VM_NOSLEEP, &a[0]), 0);
	CHECK_ARENA(c);
	CHECK_ARENA(p);
	st = stats_of(c);
	assert_int_equal(st.imports, 1);
	assert_int_equal(st.import_total, 4 * PG);
	assert_int_equal(vmem_size(p, VMEM_ALLOC), 4 * PG);
	assert_int_equal(vmem_free(c, a[0], PG), 0);
	CHECK_ARENA(c);
	st = stats_of(c);
	assert_int_equal(st.releases, 1);
	assert_int_equal(st.import_total, 0);
	assert_int_equal(vmem_size(p, VMEM_ALLOC), 0);

	/* constraints pass through to the source */
	assert_int_equal(vmem_xalloc(c, PG, 64 * PG, PG, 0, 0x100000 + 128 * PG, VMEM_ADDR_MAX,
				     VM_NOSLEEP, &x),
			 0);
	CHECK_ARENA(c);
	CHECK_ARENA(p);
	assert_int_equal(x % (64 * PG), PG);
	assert_true(x >= 0x100000 + 128 * PG);
	assert_int_equal(vmem_xfree(c, x, PG), 0);
	assert_int_equal(vmem_xalloc(c, 2 * PG, 0, 0, 0, 0x100000 + 10 * PG,
				     0x100000 + 12 * PG - 1, VM_NOSLEEP, &x),
			 0);
	assert_int_equal(x, 0x100000 + 10 * PG);
	assert_int_equal(vmem_xfree(c, x, 2 * PG), 0);
	CHECK_ARENA(c);
	assert_int_equal(vmem_size(p, VMEM_ALLOC), 0);

	/* the limit */
	assert_int_equal(vmem_set_limit(c, 8 * PG), 0);
	alloc_each(c, a, 8, PG, 1, VM_NOSLEEP);
	CHECK_ARENA(c);
	st = stats_of(c);
	assert_true(st.import_total <= 8 * PG);
	EXPECT_FAIL(c, ENOMEM, vmem_alloc(c, PG, VM_NOSLEEP, &a[8]));
	st = stats_of(c);
	assert_true(st.import_total <= 8 * PG);
	assert_int_equal(vmem_size(p, VMEM_ALLOC), st.import_total);
	assert_int_equal(vmem_set_limit(c, 0), 0);
	assert_int_equal(vmem_alloc(c, PG, VM_NOSLEEP, &a[8]), 0);
	CHECK_ARENA(c);
	free_each(c, a, 9, PG, 1, 0, 1);
	CHECK_ARENA(c);
	CHECK_ARENA(p);
	st = stats_of(c);
	assert_int_equal(st.import_total, 0);
	assert_int_equal(st.imports, st.releases);
	assert_int_equal(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(c);
	CHECK_AND_DESTROY(p);
}

/* ---- reclaim ------------------------------------------------------------ */

enum { RC_NOTHING, RC_FREE, RC_ADD };

struct rc {
	vmem_t *vm;
	int mode;
	int calls;
	int lock_held;
	int wrong_vm;
	int rc;
	vmem_addr_t victim;
};

static void rc_fn(vmem_t *vm, void *arg, int flags)
{
	(void)flags;
	struct rc *r = arg;
	r->calls++;
	if (vm != r->vm)
		r->wrong_vm++;
	if (!vmem_seam_lock_free(r->vm)) {
		r->lock_held++;
		return; /* calling in would deadlock */
	}
	if (r->mode == RC_FREE)
		r->rc = vmem_free(r->vm, r->victim, PG);
	else if (r->mode == RC_ADD)
		r->rc = vmem_add(r->vm, 0x100000, PG, VM_NOSLEEP);
}

TEST(test_reclaim)
{
	vmem_t *vm = arena_new("reclaim", 0x10000, 4 * PG, PG, 0, 0);
	struct rc r = { .vm = vm };
	vmem_addr_t p[4], a;
	assert_int_equal(vmem_set_reclaim(vm, rc_fn, &r), 0);
	alloc_each(vm, p, 4, PG, 1, VM_NOSLEEP);
	assert_int_equal(r.calls, 0);

	r.mode = RC_NOTHING;
	EXPECT_FAIL(vm, ENOMEM, vmem_alloc(vm, PG, VM_NOSLEEP, &a));
	assert_int_equal(r.calls, 1);
	EXPECT_FAIL(vm, ENOMEM, vmem_xalloc(vm, PG, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a));
	assert_int_equal(r.calls, 2);

	r.mode = RC_FREE;
	r.victim = p[2];
	r.calls = 0;
	r.rc = -1;
	assert_int_equal(vmem_alloc(vm, PG, VM_NOSLEEP, &a), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.lock_held, 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(a, p[2]);
	CHECK_ARENA(vm);

	r.mode = RC_ADD;
	r.calls = 0;
	r.rc = -1;
	assert_int_equal(vmem_xalloc(vm, PG, 0, 0, 0, 0, VMEM_ADDR_MAX, VM_NOSLEEP, &a), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.lock_held, 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(a, 0x100000);
	assert_int_equal(r.wrong_vm, 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_xfree(vm, a, PG), 0);

	/* a request that fits never calls it */
	r.calls = 0;
	assert_int_equal(vmem_alloc(vm, PG, VM_NOSLEEP, &a), 0);
	assert_int_equal(r.calls, 0);
	CHECK_ARENA(vm);
	stats_consistent(vm);
	vmem_destroy(vm);
}

/* ---- looking inside ----------------------------------------------------- */

TEST(test_size)
{
	vmem_t *vm = arena_new("size", 0, 256 * PG, PG, 0, 0);
	vmem_addr_t a, b;
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 256 * PG);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 256 * PG);
	assert_int_equal(vmem_alloc(vm, 3 * PG, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_xalloc(vm, 5 * PG, 8 * PG, 0, 0, 0, VMEM_ADDR_MAX, 0, &b), 0);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 8 * PG);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 248 * PG);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 256 * PG);
	assert_int_equal(vmem_add(vm, 0x1000000, 16 * PG, 0), 0);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 264 * PG);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 272 * PG);
	stats_consistent(vm);
	assert_int_equal(vmem_free(vm, a, 3 * PG), 0);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 5 * PG);
	stats_consistent(vm);
	CHECK_AND_DESTROY(vm);

	/* cached holdings count as allocated */
	vm = arena_new("size qc", 0, 1 << 16, 1, 8, 0);
	vmem_addr_t s[10];
	alloc_each(vm, s, 10, 3, 1, VM_NOSLEEP);
	assert_true(vmem_size(vm, VMEM_ALLOC) >= 30);
	stats_consistent(vm);
	free_each(vm, s, 10, 3, 1, 0, 1);
	stats_consistent(vm);
	vmem_reap(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	assert_int_equal(vmem_size(vm, VMEM_FREE), 1 << 16);
	stats_consistent(vm);
	CHECK_AND_DESTROY(vm);
}

static vmem_t *three_spans(void)
{
	/* [0x1000,0x2000) and [0x2000,0x3000) adjacent, [0x8000,0x9000) apart */
	vmem_t *vm = arena_new("walk", 0x1000, 0x1000, 16, 0, 0);
	assert_int_equal(vmem_add(vm, 0x8000, 0x1000, 0), 0);
	assert_int_equal(vmem_add(vm, 0x2000, 0x1000, 0), 0);
	CHECK_ARENA(vm);
	return vm;
}

struct contains_case {
	vmem_addr_t a;
	vmem_size_t s;
	int want;
};

static void expect_contains(vmem_t *vm, const struct contains_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (vmem_contains(vm, c[i].a, c[i].s) != c[i].want)
			fail_msg("vmem_contains(%#" PRIx64 ", %#" PRIx64 ") = %d, expected %d", c[i].a,
				 c[i].s, vmem_contains(vm, c[i].a, c[i].s), c[i].want);
}

TEST(test_contains)
{
	vmem_t *vm = three_spans();
	static const struct contains_case inside[] = {
		{0x1000, 0x1000, 1}, {0x1000, 1, 1}, {0x1fff, 1, 1}, {0x2000, 0x1000, 1},
		{0x8800, 0x800, 1},
		/* empty, straddling two spans, in no span, wrapping */
		{0x1000, 0, 0}, {0x1800, 0, 0}, {0x1800, 0x1000, 0}, {0x1fff, 2, 0},
		{0x1000, 0x2000, 0}, {0xfff, 2, 0}, {0x2fff, 2, 0}, {0x3000, 1, 0},
		{0x8800, 0x801, 0}, {0, 1, 0}, {0x1000, VMEM_ADDR_MAX, 0}, {VMEM_ADDR_MAX, 2, 0},
	};
	expect_contains(vm, inside, sizeof(inside) / sizeof(inside[0]));
	assert_int_equal(vmem_add(vm, VMEM_ADDR_MAX - 0xfff, 0x1000, 0), 0);
	static const struct contains_case top[] = {
		{VMEM_ADDR_MAX - 0xfff, 0x1000, 1}, {VMEM_ADDR_MAX, 1, 1}, {VMEM_ADDR_MAX, 2, 0},
	};
	expect_contains(vm, top, sizeof(top) / sizeof(top[0]));
	/* allocated or free makes no difference */
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 0x800, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 0x1000);
	assert_int_equal(vmem_contains(vm, 0x1400, 0x800), 1);
	CHECK_AND_DESTROY(vm);
}

TEST(test_walk)
{
	vmem_t *vm = three_spans();
	vmem_addr_t a1, a2, a3;
	assert_int_equal(vmem_alloc(vm, 64, VM_FIRSTFIT, &a1), 0);
	assert_int_equal(a1, 0x1000);
	assert_int_equal(vmem_xalloc(vm, 32, 0, 0, 0, 0x2000, VMEM_ADDR_MAX, VM_FIRSTFIT, &a2), 0);
	assert_int_equal(a2, 0x2000);
	assert_int_equal(vmem_xalloc(vm, 0x100, 0x100, 0, 0, 0x8000, VMEM_ADDR_MAX, VM_BESTFIT, &a3),
			 0);
	assert_int_equal(a3 % 0x100, 0);
	assert_true(a3 >= 0x8000 && a3 < 0x9000);
	CHECK_ARENA(vm);

	struct seglist s = {0};
	vmem_stats_t st = stats_of(vm);
	for (int mask = 1; mask <= 7; mask++) {
		walk_into(vm, mask, &s);
		vmem_size_t tot[8] = { 0 };
		size_t cnt[8] = { 0 };
		for (size_t i = 0; i < s.n; i++) {
			int t = s.v[i].type;
			assert_true(t == VMEM_ALLOC || t == VMEM_FREE || t == VMEM_SPAN);
			assert_true(t & mask);
			if (i > 0)
				assert_true(s.v[i].addr >= s.v[i - 1].addr);
			if (i > 0 && t != VMEM_SPAN && s.v[i - 1].type != VMEM_SPAN)
				assert_true(s.v[i].addr >=
					    s.v[i - 1].addr + s.v[i - 1].size);
			tot[t] += s.v[i].size;
			cnt[t]++;
		}
		assert_int_equal(tot[VMEM_ALLOC], (mask & VMEM_ALLOC) ? st.alloc_total : 0);
		assert_int_equal(tot[VMEM_FREE], (mask & VMEM_FREE) ? st.free_total : 0);
		assert_int_equal(tot[VMEM_SPAN], (mask & VMEM_SPAN) ? st.span_total : 0);
		assert_int_equal(cnt[VMEM_ALLOC], (mask & VMEM_ALLOC) ? 3 : 0);
		assert_int_equal(cnt[VMEM_SPAN], (mask & VMEM_SPAN) ? 3 : 0);
		if (mask == VMEM_ALLOC) {
			assert_int_equal(s.v[0].addr, a1);
			assert_int_equal(s.v[0].size, 64);
			assert_int_equal(s.v[1].addr, a2);
			assert_int_equal(s.v[1].size, 32);
			assert_int_equal(s.v[2].addr, a3);
			assert_int_equal(s.v[2].size, 0x100);
		}
		if (mask == VMEM_SPAN) {
			assert_int_equal(s.v[0].addr, 0x1000);
			assert_int_equal(s.v[1].addr, 0x2000);
			assert_int_equal(s.v[2].addr, 0x8000);
			for (int i = 0; i < 3; i++)
				assert_int_equal(s.v[i].size, 0x1000);
		}
		if (mask == VMEM_FREE) {
			/* no free segment crosses a span boundary; 0x1040..0x2000 and
			 * 0x2020..0x3000 are distinct segments */
			int found1 = 0, found2 = 0;
			for (size_t i = 0; i < s.n; i++) {
				vmem_addr_t lo = s.v[i].addr, hi = lo + s.v[i].size;
				assert_false(lo < 0x2000 && hi > 0x2000);
				found1 |= lo == 0x1040 && hi == 0x2000;
				found2 |= lo == 0x2020 && hi == 0x3000;
			}
			assert_true(found1 && found2);
		}
	}
	/* the segments of a whole walk tile the spans */
	walk_into(vm, VMEM_ALLOC | VMEM_FREE, &s);
	assert_int_equal(s.v[0].addr, 0x1000);
	for (size_t i = 1; i < s.n; i++) {
		vmem_addr_t end = s.v[i - 1].addr + s.v[i - 1].size;
		if (end != 0x3000)
			assert_int_equal(s.v[i].addr, end);
		else
			assert_int_equal(s.v[i].addr, 0x8000);
	}
	assert_int_equal(s.v[s.n - 1].addr + s.v[s.n - 1].size, 0x9000);
	seglist_free(&s);
	vmem_destroy(vm);
}

TEST(test_get_stats)
{
	vmem_t *vm = arena_new("stats", 0, 1 << 20, 16, 64, 0);
	vmem_addr_t a, b;
	assert_int_equal(vmem_alloc(vm, 32, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_alloc(vm, 320, VM_NOSLEEP, &b), 0);
	assert_int_equal(vmem_free(vm, b, 320), 0);
	CHECK_ARENA(vm);

	const size_t v1 = offsetof(vmem_stats_t, qcache_misses) + sizeof(uint64_t);
	unsigned char buf[sizeof(vmem_stats_t) + 64] __attribute__((aligned(8)));
	vmem_stats_t *st = (vmem_stats_t *)(void *)buf;
	vmem_stats_t full = stats_of(vm);
	assert_int_equal(full.allocs, 2);
	assert_int_equal(full.frees, 1);
	assert_int_equal(full.fails, 0);
	assert_true(full.tag_bytes > 0);
	assert_true(full.qcache_hits + full.qcache_misses == 1);
	assert_int_equal(full.span_total, 1 << 20);
	assert_int_equal(full.nspans, 1);
	stats_consistent(vm);

	size_t bad[] = { 0, 1, 8, 16, v1 - 8, v1 - 1 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(buf, 0xa5, sizeof(buf));
		st->size = (uint32_t)bad[i];
		assert_int_equal(vmem_get_stats(vm, st), EINVAL);
		for (size_t k = bad[i] > 4 ? bad[i] : 4; k < sizeof(buf); k++)
			if (buf[k] != 0xa5)
				fail_msg("size %zu: EINVAL but byte %zu written", bad[i], k);
	}
	size_t good[] = { v1, v1 + 4, v1 + 8, v1 + 12, sizeof(vmem_stats_t),
			  sizeof(vmem_stats_t) + 16 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(buf, 0xa5, sizeof(buf));
		st->size = (uint32_t)good[i];
		assert_int_equal(vmem_get_stats(vm, st), 0);
		for (size_t k = good[i]; k < sizeof(buf); k++)
			if (buf[k] != 0xa5)
				fail_msg("size %zu: byte %zu past st->size written", good[i], k);
		assert_int_equal(st->span_total, full.span_total);
		assert_int_equal(st->alloc_total, full.alloc_total);
		assert_int_equal(st->free_total, full.free_total);
		assert_int_equal(st->cached_total, full.cached_total);
		assert_int_equal(st->allocs, full.allocs);
		assert_int_equal(st->frees, full.frees);
		assert_int_equal(st->qcache_hits, full.qcache_hits);
		assert_int_equal(st->qcache_misses, full.qcache_misses);
		assert_int_equal(st->tag_bytes, full.tag_bytes);
	}
	vmem_destroy(vm);
}

TEST(test_dump)
{
	vmem_t *vm = arena_new("dumpme", 0x1000, 0x10000, 16, 64, 0);
	vmem_addr_t a, b;
	assert_int_equal(vmem_alloc(vm, 32, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_alloc(vm, 320, VM_NOSLEEP, &b), 0);
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	assert_non_null(fp);
	assert_int_equal(vmem_dump(vm, fp), 0);
	fclose(fp);
	assert_true(len > strlen("dumpme"));
	assert_memory_equal(text, "dumpme", strlen("dumpme"));
	free(text);
	CHECK_ARENA(vm);

	FILE *tf = tmpfile();
	assert_non_null(tf);
	assert_int_equal(vmem_dump(vm, tf), 0);
	long n = ftell(tf);
	assert_true(n > 6);
	rewind(tf);
	char head[8] = { 0 };
	assert_int_equal(fread(head, 1, 6, tf), 6);
	assert_string_equal(head, "dumpme");
	fclose(tf);
	assert_int_equal(vmem_free(vm, a, 32), 0);
	assert_int_equal(vmem_free(vm, b, 320), 0);
	vmem_destroy(vm);

	/* a nameless arena dumps too */
	vm = arena_new(NULL, 0, 0, 1, 0, 0);
	fp = open_memstream(&text, &len);
	assert_int_equal(vmem_dump(vm, fp), 0);
	fclose(fp);
	free(text);
	vmem_destroy(vm);
}

TEST(test_reap)
{
	vmem_t *vm = arena_new("reap", 0, 1 << 20, 1, 16, 0);
	vmem_addr_t s[200];
	vmem_reap(vm);
	alloc_each(vm, s, 200, 1, 16, VM_NOSLEEP);
	CHECK_ARENA(vm);
	vmem_reap(vm);
	CHECK_ARENA(vm);
	free_each(vm, s, 200, 1, 16, 0, 1);
	CHECK_ARENA(vm);
	stats_consistent(vm);
	vmem_reap(vm);
	CHECK_ARENA(vm);
	vmem_stats_t st = stats_of(vm);
	assert_int_equal(st.cached_total, 0);
	assert_int_equal(st.alloc_total, 0);
	assert_int_equal(st.free_total, 1 << 20);
	assert_int_equal(st.nalloc, 0);
	assert_int_equal(st.nfree, 1);
	assert_int_equal(st.allocs, 200);
	assert_int_equal(st.frees, 200);
	assert_int_equal(st.qcache_hits + st.qcache_misses, 200);
	/* after a reap, FIRSTFIT sees everything again */
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 1 << 20, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(vmem_free(vm, a, 1 << 20), 0);
	vmem_destroy(vm);
}

/* ---- policies, briefly (test_model goes deep) -------------------------- */

TEST(test_policies)
{
	vmem_t *vm = arena_new("foo", 100, 400, 1, 0, 0);
	int pol[] = { 0, VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT };
	vmem_addr_t a;
	/* the paper's example, corrected: the lowest valid answer is 200 */
	assert_int_equal(vmem_xalloc(vm, 20, 64, 8, 0, 200, 300, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 200);
	assert_int_equal(vmem_xfree(vm, a, 20), 0);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(vmem_xalloc(vm, 20, 64, 8, 0, 200, 300, pol[i], &a), 0);
		assert_int_equal(a % 64, 8);
		assert_true(a >= 200 && a + 19 <= 300);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_xfree(vm, a, 20), 0);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_alloc(vm, 7, pol[i] | VM_NOSLEEP, &a), 0);
		assert_true(a >= 100 && a + 7 <= 500);
		assert_int_equal(vmem_free(vm, a, 7), 0);
	}
	vmem_destroy(vm);

	/* FIRSTFIT: lowest address; NEXTFIT: after the previous one */
	vm = arena_new("ff", 0, 100, 1, 0, 0);
	vmem_addr_t f[3];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vmem_alloc(vm, 10, VM_FIRSTFIT, &f[i]), 0);
		assert_int_equal(f[i], 10 * i);
	}
	assert_int_equal(vmem_free(vm, f[1], 10), 0);
	assert_int_equal(vmem_alloc(vm, 5, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 10);
	assert_int_equal(vmem_free(vm, a, 5), 0);
	assert_int_equal(vmem_free(vm, f[0], 10), 0);
	assert_int_equal(vmem_free(vm, f[2], 10), 0);
	CHECK_ARENA(vm);

	vmem_addr_t n0, n1;
	assert_int_equal(vmem_alloc(vm, 10, VM_NEXTFIT, &n0), 0);
	assert_int_equal(vmem_free(vm, n0, 10), 0);
	assert_int_equal(vmem_alloc(vm, 10, VM_NEXTFIT, &n1), 0);
	assert_int_equal(n1, (n0 + 10) % 100);
	assert_int_equal(vmem_free(vm, n1, 10), 0);
	/* wraps */
	vmem_addr_t prev = n1;
	for (int i = 0; i < 30; i++) {
		assert_int_equal(vmem_alloc(vm, 10, VM_NEXTFIT, &a), 0);
		assert_int_equal(a, (prev + 10) % 100);
		assert_int_equal(vmem_free(vm, a, 10), 0);
		prev = a;
	}
	CHECK_AND_DESTROY(vm);
}

/* ---- output on stderr/stdout -------------------------------------------- */

/* stdout and stderr into files, to count what the library wrote. */
struct capture {
	struct redirect out, err;
};

static void capture_start(struct capture *c)
{
	redirect_begin(&c->out, 1);
	redirect_begin(&c->err, 2);
}

static void capture_end(struct capture *c, long *n1, long *n2)
{
	*n2 = redirect_end(&c->err);
	*n1 = redirect_end(&c->out);
}

TEST(test_debug_leak_report)
{
	struct capture c;
	long n1, n2;
	vmem_addr_t a;

	capture_start(&c);
	vmem_t *vm = vmem_create("leaky", 0x1000, 0x10000, 16, 64, VMC_DEBUG);
	int ok = vm != NULL;
	ok = ok && vmem_alloc(vm, 32, VM_NOSLEEP, &a) == 0;     /* cached size */
	ok = ok && vmem_alloc(vm, 4096, VM_NOSLEEP, &a) == 0;   /* arena */
	ok = ok && vmem_xalloc(vm, 48, 0, 0, 0, 0, VMEM_ADDR_MAX, 0, &a) == 0;
	vmem_destroy(vm);
	capture_end(&c, &n1, &n2);
	assert_true(ok);
	assert_int_equal(n1, 0);
	assert_true(n2 > 0);

	/* a clean debug arena need not say anything, and must not on stdout */
	capture_start(&c);
	vm = vmem_create("clean", 0x1000, 0x10000, 16, 64, VMC_DEBUG);
	ok = vm != NULL && vmem_alloc(vm, 32, VM_NOSLEEP, &a) == 0 && vmem_free(vm, a, 32) == 0;
	vmem_destroy(vm);
	capture_end(&c, &n1, &n2);
	assert_true(ok);
	assert_int_equal(n1, 0);
}

TEST(test_silent)
{
	if (os_debug_env()) {
		print_message("# VMEM_DEBUG=1: the silence check does not apply\n");
		return;
	}
	struct capture c;
	long n1, n2;
	vmem_addr_t a, b, x;
	int bad = 0;

	capture_start(&c);
	errno = 0;
	bad += vmem_create("x", 1, 16, 16, 0, 0) != NULL;
	bad += vmem_create("x", 0, 16, 3, 0, 0) != NULL;
	bad += vmem_create("x", 0, 16, 16, 0, 0x12345) != NULL;
	vmem_t *vm = vmem_create("quiet", 0x1000, 0x10000, 16, 64, 0);
	bad += vm == NULL;
	if (vm != NULL) {
		bad += vmem_alloc(vm, 32, VM_NOSLEEP, &a) != 0;
		bad += vmem_alloc(vm, 512, VM_NOSLEEP, &b) != 0;
		bad += vmem_xalloc(vm, 512, 512, 0, 0, 0, VMEM_ADDR_MAX, 0, &x) != 0;
		bad += vmem_alloc(vm, 0, 0, &a) != EINVAL;
		bad += vmem_alloc(vm, 16, 0, NULL) != EINVAL;
		bad += vmem_alloc(vm, 16, 0x7, &a) != EINVAL;
		bad += vmem_xalloc(vm, 16, 3, 0, 0, 0, VMEM_ADDR_MAX, 0, &a) != EINVAL;
		bad += vmem_xalloc(vm, 16, 0, 0, 0, 10, 5, 0, &a) != EINVAL;
		bad += vmem_alloc(vm, 1 << 20, 0, &a) != ENOMEM;
		bad += vmem_free(vm, b, 128) != EINVAL; /* above qcache_max: always checked */
		bad += vmem_free(vm, b + 16, 496) != EINVAL;
		bad += vmem_free(vm, 0, 512) != EINVAL;
		bad += vmem_xfree(vm, x, 16) != EINVAL;
		bad += vmem_free(vm, b, 512) != 0;
		bad += vmem_free(vm, b, 512) != EINVAL;
		bad += vmem_add(vm, 0x1000, 16, 0) != EINVAL;
		bad += vmem_add(vm, 0x1, 16, 0) != EINVAL;
		bad += vmem_set_source(vm, vm, 0) == 0;
		vmem_stats_t st;
		st.size = 4;
		bad += vmem_get_stats(vm, &st) != EINVAL;
		vmem_reap(vm);
		/* leaks in a non-debug arena are dropped silently */
		vmem_destroy(vm);
	}
	capture_end(&c, &n1, &n2);
	assert_int_equal(bad, 0);
	assert_int_equal(n1, 0);
	assert_int_equal(n2, 0);
}

/* ---- mapping failures --------------------------------------------------- */

TEST(test_create_enomem)
{
	vmem_t *warm = arena_new("warm", 0, 4096, 1, 0, 0);
	vmem_destroy(warm);
	size_t before = os_mapped_bytes();
	for (uint64_t n = 1; n <= 4; n++) {
		os_fault_after(n);
		errno = 0;
		vmem_t *vm = vmem_create("fault", 0, 1 << 20, 16, 64, 0);
		int e = errno;
		os_fault_after(0);
		if (vm == NULL) {
			assert_int_equal(e, ENOMEM);
			assert_int_equal(os_mapped_bytes(), before);
		} else {
			/* the fault fell after creation; the arena must be whole */
			CHECK_AND_DESTROY(vm);
			assert_int_equal(os_mapped_bytes(), before);
		}
	}
	os_fault_after(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_destroy_null),
		cmocka_unit_test(test_qcache_max),
		cmocka_unit_test(test_alloc_errors),
		cmocka_unit_test(test_enomem),
		cmocka_unit_test(test_bad_free),
		cmocka_unit_test(test_bad_free_debug),
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_import),
		cmocka_unit_test(test_import_unused),
		cmocka_unit_test(test_set_import_busy),
		cmocka_unit_test(test_source_loop),
		cmocka_unit_test(test_source_and_limit),
		cmocka_unit_test(test_reclaim),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_get_stats),
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_reap),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_debug_leak_report),
		cmocka_unit_test(test_silent),
		cmocka_unit_test(test_create_enomem),
	};
	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
