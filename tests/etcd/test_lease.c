/*
 * test_lease - a lease lost by stalling etcd (SIGSTOP) past the TTL:
 *   lost_by_stall  the lease_lost callback runs exactly once, from another
 *                  thread, within the TTL and a margin; stats show
 *                  lease_lost; an allocation that needs a block fails with
 *                  ENOMEM and last_error ENOLINK, while IDs from the block
 *                  already held are still handed out; once etcd runs again
 *                  the connection sends no request at all (imports, close)
 *                  and the callback is not called again; etcd has dropped
 *                  the block keys of the lease
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd_impl.h"
#include "harness.h"

#define BLOCK 16

static atomic_int lost_calls;
static pthread_t lost_thread;
static atomic_uint_least64_t lost_at;
static atomic_int lost_wrong_arg;

/* no cmocka assertion here: this runs on the keepalive thread */
static void on_lost(void *arg)
{
	if (arg != &lost_calls)
		atomic_store(&lost_wrong_arg, 1);
	lost_thread = pthread_self();
	atomic_store(&lost_at, h_now_ms());
	atomic_fetch_add(&lost_calls, 1);
}

static void lost_by_stall(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = h_opts(&h_main);
	o.ttl_s = 2;
	o.timeout_ms = 500;
	o.lease_lost = on_lost;
	o.lease_lost_arg = &lost_calls;
	assert_int_equal(vmem_etcd_pool_create(&o, "stall", 0, BLOCK * 8, BLOCK), 0);
	vmem_etcd_t *src;
	assert_int_equal(vmem_etcd_open(&o, "stall", &src), 0);
	vmem_t *vm = vmem_create("s", 0, 0, 1, 0, 0);
	assert_int_equal(vmem_etcd_attach(src, vm), 0);
	vmem_addr_t a, b;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	/* the lease is kept alive well past its TTL while etcd runs */
	h_sleep_ms(3000);
	assert_int_equal(atomic_load(&lost_calls), 0);
	assert_int_equal(h_count(&h_main, "/vmem/stall/blocks/"), 1);

	uint64_t t0 = h_now_ms();
	h_pause_member(&h_main, 0);
	assert_true(H_WAIT_FOR(atomic_load(&lost_calls) > 0, 6000));
	uint64_t after = atomic_load(&lost_at) - t0;
	print_message("lease declared lost %llu ms after etcd stalled\n", (unsigned long long)after);
	assert_true(after <= 2000 + 1000);
	assert_false(pthread_equal(lost_thread, pthread_self()));
	assert_int_equal(atomic_load(&lost_wrong_arg), 0);
	vmem_etcd_stats_t st = {.size = sizeof(st)};
	assert_int_equal(vmem_etcd_get_stats(src, &st), 0);
	assert_int_equal(st.lease_lost, 1);

	/* fenced: no new block, no request */
	uint64_t r0 = vmem_etcd_requests(src);
	assert_int_equal(vmem_alloc(vm, BLOCK, VM_NOSLEEP, &b), ENOMEM);
	assert_int_equal(vmem_etcd_get_stats(src, &st), 0);
	assert_int_equal(st.last_error, ENOLINK);
	/* the block already held still serves */
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &b), 0);
	assert_int_equal(b / BLOCK, a / BLOCK);

	h_resume_member(&h_main, 0);
	/* etcd, running again, drops the expired lease and its keys */
	assert_true(H_WAIT_FOR(h_count(&h_main, "/vmem/stall/blocks/") == 0, 5000));
	for (int i = 0; i < 20; i++) {
		vmem_addr_t x;
		assert_int_equal(vmem_alloc(vm, 2 * BLOCK, VM_NOSLEEP, &x), ENOMEM);
	}
	h_sleep_ms(500);
	assert_int_equal(vmem_etcd_requests(src), r0);
	assert_int_equal(atomic_load(&lost_calls), 1);
	vmem_free(vm, a, 1);
	vmem_free(vm, b, 1);
	vmem_destroy(vm);
	assert_int_equal(vmem_etcd_requests(src), r0);
	assert_int_equal(vmem_etcd_close(src), 0);
	assert_int_equal(atomic_load(&lost_calls), 1);
	assert_int_equal(h_count(&h_main, "/vmem/stall/blocks/"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lost_by_stall),
	};
	return cmocka_run_group_tests_name("etcd_lease", tests, h_setup_one, h_teardown_main);
}
