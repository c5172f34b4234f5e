/*
 * test_sigkill - a process killed with SIGKILL, against one real etcd member:
 *   leased_blocks_return  with a 2 s lease, the dead process's 3 blocks are
 *                         gone from etcd within the TTL etcd granted (plus
 *                         1.5 s of slack), and another connection can
 *                         claim the whole pool again
 *   unleased_blocks_stay  without a lease they are still there well past
 *                         that, until `vmem-pool release POOL --owner NAME`
 *                         hands them back; another owner's block is untouched
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
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
#define NBLOCKS 4

static atomic_int *ready;

struct victim {
	const char *pool, *owner;
	uint32_t ttl;
};

/* Claim 3 blocks, say so, and wait to be killed. */
static int victim(void *arg)
{
	const struct victim *v = arg;
	vmem_etcd_opts_t o = h_opts_owner(&h_main, v->owner, v->ttl);
	vmem_etcd_t *src;
	vmem_t *vm;
	if (h_open_arena(&o, v->pool, &src, &vm) != 0)
		return 10;
	vmem_addr_t a;
	if (vmem_alloc(vm, 3 * BLOCK, VM_NOSLEEP, &a) != 0)
		return 12;
	atomic_store(ready, 1);
	for (;;)
		h_sleep_ms(1000);
}

/* Create the pool (NBLOCKS blocks) and start its victim. */
static pid_t start_victim(const char *pool, const char *owner, uint32_t ttl)
{
	vmem_etcd_opts_t o = h_opts(&h_main);
	assert_int_equal(vmem_etcd_pool_create(&o, pool, 0, BLOCK * NBLOCKS, BLOCK), 0);
	if (ready == NULL) {
		ready = h_share(sizeof(*ready));
		assert_non_null(ready);
	}
	atomic_store(ready, 0);
	struct victim v = {pool, owner, ttl};
	pid_t pid = h_fork(victim, &v);
	assert_true(pid > 0);
	assert_true(H_WAIT_FOR(atomic_load(ready), 10000));
	return pid;
}

static void leased_blocks_return(void **state)
{
	(void)state;
	pid_t pid = start_victim("leased", "doomed", 2);
	assert_int_equal(h_count(&h_main, "/vmem/leased/blocks/"), 3);
	json_t *keys = h_keys(&h_main, "/vmem/leased/blocks/");
	const char *lease_hex = json_string_value(json_object_get(json_array_get(keys, 0), "lease"));
	assert_string_not_equal(lease_hex, "0");
	/* the TTL etcd granted (it may raise a short one to its minimum) */
	char body[128];
	snprintf(body, sizeof(body), "{\"ID\":\"%s\"}", lease_hex);
	json_t *ttl = h_post(&h_main, 0, "/v3/kv/lease/timetolive", body);
	if (ttl == NULL)
		ttl = h_post(&h_main, 0, "/v3/lease/timetolive", body);
	assert_non_null(ttl);
	long granted = atol(json_string_value(json_object_get(ttl, "grantedTTL")));
	assert_true(granted >= 2);
	json_decref(ttl);
	json_decref(keys);

	uint64_t t0 = h_now_ms();
	kill(pid, SIGKILL);
	assert_int_equal(h_wait(pid), 128 + SIGKILL);
	assert_true(H_WAIT_FOR(h_count(&h_main, "/vmem/leased/blocks/") == 0,
			       (unsigned)granted * 1000 + 1500));
	print_message("blocks back %llu ms after the kill (granted TTL %ld s)\n",
		      (unsigned long long)(h_now_ms() - t0), granted);

	/* the whole pool can be claimed again */
	vmem_etcd_opts_t o = h_opts(&h_main);
	vmem_etcd_t *src;
	vmem_t *vm;
	assert_int_equal(h_open_arena(&o, "leased", &src, &vm), 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, BLOCK * NBLOCKS, VM_NOSLEEP, &a), 0);
	vmem_free(vm, a, BLOCK * NBLOCKS);
	assert_int_equal(h_close_arena(src, vm), 0);
	assert_int_equal(h_count(&h_main, "/vmem/leased/blocks/"), 0);
}

static void unleased_blocks_stay(void **state)
{
	(void)state;
	/* the victim first: fork while this process runs no connection's thread */
	pid_t pid = start_victim("kept", "crashed-worker", 0);
	/* a bystander holds the fourth block */
	vmem_etcd_opts_t ob = h_opts_owner(&h_main, "bystander", 0);
	vmem_etcd_t *by;
	vmem_t *vb;
	assert_int_equal(h_open_arena(&ob, "kept", &by, &vb), 0);
	vmem_addr_t b;
	assert_int_equal(vmem_alloc(vb, 1, VM_NOSLEEP, &b), 0);
	kill(pid, SIGKILL);
	assert_int_equal(h_wait(pid), 128 + SIGKILL);
	h_sleep_ms(3500); /* longer than a 2 s lease would have taken */
	assert_int_equal(h_count(&h_main, "/vmem/kept/blocks/"), 4);

	char out[4096];
	assert_int_equal(h_tool(&h_main, out, sizeof(out), "show kept"), 0);
	assert_non_null(strstr(out, "owner crashed-worker: 3 blocks"));
	assert_int_equal(h_tool(&h_main, out, sizeof(out), "release kept --owner crashed-worker"), 0);
	assert_non_null(strstr(out, "released 3 blocks"));
	assert_int_equal(h_count(&h_main, "/vmem/kept/blocks/"), 1);
	assert_int_equal(h_count_owned(&h_main, "kept", "bystander"), 1);
	vmem_free(vb, b, 1);
	assert_int_equal(h_close_arena(by, vb), 0);
	assert_int_equal(h_count(&h_main, "/vmem/kept/blocks/"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(leased_blocks_return),
		cmocka_unit_test(unleased_blocks_stay),
	};
	return cmocka_run_group_tests_name("etcd_sigkill", tests, h_setup_one, h_teardown_main);
}
