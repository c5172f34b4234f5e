/*
 * import.c - the README's second snippet, checked: a page arena that
 * imports constrained spans from a parent address-space arena.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdio.h>

#include <vmem.h>

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "import: %s failed (line %d)\n", #cond, __LINE__); \
			return 1;                                            \
		}                                                            \
	} while (0)

int main(void)
{
	/* The parent owns 1 GiB of address space, in pages. */
	vmem_t *space = vmem_create("space", 0x40000000, 1ull << 30, 4096, 0, 0);
	/* The child takes spans of at least 2 MiB from it, as it needs them. */
	vmem_t *heap = vmem_create("heap", 0, 0, 4096, 16 * 4096, 0);
	CHECK(space != NULL && heap != NULL);
	CHECK(vmem_set_source(heap, space, 2 << 20) == 0);

	vmem_addr_t a;
	int err = vmem_xalloc(heap, 65536, 65536, 0, 1 << 20, 0x40000000,
			      0x40000000 + (512u << 20) - 1, VM_NOSLEEP | VM_BESTFIT, &a);
	CHECK(err == 0);
	CHECK(a % 65536 == 0 && a >= 0x40000000 && a + 65535 <= 0x40000000 + (512u << 20) - 1);
	CHECK(a >> 20 == (a + 65535) >> 20);
	CHECK(vmem_size(space, VMEM_ALLOC) >= 65536);
	printf("heap got [%#llx, +64 KiB); space lent %llu bytes\n", (unsigned long long)a,
	       (unsigned long long)vmem_size(space, VMEM_ALLOC));

	CHECK(vmem_xfree(heap, a, 65536) == 0);
	CHECK(vmem_size(space, VMEM_ALLOC) == 0); /* the span went straight back */
	CHECK(vmem_size(heap, VMEM_ALLOC | VMEM_FREE) == 0);

	vmem_destroy(heap); /* children first */
	vmem_destroy(space);
	printf("import: ok\n");
	return 0;
}
