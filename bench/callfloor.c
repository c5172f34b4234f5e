/*
 * callfloor.c - baseline (g) of vmem-bench: a shared library whose alloc
 * and free have vmem_alloc's and vmem_free's signatures and checks but do
 * no work.  A pair of calls into it is the floor of any allocator that a
 * program calls through the PLT, as it calls libvmem (and glibc's malloc).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define CALLFLOOR_API __attribute__((visibility("default")))

CALLFLOOR_API int callfloor_alloc(void *arena, uint64_t size, int flags, uint64_t *addrp);
CALLFLOOR_API int callfloor_free(void *arena, uint64_t addr, uint64_t size);

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
