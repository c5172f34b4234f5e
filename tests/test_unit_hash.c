/*
 * Unit test of hash.c: allocated-segment lookup through growth and
 * shrinkage, absent keys, and a resize whose mapping fails.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "vmem_impl.h"

#define N 20000

static bt_idx tags[N];
static vmem_addr_t keys[N];

static void add(vmem_t *vm, int k, vmem_addr_t key)
{
	assert_int_equal(tagslab_reserve(&vm->arena, 1), 0);
	bt_idx t = tagslab_get(&vm->arena);
	struct bt *b = BT(&vm->arena, t);
	b->type = BT_BUSY;
	b->start = key;
	b->size = 1;
	hash_insert(&vm->arena, t);
	tags[k] = t;
	keys[k] = key;
}

static void del(vmem_t *vm, int k)
{
	bt_idx *link;
	assert_int_equal(hash_find(&vm->arena, keys[k], &link), tags[k]);
	hash_unlink(&vm->arena, link, tags[k]);
	/* as the arena's free does: the shrink is the caller's */
	if (vm->arena.nalloc < vm->arena.hash_shrink)
		hash_resize(&vm->arena);
	tagslab_put(&vm->arena, tags[k]);
	tags[k] = BT_NIL;
}

TEST(test_hash_grow_shrink)
{
	uint64_t seed = test_seed(7);
	vmem_t *vm = vmem_create("hash", 0, 0, 4096, 0, 0);
	pthread_mutex_lock(&vm->arena.lock);
	size_t min_bytes = vm->arena.hash_bytes;
	for (int k = 0; k < N; k++)
		/* distinct page-aligned keys, spread over all 64 bits */
		add(vm, k, (rand_next(&seed) & ~0xfffffffull) | (vmem_addr_t)k << 12);
	assert_true(vm->arena.hash_bytes > min_bytes);
	assert_int_equal(vm->arena.nalloc, N);
	assert_true(vm->arena.nalloc <= vm->arena.hash_mask + 1);
	for (int k = 0; k < N; k++)
		assert_int_equal(hash_lookup(&vm->arena, keys[k]), tags[k]);
	for (int k = 0; k < 1000; k++) {
		vmem_addr_t absent = (rand_next(&seed) | 1) << 12 | 0xfff000;
		bt_idx i = hash_lookup(&vm->arena, absent);
		assert_true(i == BT_NIL || BT(&vm->arena, i)->start == absent);
	}
	for (int k = 0; k < N; k += 2)
		del(vm, k);
	for (int k = 1; k < N; k += 2)
		assert_int_equal(hash_lookup(&vm->arena, keys[k]), tags[k]);
	for (int k = 0; k < N; k += 2)
		assert_int_equal(hash_lookup(&vm->arena, keys[k]), BT_NIL);
	for (int k = 1; k < N; k += 2)
		del(vm, k);
	assert_int_equal(vm->arena.nalloc, 0);
	assert_int_equal(vm->arena.hash_bytes, min_bytes);
	pthread_mutex_unlock(&vm->arena.lock);
	CHECK_AND_DESTROY(vm);
}

/* A growth that cannot map its new table keeps the old one and loses nothing. */
TEST(test_hash_resize_fails)
{
	vmem_t *vm = vmem_create("hashfail", 0, 1 << 20, 1, 0, 0);
	size_t bytes = vm->arena.hash_bytes;
	uint64_t nb = vm->arena.hash_mask + 1;
	vmem_addr_t a;
	/* fill up to the growth threshold, with tags reserved beforehand */
	pthread_mutex_lock(&vm->arena.lock);
	assert_int_equal(tagslab_reserve(&vm->arena, (uint32_t)(4 * nb + 8)), 0);
	pthread_mutex_unlock(&vm->arena.lock);
	for (uint64_t i = 0; i < nb; i++)
		assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(vm->arena.hash_bytes, bytes);
	os_fault_after(1);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0); /* the resize failed */
	os_fault_after(0);
	assert_int_equal(vm->arena.hash_bytes, bytes);
	CHECK_ARENA(vm);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0); /* now it grows */
	assert_true(vm->arena.hash_bytes > bytes);
	CHECK_AND_DESTROY(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_grow_shrink),
		cmocka_unit_test(test_hash_resize_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
