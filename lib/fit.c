/*
 * fit.c - the pure fit function: where in a free segment a constrained
 * request can start.  All arithmetic is on inclusive last units, so a
 * segment that ends at 2^64 needs no special case and nothing wraps.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "arena_impl.h"

/* Smallest a >= lo with a % align == phase; false if it would pass 2^64. */
static inline bool fit_phase(vmem_addr_t lo, const struct fitreq *r, vmem_addr_t *ap)
{
	vmem_addr_t a = lo + ((r->phase - lo) & (r->align - 1));
	if (a < lo)
		return false;
	*ap = a;
	return true;
}

static inline bool fit_crosses(vmem_addr_t a, vmem_size_t n1, vmem_size_t nocross)
{
	return nocross != 0 && ((a ^ (a + n1)) & ~(nocross - 1)) != 0;
}

bool fit(vmem_addr_t start, vmem_size_t size, const struct fitreq *r, vmem_addr_t *addrp)
{
	vmem_addr_t lo = start > r->minaddr ? start : r->minaddr;
	vmem_addr_t last = start + (size - 1);
	vmem_addr_t hi = last < r->maxaddr ? last : r->maxaddr; /* last usable unit */
	vmem_size_t n1 = r->size - 1;
	vmem_addr_t a;

	if (lo > hi || hi - lo < n1)
		return false;
	if (!fit_phase(lo, r, &a) || a > hi || hi - a < n1)
		return false;
	if (fit_crosses(a, n1, r->nocross)) {
		/* every candidate below the next block boundary crosses it too,
		 * and a block that fails fails the same way in every later block */
		vmem_addr_t next = (a | (r->nocross - 1)) + 1;
		if (next == 0 || !fit_phase(next, r, &a) || a > hi || hi - a < n1 ||
		    fit_crosses(a, n1, r->nocross))
			return false;
	}
	*addrp = a;
	return true;
}
