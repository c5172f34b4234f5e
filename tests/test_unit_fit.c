/*
 * test_unit_fit.c - the pure fit() function of lib/fit.c against two
 * independent references:
 *
 *  - a brute-force scan of every address of a small segment (quantum 1,
 *    addresses below 1024), and the same cases shifted to the top of the
 *    address space by a multiple of every alignment and nocross in play, so
 *    that the expected answer is the small one plus the shift;
 *  - the closed-form fit oracle in 128-bit arithmetic that the model tests
 *    and the fuzzer trust (tests/model.c; checked against the brute force
 *    first), for random segments anywhere in [0, 2^64) with alignments up
 *    to 2^63.
 *
 * fit(start, size, req, &a) must return the LOWEST a in [start, start+size)
 * with a % align == phase, a and a + req->size - 1 in one nocross block,
 * minaddr <= a, a + req->size - 1 <= maxaddr and a + req->size <= start + size
 * (the segment may end exactly at 2^64), or false when there is none.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "helpers.h"
#include "vmem_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SMALL_SPACE 1024u /* small cases live in [0, SMALL_SPACE) */
#define SMALL_MAXALIGN 256u /* largest align or nocross of a small case */

static const char *req_str(char *buf, size_t len, vmem_addr_t start, vmem_size_t size,
			   const struct fitreq *r)
{
	snprintf(buf, len,
		 "segment start=%#" PRIx64 " size=%#" PRIx64 " req{size=%#" PRIx64
		 " align=%#" PRIx64 " phase=%#" PRIx64 " nocross=%#" PRIx64 " min=%#" PRIx64
		 " max=%#" PRIx64 "}",
		 start, size, r->size, r->align, r->phase, r->nocross, r->minaddr, r->maxaddr);
	return buf;
}

/* Does a satisfy every condition?  All arithmetic in 128 bits. */
static bool valid_at(u128 a, vmem_addr_t start, vmem_size_t size, const struct fitreq *r)
{
	u128 last = a + r->size - 1;
	if (a < start || a + r->size > (u128)start + size)
		return false;
	if (a % r->align != r->phase)
		return false;
	if (r->nocross != 0 && a / r->nocross != last / r->nocross)
		return false;
	if (a < r->minaddr || last > r->maxaddr)
		return false;
	return true;
}

/* Brute force: scan every address of the segment (small segments only). */
static bool brute_fit(vmem_addr_t start, vmem_size_t size, const struct fitreq *r,
		      vmem_addr_t *ap)
{
	for (u128 a = start; a < (u128)start + size; a++) {
		if (valid_at(a, start, size, r)) {
			*ap = (vmem_addr_t)a;
			return true;
		}
	}
	return false;
}

/* The shared 128-bit fit oracle (model.c), on fit()'s own request. */
static bool ref_fit(vmem_addr_t start, vmem_size_t size, const struct fitreq *r, vmem_addr_t *ap)
{
	struct fitq q = {r->size, r->align, r->phase, r->nocross, r->minaddr, r->maxaddr};
	return fit_lowest_in(start, size, &q, 0, ap);
}

/* A random request and segment inside [0, SMALL_SPACE). */
static void small_case(uint64_t *s, vmem_addr_t *startp, vmem_size_t *sizep, struct fitreq *r)
{
	vmem_addr_t start = rand_below(s, SMALL_SPACE - 1);
	vmem_size_t size;
	switch (rand_below(s, 4)) {
	case 0: /* ends at the end of the small space (at 2^64 once shifted) */
		size = SMALL_SPACE - start;
		break;
	case 1:
		size = 1 + rand_below(s, 8);
		break;
	default:
		size = 1 + rand_below(s, 300);
		break;
	}
	if (start + size > SMALL_SPACE)
		size = SMALL_SPACE - start;

	memset(r, 0, sizeof(*r));
	r->size = 1 + (rand_below(s, 3) == 0 ? rand_below(s, 4) : rand_below(s, 80));
	r->align = (vmem_size_t)1 << rand_below(s, 9); /* 1 .. 256 */
	r->phase = rand_below(s, 3) == 0 ? 0 : rand_below(s, r->align);
	r->nocross = 0;
	if (rand_below(s, 2)) {
		unsigned int k = 0;
		while (((vmem_size_t)1 << k) < r->size)
			k++;
		if (k <= 8) {
			k += (unsigned int)rand_below(s, 9 - k);
			r->nocross = (vmem_size_t)1 << k; /* size <= nocross <= 256 */
		}
	}
	r->minaddr = VMEM_ADDR_MIN;
	r->maxaddr = VMEM_ADDR_MAX;
	switch (rand_below(s, 4)) {
	case 0:
		break;
	case 1:
		r->minaddr = rand_below(s, SMALL_SPACE);
		break;
	case 2:
		r->maxaddr = rand_below(s, SMALL_SPACE);
		break;
	default:
		r->minaddr = rand_below(s, SMALL_SPACE);
		r->maxaddr = r->minaddr + rand_below(s, SMALL_SPACE - r->minaddr);
		break;
	}
	*startp = start;
	*sizep = size;
}

static void check_one(vmem_addr_t start, vmem_size_t size, const struct fitreq *r, bool want,
		      vmem_addr_t wanta, const char *what)
{
	char buf[400];
	vmem_addr_t got = 0xdeadbeefdeadbeefull;
	bool ok = fit(start, size, r, &got);
	if (ok != want || (ok && got != wanta)) {
		if (want)
			fail_msg("%s: %s: fit() = %s %#" PRIx64 ", expected %#" PRIx64, what,
				 req_str(buf, sizeof(buf), start, size, r), ok ? "true" : "false",
				 got, wanta);
		else
			fail_msg("%s: %s: fit() = true %#" PRIx64 ", expected no fit", what,
				 req_str(buf, sizeof(buf), start, size, r), got);
	}
	/* Whatever it returns must itself be valid. */
	if (ok && !valid_at(got, start, size, r))
		fail_msg("%s: %s: fit() returned invalid %#" PRIx64, what,
			 req_str(buf, sizeof(buf), start, size, r), got);
}

/* The 128-bit reference is what the big cases trust: check it first. */
TEST(test_reference_vs_brute)
{
	uint64_t s = test_seed(0xf17f17);
	uint64_t n = test_scale(20000);
	for (uint64_t i = 0; i < n; i++) {
		vmem_addr_t start, a1 = 0, a2 = 0;
		vmem_size_t size;
		struct fitreq r;
		small_case(&s, &start, &size, &r);
		bool b1 = brute_fit(start, size, &r, &a1);
		bool b2 = ref_fit(start, size, &r, &a2);
		assert_int_equal(b1, b2);
		if (b1)
			assert_int_equal(a1, a2);
	}
}

/* n small cases against the brute force, moved up by shift (with their
 * bounds); how many had a fit, and how many segments ended at the end of
 * the small space. */
static void small_cases(uint64_t seed, uint64_t n, vmem_addr_t shift, const char *what,
			uint64_t *nfit, uint64_t *attop)
{
	uint64_t s = seed;
	*nfit = *attop = 0;
	for (uint64_t i = 0; i < n; i++) {
		vmem_addr_t start, a = 0;
		vmem_size_t size;
		struct fitreq r;
		small_case(&s, &start, &size, &r);
		bool want = brute_fit(start, size, &r, &a);
		*nfit += want;
		*attop += (start + size == SMALL_SPACE);
		if (r.minaddr != VMEM_ADDR_MIN)
			r.minaddr += shift;
		if (r.maxaddr != VMEM_ADDR_MAX)
			r.maxaddr += shift;
		check_one(start + shift, size, &r, want, a + shift, what);
	}
}

TEST(test_small_brute)
{
	uint64_t n = test_scale(30000), nfit, attop;
	small_cases(test_seed(0x5a11), n, 0, "small", &nfit, &attop);
	/* the generator must exercise both outcomes */
	assert_true(nfit > n / 10 && nfit < n - n / 10);
}

/* The small cases moved up so that the small space ends exactly at 2^64. */
TEST(test_small_shifted_to_top)
{
	const vmem_addr_t shift = (vmem_addr_t)0 - SMALL_SPACE; /* a multiple of 256 */
	assert_int_equal(shift % SMALL_MAXALIGN, 0);
	uint64_t n = test_scale(30000), nfit, attop;
	small_cases(test_seed(0x70b), n, shift, "shifted to 2^64", &nfit, &attop);
	assert_true(attop > n / 8);
}

/* Hand-picked edges. */
TEST(test_edges)
{
	const vmem_addr_t top = VMEM_ADDR_MAX;
	struct fitreq r = {.size = 1, .align = 1, .phase = 0, .nocross = 0,
			   .minaddr = VMEM_ADDR_MIN, .maxaddr = VMEM_ADDR_MAX};

	/* resource 0 is ordinary */
	check_one(0, 1, &r, true, 0, "edge");
	check_one(0, top, &r, true, 0, "edge");
	/* the very last unit */
	check_one(top, 1, &r, true, top, "edge");
	r.minaddr = top;
	check_one(0, top, &r, false, 0, "edge"); /* [0, 2^64-1) lacks the last unit */
	check_one(top - 9, 10, &r, true, top, "edge");
	r.minaddr = VMEM_ADDR_MIN;

	/* alignment 2^63 in a segment ending at 2^64 that starts above 2^63:
	 * the next aligned address would be 2^64, which wraps to 0 */
	r.align = (vmem_size_t)1 << 63;
	check_one(top - 4095, 4096, &r, false, 0, "edge");
	check_one((vmem_addr_t)1 << 63, (vmem_size_t)1 << 63, &r, true, (vmem_addr_t)1 << 63,
		  "edge");
	r.phase = 5;
	check_one(((vmem_addr_t)1 << 63) + 6, ((vmem_size_t)1 << 63) - 6, &r, false, 0, "edge");
	check_one(((vmem_addr_t)1 << 63) + 5, ((vmem_size_t)1 << 63) - 5, &r, true,
		  ((vmem_addr_t)1 << 63) + 5, "edge");
	check_one(6, top - 6, &r, true, ((vmem_addr_t)1 << 63) + 5, "edge");
	r.phase = ((vmem_size_t)1 << 63) - 1;
	r.size = 1;
	check_one(0, top, &r, true, ((vmem_addr_t)1 << 63) - 1, "edge");
	check_one((vmem_addr_t)1 << 63, (vmem_size_t)1 << 63, &r, true, top, "edge");
	r.size = 2;
	check_one((vmem_addr_t)1 << 63, (vmem_size_t)1 << 63, &r, false, 0, "edge");

	/* align 2^62, phases, at the top */
	r.size = 1;
	r.align = (vmem_size_t)1 << 62;
	r.phase = ((vmem_size_t)1 << 62) - 4096;
	r.size = 4096;
	check_one(top - 0xfffff, 0x100000, &r, true, top - 4095, "edge");
	r.size = 8192;
	check_one(top - 0xfffff, 0x100000, &r, false, 0, "edge");

	/* nocross near the top */
	r = (struct fitreq){.size = 100, .align = 1, .phase = 0, .nocross = 1u << 16,
			    .minaddr = top - 0xffff - 50, .maxaddr = VMEM_ADDR_MAX};
	check_one(top - 0xfffff, 0x100000, &r, true, top - 0xffff, "edge");
	r.minaddr = top - 49;
	check_one(top - 0xfffff, 0x100000, &r, false, 0, "edge");
	r.size = 1u << 16;
	r.minaddr = top - 0x10000;
	check_one(top - 0xfffff, 0x100000, &r, true, top - 0xffff, "edge");
	r.minaddr = top - 0xfffe;
	check_one(top - 0xfffff, 0x100000, &r, false, 0, "edge");

	/* maxaddr smaller than size - 1: nothing fits (no underflow) */
	r = (struct fitreq){.size = 16, .align = 1, .phase = 0, .nocross = 0,
			    .minaddr = 0, .maxaddr = 14};
	check_one(0, 100, &r, false, 0, "edge");
	r.maxaddr = 15;
	check_one(0, 100, &r, true, 0, "edge");

	/* the paper's example: [100, 500), 20 units, align 64 phase 8, [200, 300] */
	r = (struct fitreq){.size = 20, .align = 64, .phase = 8, .nocross = 0,
			    .minaddr = 200, .maxaddr = 300};
	check_one(100, 400, &r, true, 200, "paper");
	/* and the whole range, a segment covering everything but the last unit */
	r = (struct fitreq){.size = 1, .align = 1, .phase = 0, .nocross = 0,
			    .minaddr = VMEM_ADDR_MIN, .maxaddr = VMEM_ADDR_MAX};
	r.size = top;
	check_one(0, top, &r, true, 0, "edge");
	check_one(1, top, &r, true, 1, "edge");
	check_one(2, top - 1, &r, false, 0, "edge");
}

/* Random requests anywhere in the 64-bit space, alignments up to 2^63,
 * against the 128-bit reference. */
TEST(test_big_random)
{
	uint64_t s = test_seed(0xb16);
	uint64_t n = test_scale(200000);
	uint64_t nfit = 0;
	for (uint64_t i = 0; i < n; i++) {
		vmem_addr_t start;
		vmem_size_t size;
		/* where the segment lies */
		switch (rand_below(&s, 5)) {
		case 0: /* ends at 2^64 */
			size = 1 + (rand_below(&s, 2) ? rand_below(&s, 1u << 20) : rand_next(&s) >> rand_below(&s, 64));
			if (size == 0)
				size = 1;
			start = (vmem_addr_t)0 - size;
			break;
		case 1: /* starts near 0 */
			start = rand_below(&s, 1u << 12);
			size = 1 + (rand_next(&s) >> rand_below(&s, 64));
			if (size == 0 || start + (size - 1) < start)
				size = (vmem_addr_t)0 - start;
			break;
		case 2: /* the whole space but the last unit, or all from 1 */
			start = rand_below(&s, 2);
			size = VMEM_ADDR_MAX;
			break;
		default:
			start = rand_next(&s);
			size = 1 + (rand_next(&s) >> rand_below(&s, 64));
			if (size == 0 || start + (size - 1) < start)
				size = (vmem_addr_t)0 - start;
			break;
		}
		struct fitreq r;
		memset(&r, 0, sizeof(r));
		unsigned int ak = (unsigned int)rand_below(&s, 64);
		r.align = (vmem_size_t)1 << ak;
		r.phase = rand_below(&s, 3) == 0 ? 0 : (ak ? rand_next(&s) & (r.align - 1) : 0);
		/* size: small, about the segment, or random */
		switch (rand_below(&s, 3)) {
		case 0:
			r.size = 1 + rand_below(&s, 1u << 16);
			break;
		case 1:
			r.size = size - rand_below(&s, size < 64 ? size : 64);
			break;
		default:
			r.size = rand_next(&s) >> rand_below(&s, 64);
			break;
		}
		if (r.size == 0)
			r.size = 1;
		r.nocross = 0;
		if (rand_below(&s, 2)) {
			unsigned int k = 0;
			while (k < 63 && ((vmem_size_t)1 << k) < r.size)
				k++;
			if (((vmem_size_t)1 << k) >= r.size) {
				k += (unsigned int)rand_below(&s, 64 - k) / (rand_below(&s, 2) ? 1 : 8);
				r.nocross = (vmem_size_t)1 << k;
			}
		}
		r.minaddr = VMEM_ADDR_MIN;
		r.maxaddr = VMEM_ADDR_MAX;
		int mm = (int)rand_below(&s, 4);
		if (mm & 1)
			r.minaddr = start + rand_below(&s, size);
		if (mm & 2) {
			vmem_addr_t lo = r.minaddr > start ? r.minaddr : start;
			r.maxaddr = lo + rand_below(&s, (vmem_addr_t)(start + (size - 1) - lo) + 1);
			if (r.maxaddr < r.minaddr)
				r.maxaddr = r.minaddr;
		}
		vmem_addr_t a = 0;
		bool want = ref_fit(start, size, &r, &a);
		nfit += want;
		check_one(start, size, &r, want, a, "big");
	}
	assert_true(nfit > n / 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_vs_brute),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_small_brute),
		cmocka_unit_test(test_small_shifted_to_top),
		cmocka_unit_test(test_big_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
