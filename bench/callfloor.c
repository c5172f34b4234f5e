/*
 * callfloor.c - baseline (g) of vmem-bench: a shared library whose alloc
 * and free have vmem_alloc's and vmem_free's signatures and checks but do
 * no work.  A pair of calls into it is the floor of any allocator that a
 * program calls through the PLT, as it calls libvmem (and glibc's malloc).
 *
 * callfloor_free_atomic is the same free with one atomic compare-and-
 * exchange on a byte, baseline (h): the least an exact check of frees can
 * cost in a process with more than one thread, where two threads may free
 * the same ID at once and only an atomic read-modify-write lets exactly
 * one of them succeed.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CALLFLOOR_API __attribute__((visibility("default")))

CALLFLOOR_API int callfloor_alloc(void *arena, uint64_t size, int flags, uint64_t *addrp);
CALLFLOOR_API int callfloor_free(void *arena, uint64_t addr, uint64_t size);
CALLFLOOR_API int callfloor_free_atomic(void *arena, uint64_t addr, uint64_t size);

int callfloor_alloc(void *arena, uint64_t size, int flags, uint64_t *addrp)
{
	if (arena == NULL || addrp == NULL || size == 0 || flags < 0)
		return EINVAL;
	*addrp = size; /* an address the caller can hand back */
	return 0;
}

int callfloor_free(void *arena, uint64_t addr, uint64_t size)
{
	if (arena == NULL || size == 0)
		return EINVAL;
	return addr == size ? 0 : EINVAL;
}

int callfloor_free_atomic(void *arena, uint64_t addr, uint64_t size)
{
	if (arena == NULL || size == 0)
		return EINVAL;
	/* the arena is a byte per size: turn "held" (0) into "freed" (1),
	 * and back, as a checked free and the allocation after it would */
	uint8_t *state = (uint8_t *)arena + (size & 15);
	uint8_t held = 0;
	if (!__atomic_compare_exchange_n(state, &held, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return EINVAL;
	__atomic_store_n(state, 0, __ATOMIC_RELAXED);
	return addr == size ? 0 : EINVAL;
}
