/*
 * test_cluster3 - a 3-member etcd cluster loses one member:
 *   one_member_killed  two connections (leases of 3 s, prefetch 2) churn IDs
 *                      across blocks from two threads; leadership is moved to
 *                      member 0, the first in every endpoint list (the one
 *                      the connections talk to), and member 0 is killed: a
 *                      lost endpoint and an election at once.  Allocations go
 *                      on (over 300 in the 7 s after the kill), blocks keep
 *                      being claimed and released, no lease is lost, no ID
 *                      is held twice, and after close the two live members
 *                      hold no block key.
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

#define BLOCK 8
#define NBLOCKS 64
#define NIDS (BLOCK * NBLOCKS)

static atomic_uchar held[NIDS];
static atomic_int dups, stop;
static atomic_uint_least64_t allocs_total;

struct churner {
	vmem_t *vm;
	uint64_t allocs;
	pthread_t t;
};

static void *churn(void *arg)
{
	struct churner *c = arg;
	vmem_addr_t mine[3 * BLOCK];
	while (!atomic_load(&stop)) {
		/* cross a block boundary or more each round: claims and releases */
		for (int i = 0; i < 3 * BLOCK; i++) {
			if (vmem_alloc(c->vm, 1, VM_SLEEP, &mine[i]) != 0)
				return NULL; /* VM_SLEEP never fails: the test sees allocs stop */
			if (atomic_exchange(&held[mine[i]], 1))
				atomic_fetch_add(&dups, 1);
			c->allocs++;
			atomic_fetch_add(&allocs_total, 1);
		}
		for (int i = 0; i < 3 * BLOCK; i++) {
			atomic_store(&held[mine[i]], 0);
			vmem_free(c->vm, mine[i], 1);
		}
		h_sleep_ms(5); /* the point is etcd traffic, not CPU */
	}
	return NULL;
}

/* Member i's ID and the leader's, as etcd reports them (decimal strings). */
static bool member_status(int i, char *me, char *ld)
{
	json_t *st = h_post(&h_main, i, "/v3/maintenance/status", "{}");
	const char *l = json_string_value(json_object_get(st, "leader"));
	const char *m = json_string_value(json_object_get(json_object_get(st, "header"), "member_id"));
	bool ok = l && m;
	if (ok) {
		snprintf(me, 32, "%s", m);
		snprintf(ld, 32, "%s", l);
	}
	json_decref(st);
	return ok;
}

/* The member etcd reports as leader, by its index; -1 if unknown. */
static int leader(void)
{
	for (int i = 0; i < h_main.n; i++) {
		char me[32], ld[32];
		if (h_main.m[i].pid > 0 && member_status(i, me, ld) && strcmp(me, ld) == 0)
			return i;
	}
	return -1;
}

/* Make member 0 the leader (MoveLeader, asked of the current leader). */
static void lead_from_member0(void)
{
	char id0[32], ld[32];
	assert_true(member_status(0, id0, ld));
	for (int tries = 0; tries < 50 && leader() != 0; tries++) {
		int cur = leader();
		if (cur > 0) {
			char body[96];
			snprintf(body, sizeof(body), "{\"targetID\":\"%s\"}", id0);
			json_decref(h_post(&h_main, cur, "/v3/maintenance/transfer-leadership", body));
		}
		h_sleep_ms(100);
	}
	assert_int_equal(leader(), 0);
}

static void one_member_killed(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = h_opts(&h_main);
	o.ttl_s = 3;
	o.prefetch = 2;
	o.timeout_ms = 700;
	assert_int_equal(vmem_etcd_pool_create(&o, "c3", 0, NIDS, BLOCK), 0);
	vmem_etcd_t *src[2];
	struct churner ch[2];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(vmem_etcd_open(&o, "c3", &src[i]), 0);
		ch[i] = (struct churner){.vm = vmem_create("c", 0, 0, 1, 0, VM_SLEEP)};
		assert_int_equal(vmem_etcd_attach(src[i], ch[i].vm), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&ch[i].t, NULL, churn, &ch[i]);
	assert_true(H_WAIT_FOR(atomic_load(&allocs_total) > 500, 10000));

	lead_from_member0();
	vmem_etcd_stats_t before[2];
	for (int i = 0; i < 2; i++) {
		before[i] = (vmem_etcd_stats_t){.size = sizeof(before[i])};
		vmem_etcd_get_stats(src[i], &before[i]);
	}
	h_kill_member(&h_main, 0);
	uint64_t a0 = atomic_load(&allocs_total);
	/* more than two lease TTLs of churn on two members */
	h_sleep_ms(7000);
	uint64_t a1 = atomic_load(&allocs_total);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(ch[i].t, NULL);
	print_message("%llu allocations after the kill\n", (unsigned long long)(a1 - a0));
	assert_true(a1 - a0 > 300);
	assert_int_equal(atomic_load(&dups), 0);
	for (int i = 0; i < 2; i++) {
		vmem_etcd_stats_t st = {.size = sizeof(st)};
		assert_int_equal(vmem_etcd_get_stats(src[i], &st), 0);
		print_message("connection %d: %llu failed requests, last error %d\n", i,
			      (unsigned long long)st.errors, st.last_error);
		assert_int_equal(st.lease_lost, 0);
		assert_true(st.claims > before[i].claims + 10);
		assert_true(st.releases > before[i].releases + 10);
		vmem_destroy(ch[i].vm);
		assert_int_equal(vmem_etcd_close(src[i]), 0);
	}
	/* the survivors agree: nothing left */
	assert_int_equal(h_count(&h_main, "/vmem/c3/blocks/"), 0);
	assert_true(leader() >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_member_killed),
	};
	return cmocka_run_group_tests_name("etcd_cluster3", tests, h_setup_three, h_teardown_main);
}
