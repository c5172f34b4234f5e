/*
 * Unit test of tagslab.c: reservation, growth that keeps every tag, a
 * failed growth that changes nothing, and whole operations that fail for
 * want of tags leaving the arena exactly as it was.
 */
#include <errno.h>
#include <string.h>

#include "helpers.h"
#include "vmem_impl.h"

TEST(test_tagslab_grow_keeps_tags)
{
	vmem_t *vm = vmem_create("slab", 0, 0, 1, 0, 0);
	pthread_mutex_lock(&vm->arena.lock);
	uint32_t cap0 = vm->arena.bt_cap, n = cap0 * 5;
	static bt_idx got[100000];
	assert_true(n < 100000);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(tagslab_reserve(&vm->arena, 1), 0);
		got[i] = tagslab_get(&vm->arena);
		BT(&vm->arena, got[i])->start = 0x5eed0000u + i;
		BT(&vm->arena, got[i])->type = BT_BUSY;
	}
	assert_true(vm->arena.bt_cap > cap0);
	for (uint32_t i = 0; i < n; i++) {
		assert_true(got[i] >= BT_FIRST && got[i] < vm->arena.bt_cap);
		assert_int_equal(BT(&vm->arena, got[i])->start, 0x5eed0000u + i);
	}
	for (uint32_t i = 0; i < n; i++)
		tagslab_put(&vm->arena, got[i]);
	assert_int_equal(vm->arena.bt_nunused, vm->arena.bt_cap - BT_FIRST);
	pthread_mutex_unlock(&vm->arena.lock);
	CHECK_AND_DESTROY(vm);
}

TEST(test_tagslab_reserve_fails)
{
	vmem_t *vm = vmem_create("slabfail", 0, 0, 1, 0, 0);
	pthread_mutex_lock(&vm->arena.lock);
	uint32_t cap = vm->arena.bt_cap, unused = vm->arena.bt_nunused;
	os_fault_after(1);
	assert_int_equal(tagslab_reserve(&vm->arena, unused + 1), ENOMEM);
	os_fault_after(0);
	assert_int_equal(vm->arena.bt_cap, cap);
	assert_int_equal(vm->arena.bt_nunused, unused);
	assert_int_equal(tagslab_reserve(&vm->arena, unused + 1), 0);
	assert_true(vm->arena.bt_cap > cap);
	pthread_mutex_unlock(&vm->arena.lock);
	CHECK_AND_DESTROY(vm);
}

/* Exhaust the tag reserve, then make every mapping fail: an operation that
 * needs one or two new tags must fail whole, never half a split. */
TEST(test_no_half_split)
{
	vmem_t *vm = vmem_create("split", 0x1000, 1 << 20, 16, 0, 0);
	vmem_addr_t a;
	/* use up every spare tag */
	while (vm->arena.bt_nunused > 0)
		assert_int_equal(vmem_alloc(vm, 16, VM_NOSLEEP, &a), 0);
	CHECK_ARENA(vm);
	for (int kind = 0; kind < 4; kind++) {
		struct snapshot before;
		snapshot_take(vm, &before);
		os_fault_after(1);
		int err;
		switch (kind) {
		case 0: /* lead 0, trail > 0: one tag */
			err = vmem_alloc(vm, 32, VM_NOSLEEP, &a);
			break;
		case 1: /* lead and trail: two tags */
			err = vmem_xalloc(vm, 16, 4096, 0, 0, 0, VMEM_ADDR_MAX, VM_FIRSTFIT, &a);
			break;
		case 2: /* a new span: two tags */
			err = vmem_add(vm, 1 << 24, 1 << 12, VM_NOSLEEP);
			break;
		default: /* next fit from the middle */
			err = vmem_xalloc(vm, 48, 64, 16, 0, 0x80000, VMEM_ADDR_MAX, VM_NEXTFIT, &a);
			break;
		}
		os_fault_after(0);
		if (err != ENOMEM)
			fail_msg("kind %d: err %d", kind, err);
		/* vmem_add's ENOMEM is not an allocation failure */
		EXPECT_UNCHANGED(vm, &before, kind != 2, "a call short of tags");
	}
	vmem_destroy(vm);
}

TEST(test_mapped_bytes_return)
{
	size_t base = os_mapped_bytes();
	for (int round = 0; round < 200; round++) {
		vmem_t *vm = vmem_create("cycle", 0, 1 << 24, 1, 0, 0);
		vmem_addr_t a;
		for (int i = 0; i < 3000; i++)
			assert_int_equal(vmem_alloc(vm, 1 + (vmem_size_t)(i % 7), VM_NOSLEEP, &a), 0);
		assert_true(os_mapped_bytes() > base);
		vmem_destroy(vm);
		assert_int_equal(os_mapped_bytes(), base);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tagslab_grow_keeps_tags),
		cmocka_unit_test(test_tagslab_reserve_fails),
		cmocka_unit_test(test_no_half_split),
		cmocka_unit_test(test_mapped_bytes_return),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
