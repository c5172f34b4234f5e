/*
 * test_outage - etcd stopped and started again, one real member:
 *   stopped_then_back  with etcd killed, allocations go on from the blocks
 *                      held; an allocation that needs a block fails with
 *                      ENOMEM and last_error ECONNREFUSED; 300 such attempts
 *                      over 3 s send at most 15 requests (the backoff); a
 *                      freed block's release is kept (pending_releases 1,
 *                      still in blocks_held) through the outage; a leased
 *                      connection does not lose its lease.  Once etcd is
 *                      back the release goes through, its key is gone,
 *                      allocation needing new blocks works, and after close
 *                      no block key is left.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd_impl.h"
#include "harness.h"

#define BLOCK 16

static void stopped_then_back(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = h_opts(&h_main);
	o.timeout_ms = 500;
	assert_int_equal(vmem_etcd_pool_create(&o, "out", 0, BLOCK * 64, BLOCK), 0);
	vmem_etcd_t *src, *leased;
	vmem_t *vm, *vl;
	assert_int_equal(h_open_arena(&o, "out", &src, &vm), 0);
	vmem_etcd_opts_t ol = o;
	ol.ttl_s = 10;
	assert_int_equal(h_open_arena(&ol, "out", &leased, &vl), 0);
	vmem_addr_t ids[2 * BLOCK], lid;
	for (int i = 0; i < BLOCK + 4; i++)
		assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &ids[i]), 0);
	assert_int_equal(vmem_alloc(vl, 1, VM_NOSLEEP, &lid), 0);
	assert_int_equal(H_STATS(src).blocks_held, 2);

	h_kill_member(&h_main, 0);

	/* the rest of the two blocks held */
	for (int i = BLOCK + 4; i < 2 * BLOCK; i++)
		assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &ids[i]), 0);
	/* a third block cannot be had */
	uint64_t r0 = vmem_etcd_requests(src);
	vmem_addr_t x;
	int enomem = 0;
	uint64_t until = h_now_ms() + 3000;
	while (h_now_ms() < until) {
		enomem += vmem_alloc(vm, 1, VM_NOSLEEP, &x) == ENOMEM;
		h_sleep_ms(10);
	}
	uint64_t sent = vmem_etcd_requests(src) - r0;
	print_message("%d failed allocations in 3 s of outage sent %llu requests\n", enomem,
		      (unsigned long long)sent);
	assert_true(enomem > 100);
	assert_true(sent >= 2 && sent <= 15);
	vmem_etcd_stats_t st = H_STATS(src);
	assert_int_equal(st.last_error, ECONNREFUSED);
	assert_true(st.errors >= 2);

	/* free the first block: its release cannot reach etcd and is kept */
	vmem_addr_t blk = ids[0] - ids[0] % BLOCK;
	for (int i = 0; i < 2 * BLOCK; i++)
		if (ids[i] / BLOCK == blk / BLOCK)
			assert_int_equal(vmem_free(vm, ids[i], 1), 0);
	h_sleep_ms(1500);
	st = H_STATS(src);
	assert_int_equal(st.pending_releases, 1);
	assert_int_equal(st.blocks_held, 2);
	assert_int_equal(st.releases, 0);

	assert_int_equal(h_restart_member(&h_main, 0), 0);
	assert_true(H_WAIT_FOR(H_STATS(src).pending_releases == 0, 8000));
	st = H_STATS(src);
	assert_int_equal(st.blocks_held, 1);
	assert_int_equal(st.releases, 1);
	char key[64];
	snprintf(key, sizeof(key), "/vmem/out/blocks/%016llx", (unsigned long long)(blk / BLOCK));
	json_t *keys = h_keys(&h_main, "/vmem/out/blocks/");
	assert_int_equal(json_array_size(keys), 2); /* the other block and the leased one */
	for (size_t i = 0; i < json_array_size(keys); i++)
		assert_string_not_equal(
			json_string_value(json_object_get(json_array_get(keys, i), "key")), key);
	json_decref(keys);

	/* new blocks again */
	vmem_addr_t more[2 * BLOCK];
	for (int i = 0; i < 2 * BLOCK; i++)
		assert_int_equal(vmem_alloc(vm, 1, VM_SLEEP, &more[i]), 0);
	vmem_etcd_stats_t sl = H_STATS(leased);
	assert_int_equal(sl.lease_lost, 0);
	assert_int_equal(sl.blocks_held, 1);

	for (int i = 0; i < 2 * BLOCK; i++) {
		if (ids[i] / BLOCK != blk / BLOCK)
			vmem_free(vm, ids[i], 1);
		vmem_free(vm, more[i], 1);
	}
	vmem_free(vl, lid, 1);
	assert_int_equal(h_close_arena(src, vm), 0);
	assert_int_equal(h_close_arena(leased, vl), 0);
	assert_int_equal(h_count(&h_main, "/vmem/out/blocks/"), 0);
}

/* Close while etcd is down: it waits timeout_ms, then ETIMEDOUT. */
static void close_while_down(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = h_opts(&h_main);
	o.timeout_ms = 700;
	o.owner = "closer";
	assert_int_equal(vmem_etcd_pool_create(&o, "down", 0, BLOCK * 4, BLOCK), 0);
	vmem_etcd_t *src;
	vmem_t *vm;
	assert_int_equal(h_open_arena(&o, "down", &src, &vm), 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	h_kill_member(&h_main, 0);
	vmem_free(vm, a, 1);
	vmem_destroy(vm);
	uint64_t t0 = h_now_ms();
	assert_int_equal(vmem_etcd_close(src), ETIMEDOUT);
	uint64_t took = h_now_ms() - t0;
	assert_true(took >= 600 && took < 3000);
	assert_int_equal(h_restart_member(&h_main, 0), 0);
	/* the block stays under its owner until vmem-pool release */
	assert_int_equal(h_count(&h_main, "/vmem/down/blocks/"), 1);
	assert_int_equal(h_count_owned(&h_main, "down", "closer"), 1);
	assert_int_equal(h_tool(&h_main, NULL, 0, "release down --owner closer"), 0);
	assert_int_equal(h_count(&h_main, "/vmem/down/blocks/"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stopped_then_back),
		cmocka_unit_test(close_while_down),
	};
	return cmocka_run_group_tests_name("etcd_outage", tests, h_setup_one, h_teardown_main);
}
