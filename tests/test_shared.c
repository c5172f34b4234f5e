/*
 * test_shared.c - what an outside program sees: only <vmem.h> and the
 * shared library.  A small end-to-end run; exit 0 on success, 1 with a
 * message otherwise.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "test_shared: %s:%d: check failed: %s\n", __FILE__,        \
				__LINE__, #cond);                                                  \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static int stats(vmem_t *vm, vmem_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return vmem_get_stats(vm, st);
}

int main(void)
{
	vmem_stats_t st;
	vmem_addr_t a[5], x;
	static const int pol[5] = { VM_FIRSTFIT, 0, VM_INSTANTFIT, VM_BESTFIT, VM_NEXTFIT };

	CHECK(strcmp(vmem_version(), "1.0.0") == 0);

	vmem_t *vm = vmem_create("shared", 0x1000, 0x100000, 16, 64, 0);
	if (vm == NULL) {
		fprintf(stderr, "test_shared: vmem_create failed: %s\n", strerror(errno));
		return 1;
	}
	CHECK(strcmp(vmem_name(vm), "shared") == 0);

	for (int i = 0; i < 5; i++) {
		CHECK(vmem_alloc(vm, 100, pol[i] | VM_NOSLEEP, &a[i]) == 0);
		CHECK(a[i] >= 0x1000 && a[i] + 112 <= 0x101000);
		CHECK(a[i] % 16 == 0);
	}
	CHECK(a[0] == 0x1000); /* first fit on a fresh arena: its start */
	CHECK(vmem_xalloc(vm, 48, 256, 32, 512, 0x2000, 0x8000, VM_BESTFIT, &x) == 0);
	CHECK(x % 256 == 32 && x >= 0x2000 && x + 47 <= 0x8000 && x / 512 == (x + 47) / 512);
	CHECK(vmem_size(vm, VMEM_ALLOC) == 5 * 112 + 48);
	CHECK(vmem_contains(vm, a[0], 112) == 1);
	CHECK(vmem_contains(vm, 0, 16) == 0);

	CHECK(stats(vm, &st) == 0);
	CHECK(st.allocs == 6 && st.frees == 0 && st.fails == 0);
	CHECK(st.span_total == 0x100000);
	CHECK(st.span_total == st.alloc_total + st.free_total);

	CHECK(vmem_alloc(vm, 0, 0, &x) == EINVAL);
	CHECK(vmem_alloc(vm, 0x200000, VM_NOSLEEP, &a[0]) == ENOMEM);
	CHECK(vmem_free(vm, a[1] + 16, 96) == EINVAL);

	for (int i = 0; i < 5; i++)
		CHECK(vmem_free(vm, a[i], 100) == 0);
	CHECK(vmem_xfree(vm, x, 48) == 0);
	vmem_reap(vm);
	CHECK(stats(vm, &st) == 0);
	CHECK(st.allocs == 6 && st.frees == 6 && st.fails == 1);
	CHECK(st.alloc_total == 0 && st.free_total == 0x100000);

	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	CHECK(fp != NULL);
	if (fp != NULL) {
		CHECK(vmem_dump(vm, fp) == 0);
		fclose(fp);
		CHECK(len >= 6 && memcmp(text, "shared", 6) == 0);
		free(text);
	}
	vmem_destroy(vm);

	errno = 0;
	CHECK(vmem_create("bad", 0, 16, 3, 0, 0) == NULL && errno == EINVAL);

	if (failures) {
		fprintf(stderr, "test_shared: %d check(s) failed\n", failures);
		return 1;
	}
	return 0;
}
