/*
 * test_top.c - the top of the address space and the other edges of the
 * 64-bit range: spans ending exactly at 2^64, alignments of 2^62 and 2^63,
 * nocross and minaddr near the top, the very last unit, resource 0, spans
 * and sizes that would wrap, vmem_roundup_size overflow, and the paper's
 * vmem_xalloc example.  No result may ever wrap to a low address; the
 * invariant checker runs after every step.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P63 ((vmem_addr_t)1 << 63)
#define P62 ((vmem_addr_t)1 << 62)
#define PG 4096u

/* This file's order of the policies: the default last, which matters
 * where one arena serves all five in turn. */
static const int policy_order[NPOLICIES] = {VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT, VM_NEXTFIT, 0};

/* A request as vmem_xalloc takes it: align 0 means none. */
static struct fitq R(vmem_size_t size, vmem_size_t align, vmem_size_t phase, vmem_size_t nocross,
		     vmem_addr_t min, vmem_addr_t max)
{
	struct fitq r = {size, align, phase, nocross, min, max};
	return r;
}

/* The request the oracle checks: an alignment of 0 asks for none. */
static struct fitq effective(const struct fitq *r)
{
	struct fitq e = *r;
	if (e.align == 0)
		e.align = 1;
	return e;
}

/* Lowest address of the whole arena meeting r (from its free segments). */
static bool ref_lowest(vmem_t *vm, const struct fitq *r, vmem_addr_t *ap)
{
	struct seglist g = {0};
	walk_into(vm, VMEM_FREE, &g);
	struct fitq e = effective(r);
	bool found = fit_lowest(&g, &e, 0, ap, NULL);
	seglist_free(&g);
	return found;
}

/* A result must satisfy every constraint, lie inside one free segment of
 * the arena as it was, and never wrap. */
static void check_result_at(const struct seglist *freebefore, const struct fitq *r, vmem_addr_t a,
			    const char *what, int line)
{
	struct fitq e = effective(r);
	if (!fitq_holds(&e, a))
		fail_msg("line %d: %s: result %#" PRIx64 " breaks the request", line, what, a);
	if (seglist_find(freebefore, a, r->size) < 0)
		fail_msg("line %d: %s: %#" PRIx64 " size %#" PRIx64 " is not inside a free segment",
			 line, what, a, r->size);
}

/* vmem_xalloc with full checking.  want: the exact expected address, or
 * NULL for "any valid one".  Returns the errno. */
static int xa_at(vmem_t *vm, const struct fitq *r, int flags, const vmem_addr_t *want,
		 vmem_addr_t *out, int line)
{
	struct seglist fb = {0};
	struct snapshot before;
	char what[160];
	snprintf(what, sizeof(what),
		 "xalloc(%#" PRIx64 ", align %#" PRIx64 ", phase %#" PRIx64 ", nocross %#" PRIx64
		 ", min %#" PRIx64 ", max %#" PRIx64 ", %s)",
		 r->size, r->align, r->phase, r->nocross, r->min, r->max, policy_name(flags));
	walk_into(vm, VMEM_FREE, &fb);
	snapshot_take(vm, &before);
	vmem_addr_t a = 0x5555555555555555ull;
	int e = vmem_xalloc(vm, r->size, r->align, r->phase, r->nocross, r->min, r->max,
			    flags | VM_NOSLEEP, &a);
	if (e == 0) {
		check_result_at(&fb, r, a, what, line);
		if (want && a != *want)
			fail_msg("line %d: %s = %#" PRIx64 ", expected %#" PRIx64, line, what, a,
				 *want);
		if (out)
			*out = a;
		snapshot_free(&before);
		CHECK_ARENA(vm);
	} else {
		if (e != ENOMEM)
			fail_msg("line %d: %s failed with %d", line, what, e);
		if (want)
			fail_msg("line %d: %s: ENOMEM, expected %#" PRIx64, line, what, *want);
		expect_unchanged_at(vm, &before, 1, what, __FILE__, line);
	}
	seglist_free(&fb);
	return e;
}
#define XA(vm, r, flags, want, out) xa_at((vm), (r), (flags), (want), (out), __LINE__)
/* The answer is unique: every policy must return it. */
#define XA_ONLY(vm, r, flags, addr)                                                        \
	do {                                                                               \
		vmem_addr_t want_ = (addr);                                                \
		assert_int_equal(XA((vm), (r), (flags), &want_, NULL), 0);                 \
	} while (0)
/* addr is the lowest answer: VM_FIRSTFIT must return it, the others any
 * valid one.  Returns the result. */
static vmem_addr_t xa_low_at(vmem_t *vm, const struct fitq *r, int flags, vmem_addr_t lowest,
			     int line)
{
	vmem_addr_t a = 0;
	bool exact = (flags & POLICY_MASK) == VM_FIRSTFIT;
	if (xa_at(vm, r, flags, exact ? &lowest : NULL, &a, line) != 0)
		fail_msg("line %d: unexpected ENOMEM", line);
	if (a < lowest)
		fail_msg("line %d: %#" PRIx64 " is below the lowest valid %#" PRIx64, line, a,
			 lowest);
	return a;
}
#define XA_LOW(vm, r, flags, addr) xa_low_at((vm), (r), (flags), (addr), __LINE__)
#define XA_NOMEM(vm, r, flags) assert_int_equal(XA((vm), (r), (flags), NULL, NULL), ENOMEM)

static void xfree_ok(vmem_t *vm, vmem_addr_t a, vmem_size_t s)
{
	assert_int_equal(vmem_xfree(vm, a, s), 0);
	CHECK_ARENA(vm);
}

/* ---- the cases ------------------------------------------------------------ */

/* The paper's example (§4.3): the lowest valid answer is 200, not 262. */
TEST(test_paper_example)
{
	struct fitq r = R(20, 64, 8, 0, 200, 300);
	for (int i = 0; i < 5; i++) {
		vmem_t *vm = vmem_create("paper", 100, 400, 1, 0, 0);
		assert_non_null(vm);
		CHECK_ARENA(vm);
		vmem_addr_t a;
		if (policy_order[i] == VM_FIRSTFIT || policy_order[i] == VM_NEXTFIT) {
			vmem_addr_t w = 200;
			assert_int_equal(XA(vm, &r, policy_order[i], &w, NULL), 0);
		} else {
			assert_int_equal(XA(vm, &r, policy_order[i], NULL, &a), 0);
			assert_true(a == 200 || a == 264);
		}
		/* the next one must take the other slot, then nothing is left */
		vmem_addr_t b;
		assert_int_equal(XA(vm, &r, policy_order[i], NULL, &b), 0);
		assert_true(b == 200 || b == 264);
		XA_NOMEM(vm, &r, policy_order[i]);
		vmem_destroy(vm);
	}
}

/* A span ending exactly at 2^64, quantum 4096: every page, the top one too. */
TEST(test_span_to_top_pages)
{
	const vmem_addr_t base = (vmem_addr_t)0 - 16 * PG;
	for (int p = 0; p < 5; p++) {
		vmem_t *vm = vmem_create("top", base, 16 * PG, PG, 0, 0);
		assert_non_null(vm);
		CHECK_ARENA(vm);
		struct seglist g = {0};
		walk_into(vm, VMEM_SPAN | VMEM_FREE, &g);
		assert_int_equal(g.n, 2);
		assert_int_equal(g.v[0].addr, base);
		assert_int_equal(g.v[0].size, 16 * PG);
		assert_int_equal(g.v[1].addr, base);
		assert_int_equal(g.v[1].size, 16 * PG);
		assert_int_equal(g.v[0].type | g.v[1].type, VMEM_SPAN | VMEM_FREE);
		seglist_free(&g);
		assert_int_equal(vmem_contains(vm, TOP_LAST - (PG - 1), PG), 1);
		assert_int_equal(vmem_contains(vm, base, 16 * PG), 1);
		assert_int_equal(vmem_size(vm, VMEM_FREE), 16 * PG);

		bool seen[16] = {false};
		for (int i = 0; i < 16; i++) {
			vmem_addr_t a;
			int e = vmem_alloc(vm, PG, policy_order[p] | VM_NOSLEEP, &a);
			assert_int_equal(e, 0);
			assert_true(a >= base && a % PG == 0 && a + (PG - 1) >= a);
			if (policy_order[p] == VM_FIRSTFIT || policy_order[p] == VM_NEXTFIT)
				assert_int_equal(a, base + (vmem_addr_t)i * PG);
			assert_false(seen[(a - base) / PG]);
			seen[(a - base) / PG] = true;
			CHECK_ARENA(vm);
		}
		assert_int_equal(vmem_size(vm, VMEM_ALLOC), 16 * PG);
		assert_int_equal(vmem_size(vm, VMEM_FREE), 0);
		vmem_addr_t a;
		struct snapshot b;
		snapshot_take(vm, &b);
		assert_int_equal(vmem_alloc(vm, PG, policy_order[p] | VM_NOSLEEP, &a), ENOMEM);
		EXPECT_UNCHANGED(vm, &b, 1, "alloc from a full top span");

		/* bad frees at the top change nothing */
		snapshot_take(vm, &b);
		assert_int_equal(vmem_free(vm, TOP_LAST - (PG - 1), 2 * PG), EINVAL);
		assert_int_equal(vmem_free(vm, TOP_LAST - (PG - 1), 0), EINVAL);
		assert_int_equal(vmem_free(vm, TOP_LAST, PG), EINVAL);
		assert_int_equal(vmem_free(vm, 0, PG), EINVAL);
		EXPECT_UNCHANGED(vm, &b, 0, "bad frees at the top");

		for (int i = 0; i < 16; i++) {
			assert_int_equal(vmem_free(vm, base + (vmem_addr_t)i * PG, PG), 0);
			CHECK_ARENA(vm);
		}
		assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);

		/* the whole span in one, with maxaddr = VMEM_ADDR_MAX */
		struct fitq r = R(16 * PG, 0, 0, 0, 0, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, policy_order[p], base);
		xfree_ok(vm, base, 16 * PG);
		/* the top page only, by minaddr; then by nocross + phase */
		r = R(PG, 0, 0, 0, TOP_LAST - (PG - 1), VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, policy_order[p], TOP_LAST - (PG - 1));
		XA_NOMEM(vm, &r, policy_order[p]);
		xfree_ok(vm, TOP_LAST - (PG - 1), PG);
		r = R(PG, 8 * PG, 7 * PG, PG, 0, VMEM_ADDR_MAX);
		vmem_addr_t got;
		assert_int_equal(XA(vm, &r, policy_order[p], NULL, &got), 0);
		assert_true(got == TOP_LAST - (PG - 1) || got == TOP_LAST - (PG - 1) - 8 * PG);
		if (policy_order[p] == VM_FIRSTFIT)
			assert_int_equal(got, TOP_LAST - (PG - 1) - 8 * PG);
		xfree_ok(vm, got, PG);
		/* a size that does not fit the span is ENOMEM, even with rounding near 2^64 */
		r = R((vmem_size_t)0 - PG, 0, 0, 0, 0, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, policy_order[p]);
		vmem_destroy(vm);
	}
}

/* The top page alone: quantum 4096, base 2^64 - 4096. */
TEST(test_top_page)
{
	vmem_t *vm = vmem_create("toppage", (vmem_addr_t)0 - PG, PG, PG, 0, 0);
	assert_non_null(vm);
	CHECK_ARENA(vm);
	for (int p = 0; p < 5; p++) {
		vmem_addr_t a = 0;
		assert_int_equal(vmem_alloc(vm, 1, policy_order[p], &a), 0);
		assert_int_equal(a, (vmem_addr_t)0 - PG);
		CHECK_ARENA(vm);
		struct snapshot b;
		snapshot_take(vm, &b);
		assert_int_equal(vmem_alloc(vm, 1, policy_order[p], &a), ENOMEM);
		EXPECT_UNCHANGED(vm, &b, 1, "alloc from a full top page");
		assert_int_equal(vmem_free(vm, (vmem_addr_t)0 - PG, 1), 0);
		CHECK_ARENA(vm);
		struct fitq r = R(PG, PG, 0, PG, (vmem_addr_t)0 - PG, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, policy_order[p], (vmem_addr_t)0 - PG);
		xfree_ok(vm, (vmem_addr_t)0 - PG, PG);
		r = R(PG, 0, 0, 0, TOP_LAST, VMEM_ADDR_MAX); /* minaddr inside the page: no */
		XA_NOMEM(vm, &r, policy_order[p]);
		r = R(PG, 0, 0, 0, 0, TOP_LAST - 1); /* maxaddr one short */
		XA_NOMEM(vm, &r, policy_order[p]);
		r = R(PG, 2 * PG, PG, 0, 0, VMEM_ADDR_MAX); /* phase: 2^64 - 4096 is odd pages */
		XA_ONLY(vm, &r, policy_order[p], (vmem_addr_t)0 - PG);
		xfree_ok(vm, (vmem_addr_t)0 - PG, PG);
		r = R(PG, 2 * PG, 0, 0, 0, VMEM_ADDR_MAX); /* the next even page is 2^64 */
		XA_NOMEM(vm, &r, policy_order[p]);
	}
	vmem_destroy(vm);
}

/* Alignments of 2^63 and 2^62 with phases, in [2^63, 2^64). */
TEST(test_large_align)
{
	for (int p = 0; p < 5; p++) {
		int pol = policy_order[p];
		bool exact = pol == VM_FIRSTFIT;
		vmem_t *vm = vmem_create("half", P63, P63, 1, 0, 0);
		assert_non_null(vm);
		CHECK_ARENA(vm);
		struct fitq r = R(1, P63, 0, 0, 0, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, P63); /* the only address = 0 mod 2^63 */
		XA_NOMEM(vm, &r, pol);       /* the next one would be 2^64 = 0 */
		r = R(1, P63, 5, 0, 0, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, P63 + 5);
		XA_NOMEM(vm, &r, pol);
		r = R(1, P63, P63 - 1, 0, 0, VMEM_ADDR_MAX); /* the last unit */
		XA_ONLY(vm, &r, pol, TOP_LAST);
		XA_NOMEM(vm, &r, pol);
		r = R(P62, P62, 0, 0, 0, VMEM_ADDR_MAX); /* [2^63, 2^63+2^62) is used: upper quarter */
		XA_NOMEM(vm, &r, pol);                    /* no: 2^64 - 1 is taken */
		xfree_ok(vm, TOP_LAST, 1);
		XA_ONLY(vm, &r, pol, P63 + P62);
		XA_NOMEM(vm, &r, pol);
		/* in the upper quarter, ending exactly at 2^64: taken */
		r = R(P62 - 8, P62, 8, 0, P63 + P62, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		xfree_ok(vm, P63 + P62, P62);
		XA_ONLY(vm, &r, pol, P63 + P62 + 8); /* [2^63+2^62+8, 2^64) */
		xfree_ok(vm, P63 + P62 + 8, P62 - 8);
		/* align 2^62 with phase: candidates are 2^63+ph and 2^63+2^62+ph */
		r = R(16, P62, P62 - 16, P62, 0, VMEM_ADDR_MAX);
		vmem_addr_t a;
		assert_int_equal(XA(vm, &r, pol, exact ? &(vmem_addr_t){P63 + P62 - 16} : NULL, &a), 0);
		vmem_addr_t b;
		assert_int_equal(XA(vm, &r, pol, NULL, &b), 0);
		assert_true(a != b);
		assert_true((a == P63 + P62 - 16 && b == TOP_LAST - 15) ||
			    (b == P63 + P62 - 16 && a == TOP_LAST - 15));
		XA_NOMEM(vm, &r, pol);
		xfree_ok(vm, a, 16);
		xfree_ok(vm, b, 16);
		/* minaddr above the last aligned candidate */
		r = R(16, P62, P62 - 16, 0, TOP_LAST - 14, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		r = R(16, P62, P62 - 16, 0, TOP_LAST - 15, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, TOP_LAST - 15);
		xfree_ok(vm, TOP_LAST - 15, 16);
		xfree_ok(vm, P63, 1);
		xfree_ok(vm, P63 + 5, 1);
		assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
		/* the whole half at once */
		r = R(P63, P63, 0, 0, 0, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, P63);
		xfree_ok(vm, P63, P63);
		vmem_destroy(vm);

		/* The BSD bug: a free segment ending at 2^64 and a large alignment.
		 * The next aligned address after the segment start is 2^64 = 0. */
		vmem_t *t = vmem_create("mb", (vmem_addr_t)0 - 0x100000, 0x100000, PG, 0, 0);
		assert_non_null(t);
		r = R(PG, P63, 0, 0, 0, VMEM_ADDR_MAX);
		XA_NOMEM(t, &r, pol);
		r = R(PG, P62, 0, 0, 0, VMEM_ADDR_MAX);
		XA_NOMEM(t, &r, pol);
		r = R(PG, (vmem_size_t)1 << 21, 0, 0, 0, VMEM_ADDR_MAX);
		XA_NOMEM(t, &r, pol);
		r = R(PG, P62, P62 - PG, 0, 0, VMEM_ADDR_MAX);
		XA_ONLY(t, &r, pol, TOP_LAST - (PG - 1));
		r = R(2 * PG, P62, P62 - 2 * PG, 0, 0, VMEM_ADDR_MAX);
		XA_NOMEM(t, &r, pol); /* the top page is taken */
		xfree_ok(t, TOP_LAST - (PG - 1), PG);
		XA_ONLY(t, &r, pol, TOP_LAST - (2 * PG - 1));
		xfree_ok(t, TOP_LAST - (2 * PG - 1), 2 * PG);
		r = R(PG, P63, P63 - PG, 0, 0, VMEM_ADDR_MAX);
		XA_ONLY(t, &r, pol, TOP_LAST - (PG - 1));
		xfree_ok(t, TOP_LAST - (PG - 1), PG);
		vmem_destroy(t);
	}
}

/* nocross near the top, q = 1, span [2^64 - 2^20, 2^64). */
TEST(test_nocross_top)
{
	const vmem_addr_t base = (vmem_addr_t)0 - 0x100000;
	const vmem_addr_t lastblk = (vmem_addr_t)0 - 0x10000;
	for (int p = 0; p < 5; p++) {
		int pol = policy_order[p];
		vmem_t *vm = vmem_create("nc", base, 0x100000, 1, 0, 0);
		assert_non_null(vm);
		/* crossing the last block boundary: moved up to it */
		struct fitq r = R(100, 0, 0, 0x10000, lastblk - 51, VMEM_ADDR_MAX);
		vmem_addr_t a = XA_LOW(vm, &r, pol, lastblk);
		xfree_ok(vm, a, 100);
		/* in the last block, too close to 2^64: the next block would wrap */
		r = R(100, 0, 0, 0x10000, TOP_LAST - 49, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		r = R(50, 0, 0, 0x10000, TOP_LAST - 49, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, TOP_LAST - 49);
		xfree_ok(vm, TOP_LAST - 49, 50);
		/* a whole block: the last one */
		r = R(0x10000, 0, 0, 0x10000, lastblk - 1, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, lastblk);
		XA_NOMEM(vm, &r, pol);
		xfree_ok(vm, lastblk, 0x10000);
		r = R(0x10000, 0, 0, 0x10000, lastblk + 1, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		/* nocross 2^63 with size 2^19 near the top: fits below 2^64 */
		r = R(0x80000, 0, 0, P63, (vmem_addr_t)0 - 0x80000, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, (vmem_addr_t)0 - 0x80000);
		xfree_ok(vm, (vmem_addr_t)0 - 0x80000, 0x80000);
		/* nocross + alignment + phase near the top */
		r = R(64, 128, 64, 0x10000, lastblk - 300, VMEM_ADDR_MAX);
		vmem_addr_t b = XA_LOW(vm, &r, pol, lastblk - 192);
		r = R(64, 128, 96, 0x10000, TOP_LAST - 200, VMEM_ADDR_MAX);
		/* candidates >= 2^64-201 with a%128 == 96: 2^64-160, [.., 2^64-96) ok */
		XA_ONLY(vm, &r, pol, (vmem_addr_t)0 - 160);
		XA_NOMEM(vm, &r, pol);
		xfree_ok(vm, (vmem_addr_t)0 - 160, 64);
		xfree_ok(vm, b, 64);
		assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
		vmem_destroy(vm);
	}
}

/* Resource 0 and a span [0, 2^64 - 1). */
TEST(test_whole_space)
{
	for (int p = 0; p < 5; p++) {
		int pol = policy_order[p];
		vmem_t *vm = vmem_create("all", 0, VMEM_ADDR_MAX, 1, 0, 0);
		assert_non_null(vm);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_size(vm, VMEM_FREE), VMEM_ADDR_MAX);
		assert_int_equal(vmem_contains(vm, 0, VMEM_ADDR_MAX), 1);
		assert_int_equal(vmem_contains(vm, TOP_LAST, 1), 0);
		vmem_addr_t a = 12345;
		if (pol == VM_FIRSTFIT || pol == VM_NEXTFIT) {
			assert_int_equal(vmem_alloc(vm, 1, pol, &a), 0);
			assert_int_equal(a, 0);
			CHECK_ARENA(vm);
			assert_int_equal(vmem_free(vm, 0, 1), 0);
			CHECK_ARENA(vm);
		}
		struct fitq r = R(1, 0, 0, 0, 0, 0); /* maxaddr 0: only resource 0 */
		XA_ONLY(vm, &r, pol, 0);
		XA_NOMEM(vm, &r, pol);
		/* the rest of the span, in one piece */
		vmem_addr_t b = 0;
		assert_int_equal(vmem_alloc(vm, VMEM_ADDR_MAX - 1, pol, &b), 0);
		assert_int_equal(b, 1);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_size(vm, VMEM_ALLOC), VMEM_ADDR_MAX);
		assert_int_equal(vmem_size(vm, VMEM_FREE), 0);
		struct snapshot s;
		snapshot_take(vm, &s);
		assert_int_equal(vmem_alloc(vm, 1, pol, &a), ENOMEM);
		EXPECT_UNCHANGED(vm, &s, 1, "alloc from a full [0, 2^64-1)");
		assert_int_equal(vmem_xfree(vm, 0, 1), 0);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_free(vm, 1, VMEM_ADDR_MAX - 1), 0);
		CHECK_ARENA(vm);
		/* the last unit is not in the span */
		r = R(1, 0, 0, 0, TOP_LAST, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		r = R(1, 0, 0, 0, TOP_LAST - 1, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, TOP_LAST - 1);
		xfree_ok(vm, TOP_LAST - 1, 1);
		/* the whole span in one allocation */
		assert_int_equal(vmem_alloc(vm, VMEM_ADDR_MAX, pol, &a), 0);
		assert_int_equal(a, 0);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_free(vm, 0, VMEM_ADDR_MAX), 0);
		CHECK_AND_DESTROY(vm);
	}
}

/* Adjacent spans at the top are not merged; the very last unit. */
TEST(test_last_unit_adjacent)
{
	const vmem_addr_t base = (vmem_addr_t)0 - 0x100000;
	for (int p = 0; p < 5; p++) {
		int pol = policy_order[p];
		vmem_t *vm = vmem_create("last", base, 0x100000 - 1, 1, 0, 0);
		assert_non_null(vm);
		struct fitq r = R(1, 0, 0, 0, TOP_LAST, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		struct snapshot s;
		snapshot_take(vm, &s);
		assert_int_equal(vmem_add(vm, TOP_LAST, 2, 0), EINVAL); /* wraps */
		assert_int_equal(vmem_add(vm, TOP_LAST - 1, 1, 0), EINVAL); /* overlaps */
		assert_int_equal(vmem_add(vm, TOP_LAST, 0, 0), EINVAL); /* empty */
		EXPECT_UNCHANGED(vm, &s, 0, "bad vmem_add at the top");
		assert_int_equal(vmem_add(vm, TOP_LAST, 1, 0), 0);
		CHECK_ARENA(vm);
		struct seglist g = {0};
		walk_into(vm, VMEM_SPAN, &g);
		assert_int_equal(g.n, 2);
		assert_int_equal(g.v[1].addr, TOP_LAST);
		assert_int_equal(g.v[1].size, 1);
		seglist_free(&g);
		walk_into(vm, VMEM_FREE, &g);
		assert_int_equal(g.n, 2); /* not merged */
		seglist_free(&g);
		assert_int_equal(vmem_contains(vm, TOP_LAST - 1, 2), 0);
		assert_int_equal(vmem_contains(vm, TOP_LAST, 1), 1);
		/* straddling the two spans: never */
		r = R(2, 0, 0, 0, TOP_LAST - 1, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		r = R(0x100000, 0, 0, 0, 0, VMEM_ADDR_MAX);
		XA_NOMEM(vm, &r, pol);
		/* the very last unit */
		r = R(1, 0, 0, 0, TOP_LAST, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, TOP_LAST);
		XA_NOMEM(vm, &r, pol);
		r = R(1, 0, 0, 0, TOP_LAST - 1, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, TOP_LAST - 1);
		xfree_ok(vm, TOP_LAST - 1, 1);
		/* its span may not be released or merged: a free puts it back */
		xfree_ok(vm, TOP_LAST, 1);
		walk_into(vm, VMEM_SPAN | VMEM_FREE, &g);
		assert_int_equal(g.n, 4);
		seglist_free(&g);
		r = R(1, P63, P63 - 1, 0, 0, VMEM_ADDR_MAX);
		XA_ONLY(vm, &r, pol, TOP_LAST);
		xfree_ok(vm, TOP_LAST, 1);
		vmem_addr_t a;
		assert_int_equal(vmem_alloc(vm, 0x100000 - 1, pol, &a), 0);
		assert_int_equal(a, base);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_alloc(vm, 1, pol, &a), 0);
		assert_int_equal(a, TOP_LAST);
		CHECK_ARENA(vm);
		assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0x100000);
		assert_int_equal(vmem_free(vm, TOP_LAST, 1), 0);
		assert_int_equal(vmem_free(vm, base, 0x100000 - 1), 0);
		CHECK_AND_DESTROY(vm);
	}
}

/* Spans that would wrap: EINVAL in vmem_create and vmem_add. */
TEST(test_wrapping_spans)
{
	errno = 0;
	assert_null(vmem_create("w", (vmem_addr_t)0 - PG, 2 * PG, PG, 0, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("w", 2, VMEM_ADDR_MAX, 1, 0, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("w", TOP_LAST, 2, 1, 0, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vmem_create("w", P63, P63 + 8, 8, 0, 0));
	assert_int_equal(errno, EINVAL);

	/* exactly to 2^64 is fine */
	vmem_t *vm = vmem_create("w", 1, VMEM_ADDR_MAX, 1, 0, 0);
	assert_non_null(vm);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_size(vm, VMEM_FREE), VMEM_ADDR_MAX);
	struct fitq r = R(1, 0, 0, 0, TOP_LAST, VMEM_ADDR_MAX);
	XA_ONLY(vm, &r, VM_FIRSTFIT, TOP_LAST);
	r = R(1, 0, 0, 0, 0, 0);
	XA_NOMEM(vm, &r, VM_FIRSTFIT); /* 0 is not in [1, 2^64) */
	vmem_destroy(vm);
	vm = vmem_create("w", (vmem_addr_t)0 - PG, PG, PG, 0, 0);
	assert_non_null(vm);
	vmem_destroy(vm);

	vm = vmem_create("w", 1024, 1024, 8, 0, 0);
	assert_non_null(vm);
	struct snapshot s;
	snapshot_take(vm, &s);
	/* wrapping into [0, 16), which overlaps nothing: still EINVAL */
	assert_int_equal(vmem_add(vm, (vmem_addr_t)0 - 16, 32, 0), EINVAL);
	assert_int_equal(vmem_add(vm, (vmem_addr_t)0 - 8, VMEM_ADDR_MAX - 7, 0), EINVAL);
	assert_int_equal(vmem_add(vm, (vmem_addr_t)0 - 8, (vmem_size_t)0 - 8, 0), EINVAL);
	assert_int_equal(vmem_add(vm, P63, P63 + 8, 0), EINVAL);
	assert_int_equal(vmem_add(vm, TOP_LAST, 8, 0), EINVAL);   /* misaligned too */
	assert_int_equal(vmem_add(vm, (vmem_addr_t)0 - 8, 9, 0), EINVAL);
	EXPECT_UNCHANGED(vm, &s, 0, "wrapping vmem_add");
	assert_int_equal(vmem_add(vm, (vmem_addr_t)0 - 8, 8, 0), 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_add(vm, 0, 16, 0), 0);
	CHECK_ARENA(vm);
	/* three spans: [0,16), [1024,2048), [2^64-8, 2^64) */
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 8, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(vmem_alloc(vm, 16, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, 1024);
	r = R(8, 0, 0, 0, 2048, VMEM_ADDR_MAX);
	XA_ONLY(vm, &r, VM_FIRSTFIT, (vmem_addr_t)0 - 8);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 32);
	vmem_destroy(vm);
}

/* vmem_roundup_size overflow, and sizes whose rounding overflows. */
TEST(test_rounding_overflow)
{
	vmem_t *vm = vmem_create("r", 0, 64 * PG, PG, 0, 0);
	assert_non_null(vm);
	assert_int_equal(vmem_roundup_size(vm, 1), PG);
	assert_int_equal(vmem_roundup_size(vm, PG), PG);
	assert_int_equal(vmem_roundup_size(vm, PG + 1), 2 * PG);
	assert_int_equal(vmem_roundup_size(vm, (vmem_size_t)0 - PG), (vmem_size_t)0 - PG);
	assert_int_equal(vmem_roundup_size(vm, (vmem_size_t)0 - PG - 1), (vmem_size_t)0 - PG);
	assert_int_equal(vmem_roundup_size(vm, (vmem_size_t)0 - PG + 1), 0);
	assert_int_equal(vmem_roundup_size(vm, VMEM_ADDR_MAX), 0);
	vmem_t *v1 = vmem_create("r1", 0, 64, 1, 0, 0);
	assert_non_null(v1);
	assert_int_equal(vmem_roundup_size(v1, VMEM_ADDR_MAX), VMEM_ADDR_MAX);
	assert_int_equal(vmem_roundup_size(v1, 7), 7);
	vmem_destroy(v1);

	struct snapshot s;
	snapshot_take(vm, &s);
	vmem_addr_t a;
	const vmem_size_t bad[] = {VMEM_ADDR_MAX, (vmem_size_t)0 - PG + 1, (vmem_size_t)0 - 1000};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int p = 0; p < 5; p++) {
			assert_int_equal(vmem_alloc(vm, bad[i], policy_order[p], &a), EINVAL);
			assert_int_equal(vmem_xalloc(vm, bad[i], 0, 0, 0, 0, VMEM_ADDR_MAX,
						     policy_order[p], &a),
					 EINVAL);
			assert_int_equal(vmem_xalloc(vm, bad[i], PG, 0, 0, 0, VMEM_ADDR_MAX,
						     policy_order[p] | VM_SLEEP, &a),
					 EINVAL);
		}
		assert_int_equal(vmem_free(vm, 0, bad[i]), EINVAL);
		assert_int_equal(vmem_xfree(vm, 0, bad[i]), EINVAL);
	}
	EXPECT_UNCHANGED(vm, &s, 0, "sizes whose rounding overflows");
	/* the largest size that rounds is ENOMEM here, not EINVAL */
	snapshot_take(vm, &s);
	assert_int_equal(vmem_alloc(vm, (vmem_size_t)0 - PG, VM_NOSLEEP, &a), ENOMEM);
	EXPECT_UNCHANGED(vm, &s, 1, "huge alloc");
	snapshot_take(vm, &s);
	assert_int_equal(vmem_xalloc(vm, (vmem_size_t)0 - PG - 1, 0, 0, 0, 0, VMEM_ADDR_MAX,
				     VM_NOSLEEP, &a),
			 ENOMEM);
	EXPECT_UNCHANGED(vm, &s, 1, "huge xalloc");
	vmem_destroy(vm);

	/* on a top arena, rounding of a size up to exactly the span works */
	vm = vmem_create("r", (vmem_addr_t)0 - 4 * PG, 4 * PG, PG, 0, 0);
	assert_non_null(vm);
	assert_int_equal(vmem_alloc(vm, 3 * PG + 1, VM_FIRSTFIT, &a), 0);
	assert_int_equal(a, (vmem_addr_t)0 - 4 * PG);
	CHECK_ARENA(vm);
	assert_int_equal(stats_of(vm).alloc_total, 4 * PG);
	assert_int_equal(vmem_free(vm, a, 3 * PG + 1), 0);
	CHECK_AND_DESTROY(vm);
}

/* NEXTFIT across 2^64: the cursor after an allocation ending at 2^64 wraps. */
TEST(test_nextfit_wrap)
{
	vmem_t *vm = vmem_create("nf", 0, 16, 1, 0, 0);
	assert_non_null(vm);
	assert_int_equal(vmem_add(vm, (vmem_addr_t)0 - 16, 16, 0), 0);
	CHECK_ARENA(vm);
	vmem_addr_t a;
	const vmem_addr_t want[] = {0, 8, (vmem_addr_t)0 - 16, (vmem_addr_t)0 - 8};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vmem_alloc(vm, 8, VM_NEXTFIT, &a), 0);
		assert_int_equal(a, want[i]);
		CHECK_ARENA(vm);
	}
	struct snapshot s;
	snapshot_take(vm, &s);
	assert_int_equal(vmem_alloc(vm, 1, VM_NEXTFIT, &a), ENOMEM);
	EXPECT_UNCHANGED(vm, &s, 1, "NEXTFIT in a full arena");
	assert_int_equal(vmem_free(vm, 0, 8), 0);
	assert_int_equal(vmem_free(vm, (vmem_addr_t)0 - 16, 8), 0);
	CHECK_ARENA(vm);
	/* the previous one ended at 2^64: wrap to the start of the arena */
	assert_int_equal(vmem_alloc(vm, 8, VM_NEXTFIT, &a), 0);
	assert_int_equal(a, 0);
	CHECK_ARENA(vm);
	/* a failure must not move the cursor */
	snapshot_take(vm, &s);
	assert_int_equal(vmem_alloc(vm, 9, VM_NEXTFIT, &a), ENOMEM);
	EXPECT_UNCHANGED(vm, &s, 1, "NEXTFIT too big");
	assert_int_equal(vmem_alloc(vm, 4, VM_NEXTFIT, &a), 0);
	assert_int_equal(a, (vmem_addr_t)0 - 16);
	CHECK_ARENA(vm);
	/* xalloc NEXTFIT with a phase near the top */
	assert_int_equal(vmem_xalloc(vm, 2, 4, 2, 0, 0, VMEM_ADDR_MAX, VM_NEXTFIT, &a), 0);
	assert_int_equal(a, (vmem_addr_t)0 - 10);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_xalloc(vm, 2, 4, 2, 0, 0, VMEM_ADDR_MAX, VM_NEXTFIT, &a), ENOMEM);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_xfree(vm, (vmem_addr_t)0 - 10, 2), 0);
	assert_int_equal(vmem_free(vm, (vmem_addr_t)0 - 16, 4), 0);
	assert_int_equal(vmem_free(vm, 0, 8), 0);
	assert_int_equal(vmem_free(vm, 8, 8), 0);
	assert_int_equal(vmem_free(vm, (vmem_addr_t)0 - 8, 8), 0);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

/* Random constrained requests near the top of the space (and a low span),
 * large alignments included.  FIRSTFIT must give the lowest address, no
 * policy may fail while a free segment can hold the request, and nothing
 * may wrap. */
TEST(test_random_top)
{
	uint64_t seed = test_seed(0x70b70b);
	uint64_t n = test_scale(3000);
	for (int round = 0; round < 4; round++) {
		vmem_size_t q = (round & 1) ? PG : 1;
		vmem_size_t spansz = (round & 2) ? 0x1000000 : 64 * q;
		vmem_t *vm = vmem_create("rt", (vmem_addr_t)0 - spansz, spansz, q, 0, 0);
		assert_non_null(vm);
		assert_int_equal(vmem_add(vm, 0, 64 * q, 0), 0);
		assert_int_equal(vmem_add(vm, (vmem_addr_t)0 - 2 * spansz, spansz, 0), 0);
		assert_int_equal(vmem_add(vm, P63 - spansz / 2, spansz, 0), 0);
		CHECK_ARENA(vm);
		struct seg *out = calloc(n, sizeof(*out));
		assert_non_null(out);
		size_t nout = 0;
		for (uint64_t i = 0; i < n; i++) {
			if (nout > 0 && (rand_next(&seed) % 5 < 2 || nout >= 200)) {
				size_t k = rand_next(&seed) % nout;
				xfree_ok(vm, out[k].addr, out[k].size);
				out[k] = out[--nout];
				continue;
			}
			struct fitq r;
			unsigned int qs = q == 1 ? 0 : 12;
			r.size = q * (1 + rand_next(&seed) % (rand_next(&seed) % 2 ? 4 : 64));
			unsigned int ak = qs + (unsigned int)(rand_next(&seed) % (64 - qs));
			if (rand_next(&seed) % 3 == 0)
				ak = qs + (unsigned int)(rand_next(&seed) % 8);
			r.align = rand_next(&seed) % 8 == 0 ? 0 : (vmem_size_t)1 << ak;
			vmem_size_t al = r.align ? r.align : q;
			r.phase = rand_next(&seed) % 2 ? 0 : (rand_next(&seed) & (al - 1) & ~(q - 1));
			r.nocross = 0;
			if (rand_next(&seed) % 3 == 0) {
				unsigned int k = qs;
				while (((vmem_size_t)1 << k) < r.size)
					k++;
				k += (unsigned int)(rand_next(&seed) % (rand_next(&seed) % 2 ? 3 : 64 - k));
				r.nocross = (vmem_size_t)1 << k;
			}
			r.min = VMEM_ADDR_MIN;
			r.max = VMEM_ADDR_MAX;
			if (rand_next(&seed) % 3 == 0)
				r.min = (vmem_addr_t)0 - rand_next(&seed) % (2 * spansz + 2);
			if (rand_next(&seed) % 4 == 0)
				r.min = rand_next(&seed) % 128 * q;
			if (rand_next(&seed) % 4 == 0) {
				r.max = (vmem_addr_t)0 - 1 - rand_next(&seed) % (2 * spansz);
				if (r.max < r.min)
					r.max = r.min + (TOP_LAST - r.min) / 2;
			}
			int pol = policy_order[rand_next(&seed) % 5];
			/* a request the arena checks the result of: struct fitq align is
			 * the effective one */
			struct fitq eff = r;
			eff.align = al;
			vmem_addr_t lowest = 0;
			bool can = ref_lowest(vm, &eff, &lowest);
			struct seglist fb = {0};
			walk_into(vm, VMEM_FREE, &fb);
			vmem_addr_t a = 0;
			int e = vmem_xalloc(vm, r.size, r.align, r.phase, r.nocross, r.min, r.max,
					    pol | VM_NOSLEEP, &a);
			char what[200];
			snprintf(what, sizeof(what),
				 "seed round %d op %" PRIu64 ": xalloc(%#" PRIx64 ", %#" PRIx64
				 ", %#" PRIx64 ", %#" PRIx64 ", %#" PRIx64 ", %#" PRIx64 ", %s)",
				 round, i, r.size, r.align, r.phase, r.nocross, r.min, r.max,
				 policy_name(pol));
			if (e == 0) {
				if (!can)
					fail_msg("%s = %#" PRIx64 " but no free segment can hold it",
						 what, a);
				check_result_at(&fb, &eff, a, what, __LINE__);
				if (pol == VM_FIRSTFIT && a != lowest)
					fail_msg("%s = %#" PRIx64 ", the lowest fit is %#" PRIx64,
						 what, a, lowest);
				out[nout++] = (struct seg){a, r.size, 0};
			} else {
				if (e != ENOMEM)
					fail_msg("%s: error %d", what, e);
				if (can)
					fail_msg("%s: ENOMEM but %#" PRIx64 " fits", what, lowest);
			}
			seglist_free(&fb);
			CHECK_ARENA(vm);
		}
		while (nout > 0) {
			xfree_ok(vm, out[nout - 1].addr, out[nout - 1].size);
			nout--;
		}
		assert_int_equal(vmem_size(vm, VMEM_ALLOC), 0);
		free(out);
		vmem_destroy(vm);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paper_example),
		cmocka_unit_test(test_span_to_top_pages),
		cmocka_unit_test(test_top_page),
		cmocka_unit_test(test_large_align),
		cmocka_unit_test(test_nocross_top),
		cmocka_unit_test(test_whole_space),
		cmocka_unit_test(test_last_unit_adjacent),
		cmocka_unit_test(test_wrapping_spans),
		cmocka_unit_test(test_rounding_overflow),
		cmocka_unit_test(test_nextfit_wrap),
		cmocka_unit_test(test_random_top),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
