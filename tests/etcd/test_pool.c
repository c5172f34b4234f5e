/*
 * test_pool - pools and their keys, against one real etcd member:
 *   key_layout         the exact keys and JSON values, read raw through the gateway
 *   create_idempotent  the same parameters again: 0; other parameters: EEXIST
 *   config_garbage     a config overwritten with garbage: EPROTO from create and open
 *   missing_pool       ENOENT from open and destroy
 *   bad_options        EINVAL for every bad argument, and nothing written
 *   top_of_range       a pool ending exactly at 2^64 hands out its last block
 *   attach_checks      quantum not dividing the block: EINVAL; after allocating: EBUSY
 *   destroy_busy       EBUSY while a block is held; ENOENT after
 *   destroy_vs_claims  no block is ever claimed in a destroyed pool, with claims racing
 *   request_errors     ECONNREFUSED, ETIMEDOUT, EPROTO; a dead endpoint first in the list
 *   vmem_pool_tool     vmem-pool: create/show/--json/release/destroy and exit statuses
 *   release_guarded    an owner's release deletes only keys that still name it: after
 *                      an operator's release another owner claims the same blocks,
 *                      and the first owner's late release leaves them alone
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "etcd_impl.h"
#include "harness.h"


static vmem_etcd_opts_t opts(const char *prefix, const char *owner, uint32_t ttl)
{
	vmem_etcd_opts_t o = h_opts_owner(&h_main, owner, ttl);
	o.prefix = prefix;
	return o;
}

/* A field ("value" or "lease") of key in an h_keys() list; NULL if absent. */
static const char *field_of(json_t *keys, const char *key, const char *field)
{
	size_t i;
	json_t *kv;
	json_array_foreach(keys, i, kv)
	{
		if (strcmp(json_string_value(json_object_get(kv, "key")), key) == 0)
			return json_string_value(json_object_get(kv, field));
	}
	return NULL;
}
#define value_of(keys, key) field_of(keys, key, "value")
#define lease_of(keys, key) field_of(keys, key, "lease")

/* The one key under prefix is pool's config, and its value is want. */
static void config_is(const char *prefix, const char *pool, const char *want)
{
	char key[128];
	snprintf(key, sizeof(key), "%s%s/config", prefix, pool);
	json_t *keys = h_keys(&h_main, prefix);
	assert_int_equal(json_array_size(keys), 1);
	assert_string_equal(value_of(keys, key), want);
	json_decref(keys);
}

/* Connections of owners a and b to pool (under prefix), each with an arena. */
static void open_two(const char *prefix, const char *pool, const char *a, const char *b,
		     vmem_etcd_t **src, vmem_t **vm)
{
	const char *owners[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		vmem_etcd_opts_t o = opts(prefix, owners[i], 0);
		assert_int_equal(h_open_arena(&o, pool, &src[i], &vm[i]), 0);
	}
}

/* An arena of quantum 1 attached to src. */
static vmem_t *arena(vmem_etcd_t *src)
{
	vmem_t *vm = vmem_create("ids", 0, 0, 1, 0, 0);
	assert_non_null(vm);
	assert_int_equal(vmem_etcd_attach(src, vm), 0);
	return vm;
}

static void key_layout(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/layout/", "alice", 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "p1", 0x1000, 64 * 16, 16), 0);
	config_is("/layout/", "p1", "{\"base\":\"4096\",\"size\":\"1024\",\"block\":\"16\"}");

	/* a run of 27 blocks: keys 0 to 0x1a, lowercase hex, no lease */
	vmem_etcd_t *src;
	vmem_t *vm;
	assert_int_equal(h_open_arena(&o, "p1", &src, &vm), 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 27 * 16, VM_NOSLEEP, &a), 0);
	assert_true(a >= 0x1000 && (a - 0x1000) % 16 == 0);
	uint64_t first = (a - 0x1000) / 16;
	assert_true(first + 27 <= 64);
	json_t *keys = h_keys(&h_main, "/layout/p1/blocks/");
	assert_int_equal(json_array_size(keys), 27);
	for (uint64_t i = first; i < first + 27; i++) {
		char key[64];
		snprintf(key, sizeof(key), "/layout/p1/blocks/%016" PRIx64, i);
		assert_non_null(value_of(keys, key));
		assert_string_equal(value_of(keys, key), "{\"owner\":\"alice\"}");
		assert_string_equal(lease_of(keys, key), "0");
	}
	json_decref(keys);
	vmem_etcd_stats_t st = H_STATS(src);
	assert_int_equal(st.blocks_held, 27);
	assert_int_equal(st.claims, 1);

	/* with a lease, keys carry it */
	vmem_etcd_opts_t ol = opts("/layout/", "bob", 5);
	vmem_etcd_t *src2;
	vmem_t *vm2;
	assert_int_equal(h_open_arena(&ol, "p1", &src2, &vm2), 0);
	vmem_addr_t b;
	assert_int_equal(vmem_alloc(vm2, 1, VM_NOSLEEP, &b), 0);
	char bkey[64];
	snprintf(bkey, sizeof(bkey), "/layout/p1/blocks/%016" PRIx64, (b - 0x1000) / 16);
	keys = h_keys(&h_main, "/layout/p1/blocks/");
	assert_int_equal(json_array_size(keys), 28);
	assert_string_equal(value_of(keys, bkey), "{\"owner\":\"bob\"}");
	assert_string_not_equal(lease_of(keys, bkey), "0");
	json_decref(keys);

	/* a freed run is released in the background, not on the caller's path */
	assert_int_equal(vmem_free(vm, a, 27 * 16), 0);
	assert_true(H_WAIT_FOR(h_count(&h_main, "/layout/p1/blocks/") == 1, 5000));
	assert_int_equal(h_close_arena(src, vm), 0);
	assert_int_equal(h_close_arena(src2, vm2), 0);
	assert_int_equal(h_count(&h_main, "/layout/p1/blocks/"), 0);

	/* the prefix is used verbatim: no '/' added */
	vmem_etcd_opts_t op = opts("bare", NULL, 0);
	assert_int_equal(vmem_etcd_pool_create(&op, "x", 0, 16, 16), 0);
	config_is("bare", "x", "{\"base\":\"0\",\"size\":\"16\",\"block\":\"16\"}");

	/* the default owner is <hostname>:<pid>:<n>, n counting this process's connections */
	assert_int_equal(h_open_arena(&op, "x", &src, &vm), 0);
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	keys = h_keys(&h_main, "barex/blocks/");
	char host[256], want[512];
	gethostname(host, sizeof(host));
	json_t *owner = json_loads(json_string_value(json_object_get(json_array_get(keys, 0), "value")), 0, NULL);
	snprintf(want, sizeof(want), "%s:%ld:", host, (long)getpid());
	const char *got = json_string_value(json_object_get(owner, "owner"));
	assert_non_null(got);
	assert_memory_equal(got, want, strlen(want));
	assert_int_equal(atoi(got + strlen(want)), 3); /* alice, bob, then this one */
	json_decref(owner);
	json_decref(keys);
	assert_int_equal(h_close_arena(src, vm), 0);
	assert_int_equal(vmem_etcd_pool_destroy(&op, "x"), 0);
	assert_int_equal(h_count(&h_main, "bare"), 0);
}

static void create_idempotent(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/idem/", NULL, 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "p", 100, 1000, 10), 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "p", 100, 1000, 10), 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "p", 101, 1000, 10), EEXIST);
	assert_int_equal(vmem_etcd_pool_create(&o, "p", 100, 2000, 10), EEXIST);
	assert_int_equal(vmem_etcd_pool_create(&o, "p", 100, 1000, 20), EEXIST);
	config_is("/idem/", "p", "{\"base\":\"100\",\"size\":\"1000\",\"block\":\"10\"}");
	/* another prefix is another namespace */
	vmem_etcd_opts_t o2 = opts("/idem2/", NULL, 0);
	assert_int_equal(vmem_etcd_pool_create(&o2, "p", 0, 10, 10), 0);
}

static void config_garbage(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/garbage/", NULL, 0);
	static const char *const bad[] = {
		"not json at all",
		"{\"base\":1,\"size\":\"16\",\"block\":\"16\"}", /* a number where a string belongs */
		"{\"size\":\"16\",\"block\":\"16\"}",             /* a field missing */
		"{\"base\":\"0\",\"size\":\"16\",\"block\":\"-1\"}",
		"{\"base\":\"0\",\"size\":\"18446744073709551616\",\"block\":\"16\"}",
		"{\"base\":\"0\",\"size\":\"16\",\"block\":\"0\"}", /* never valid */
		"[1,2,3]",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vmem_etcd_pool_create(&o, "g", 0, 16, 16), 0);
		assert_int_equal(h_put(&h_main, "/garbage/g/config", bad[i]), 0);
		vmem_etcd_t *src = (vmem_etcd_t *)&o;
		assert_int_equal(vmem_etcd_pool_create(&o, "g", 0, 16, 16), EPROTO);
		assert_int_equal(vmem_etcd_open(&o, "g", &src), EPROTO);
		assert_ptr_equal(src, (vmem_etcd_t *)&o); /* untouched on failure */
		/* a config that does not parse can still be destroyed */
		assert_int_equal(vmem_etcd_pool_destroy(&o, "g"), 0);
	}
	/* unknown fields are ignored */
	assert_int_equal(h_put(&h_main, "/garbage/u/config",
			       "{\"block\":\"16\",\"x\":[1],\"size\":\"32\",\"base\":\"0\"}"),
			 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "u", 0, 32, 16), 0);
	vmem_etcd_t *src;
	assert_int_equal(vmem_etcd_open(&o, "u", &src), 0);
	assert_int_equal(vmem_etcd_close(src), 0);
	/* a block key whose value is garbage is EPROTO for vmem-pool show, and
	 * stays taken for claims */
}

static void missing_pool(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/missing/", NULL, 0);
	vmem_etcd_t *src;
	assert_int_equal(vmem_etcd_open(&o, "nope", &src), ENOENT);
	assert_int_equal(vmem_etcd_pool_destroy(&o, "nope"), ENOENT);
	assert_int_equal(h_count(&h_main, "/missing/"), 0);
}

static void bad_options(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/bad/", NULL, 0);
	vmem_etcd_t *src;
	/* sizes: a struct smaller than version 1 */
	vmem_etcd_opts_t small = o;
	small.size = offsetof(vmem_etcd_opts_t, lease_lost_arg);
	assert_int_equal(vmem_etcd_pool_create(&small, "p", 0, 16, 16), EINVAL);
	assert_int_equal(vmem_etcd_open(&small, "p", &src), EINVAL);
	assert_int_equal(vmem_etcd_pool_destroy(&small, "p"), EINVAL);
	/* names */
	char longname[66];
	memset(longname, 'a', 65);
	longname[65] = '\0';
	const char *names[] = {"", longname, "a/b", "a b", "ü", "a:b", "*", NULL};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(vmem_etcd_pool_create(&o, names[i], 0, 16, 16), EINVAL);
		assert_int_equal(vmem_etcd_open(&o, names[i], &src), EINVAL);
		assert_int_equal(vmem_etcd_pool_destroy(&o, names[i]), EINVAL);
	}
	longname[64] = '\0'; /* 64 characters is the most, and fine */
	assert_int_equal(vmem_etcd_pool_create(&o, longname, 0, 16, 16), 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "Az09._-", 0, 16, 16), 0);
	/* geometry */
	assert_int_equal(vmem_etcd_pool_create(&o, "g", 0, 16, 0), EINVAL);
	assert_int_equal(vmem_etcd_pool_create(&o, "g", 0, 0, 16), EINVAL);
	assert_int_equal(vmem_etcd_pool_create(&o, "g", 0, 24, 16), EINVAL);
	assert_int_equal(vmem_etcd_pool_create(&o, "g", UINT64_MAX - 15, 32, 16), EINVAL);
	assert_int_equal(vmem_etcd_pool_create(&o, "g", UINT64_MAX, 2, 1), EINVAL);
	/* endpoints, TLS pairs, credentials */
	vmem_etcd_opts_t e = o;
	e.endpoints = "ftp://127.0.0.1:1";
	assert_int_equal(vmem_etcd_pool_create(&e, "g", 0, 16, 16), EINVAL);
	e.endpoints = "";
	assert_int_equal(vmem_etcd_open(&e, "g", &src), EINVAL);
	e.endpoints = "http://127.0.0.1:1,,";
	assert_int_equal(vmem_etcd_open(&e, "g", &src), EINVAL);
	e = o;
	e.cert_file = "/nonexistent.crt";
	assert_int_equal(vmem_etcd_open(&e, "g", &src), EINVAL);
	e = o;
	e.password = "pw";
	assert_int_equal(vmem_etcd_open(&e, "g", &src), EINVAL);
	e = o;
	e.owner = "";
	assert_int_equal(vmem_etcd_open(&e, "g", &src), EINVAL);
	assert_int_equal(vmem_etcd_open(&o, "g", NULL), EINVAL);
	/* stats */
	assert_int_equal(vmem_etcd_pool_create(&o, "s", 0, 16, 16), 0);
	assert_int_equal(vmem_etcd_open(&o, "s", &src), 0);
	vmem_etcd_stats_t st = {.size = offsetof(vmem_etcd_stats_t, last_error)};
	assert_int_equal(vmem_etcd_get_stats(src, &st), EINVAL);
	assert_int_equal(vmem_etcd_get_stats(NULL, &st), EINVAL);
	st.size = sizeof(st);
	assert_int_equal(vmem_etcd_get_stats(src, &st), 0);
	assert_int_equal(st.size, sizeof(st));
	assert_int_equal(vmem_etcd_attach(NULL, NULL), EINVAL);
	assert_int_equal(vmem_etcd_attach(src, NULL), EINVAL);
	assert_int_equal(vmem_etcd_close(src), 0);
	assert_int_equal(vmem_etcd_close(NULL), 0);
	/* nothing but the three good pools was written */
	json_t *keys = h_keys(&h_main, "/bad/");
	assert_int_equal(json_array_size(keys), 3);
	json_decref(keys);
}

static void top_of_range(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/top/", NULL, 0);
	uint64_t base = UINT64_MAX - 4 * 16 + 1; /* base + size == 2^64 */
	assert_int_equal(vmem_etcd_pool_create(&o, "t", base, 64, 16), 0);
	config_is("/top/", "t", "{\"base\":\"18446744073709551552\",\"size\":\"64\",\"block\":\"16\"}");
	vmem_etcd_t *src;
	vmem_t *vm;
	assert_int_equal(h_open_arena(&o, "t", &src, &vm), 0);
	vmem_addr_t got[4];
	bool saw_top = false;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vmem_alloc(vm, 16, VM_NOSLEEP, &got[i]), 0);
		assert_true(got[i] >= base && got[i] - base <= 48);
		saw_top |= got[i] + 15 == UINT64_MAX;
	}
	assert_true(saw_top);
	vmem_addr_t x;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &x), ENOMEM);
	for (int i = 0; i < 4; i++)
		assert_int_equal(vmem_free(vm, got[i], 16), 0);
	assert_int_equal(h_close_arena(src, vm), 0);
	assert_int_equal(h_count(&h_main, "/top/t/blocks/"), 0);
}

static void attach_checks(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/attach/", NULL, 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "a", 0, 6 * 8, 6), 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "odd", 2, 8 * 8, 8), 0);
	vmem_etcd_t *src, *odd;
	assert_int_equal(vmem_etcd_open(&o, "a", &src), 0);
	assert_int_equal(vmem_etcd_open(&o, "odd", &odd), 0);
	vmem_t *q4 = vmem_create("q4", 0, 0, 4, 0, 0);
	assert_int_equal(vmem_etcd_attach(src, q4), EINVAL); /* 4 does not divide 6 */
	vmem_t *q2 = vmem_create("q2", 0, 0, 2, 0, 0);
	assert_int_equal(vmem_etcd_attach(src, q2), 0); /* 2 does */
	assert_int_equal(vmem_etcd_attach(odd, q4), EINVAL); /* base 2 is not a multiple of 4 */
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(q2, 2, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_etcd_attach(src, q2), EBUSY);
	/* several arenas on one connection */
	vmem_t *other = arena(src);
	vmem_addr_t b;
	assert_int_equal(vmem_alloc(other, 1, VM_NOSLEEP, &b), 0);
	assert_true(b / 6 != a / 6);
	vmem_destroy(other);
	vmem_destroy(q2);
	vmem_destroy(q4);
	assert_int_equal(vmem_etcd_close(src), 0);
	assert_int_equal(vmem_etcd_close(odd), 0);
	assert_int_equal(h_count(&h_main, "/attach/a/blocks/"), 0);
}

static void destroy_busy(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/busy/", NULL, 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "b", 0, 64, 16), 0);
	vmem_etcd_t *src;
	vmem_t *vm;
	assert_int_equal(h_open_arena(&o, "b", &src, &vm), 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_etcd_pool_destroy(&o, "b"), EBUSY);
	assert_int_equal(h_count(&h_main, "/busy/b/config"), 1);
	vmem_free(vm, a, 1);
	assert_int_equal(h_close_arena(src, vm), 0);
	assert_int_equal(vmem_etcd_pool_destroy(&o, "b"), 0);
	assert_int_equal(h_count(&h_main, "/busy/"), 0);
	assert_int_equal(vmem_etcd_pool_destroy(&o, "b"), ENOENT);
}

/* A helper that claims and releases as fast as it can until told to stop;
 * it counts the allocations that succeeded after the pool was destroyed. */
struct race {
	atomic_int stop, destroyed;
	atomic_int after_destroy;
	atomic_int allocs;
};
static struct race *race;

static int claimer(void *arg)
{
	(void)arg;
	vmem_etcd_opts_t o = opts("/race/", NULL, 0);
	vmem_etcd_t *src;
	vmem_t *vm;
	if (h_open_arena(&o, "r", &src, &vm) != 0)
		return 1;
	while (!atomic_load(&race->stop)) {
		int seen_destroyed = atomic_load(&race->destroyed);
		vmem_addr_t a;
		if (vmem_alloc(vm, 8, VM_NOSLEEP, &a) == 0) {
			atomic_fetch_add(&race->allocs, 1);
			if (seen_destroyed)
				atomic_fetch_add(&race->after_destroy, 1);
			vmem_free(vm, a, 8);
		}
	}
	h_close_arena(src, vm);
	return 0;
}

static void destroy_vs_claims(void **state)
{
	(void)state;
	race = h_share(sizeof(*race));
	assert_non_null(race);
	vmem_etcd_opts_t o = opts("/race/", NULL, 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "r", 0, 8 * 4, 8), 0);
	pid_t pids[3];
	for (int i = 0; i < 3; i++)
		pids[i] = h_fork(claimer, NULL);
	assert_true(H_WAIT_FOR(atomic_load(&race->allocs) > 30, 10000));
	int err, busy = 0;
	uint64_t until = h_now_ms() + 20000;
	while ((err = vmem_etcd_pool_destroy(&o, "r")) == EBUSY && h_now_ms() < until)
		busy++;
	assert_int_equal(err, 0);
	atomic_store(&race->destroyed, 1);
	/* from now on no block key may appear in the destroyed pool */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(h_count(&h_main, "/race/r/"), 0);
		h_sleep_ms(25);
	}
	atomic_store(&race->stop, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(h_wait(pids[i]), 0);
	assert_int_equal(atomic_load(&race->after_destroy), 0);
	assert_int_equal(h_count(&h_main, "/race/"), 0);
	print_message("destroy saw EBUSY %d times before it went through\n", busy);
	h_unshare(race, sizeof(*race));
}

/* A listener that accepts and never answers, or answers non-JSON. */
struct fake {
	int fd, port;
	bool garble;
	pthread_t t;
};

static void *fake_server(void *arg)
{
	struct fake *f = arg;
	for (;;) {
		int c = accept(f->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		char buf[4096];
		ssize_t n = recv(c, buf, sizeof(buf), 0);
		(void)n;
		static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
					    "Connection: close\r\n\r\nnot json!";
		if (f->garble)
			send(c, reply, sizeof(reply) - 1, MSG_NOSIGNAL);
		else
			h_sleep_ms(1500);
		close(c);
	}
}

static void fake_start(struct fake *f, bool garble)
{
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->fd, 16), 0);
	getsockname(f->fd, (struct sockaddr *)&sa, &len);
	f->port = ntohs(sa.sin_port);
	f->garble = garble;
	pthread_create(&f->t, NULL, fake_server, f);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->fd, SHUT_RDWR);
	close(f->fd);
	pthread_join(f->t, NULL);
}

static void request_errors(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/errors/", NULL, 0);
	o.timeout_ms = 300;
	char eps[512];
	/* nothing listens: refused */
	int dead = 0;
	{
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof(sa);
		bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		getsockname(fd, (struct sockaddr *)&sa, &len);
		dead = ntohs(sa.sin_port);
		close(fd);
	}
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d", dead);
	o.endpoints = eps;
	assert_int_equal(vmem_etcd_pool_create(&o, "e", 0, 16, 16), ECONNREFUSED);
	vmem_etcd_t *src;
	assert_int_equal(vmem_etcd_open(&o, "e", &src), ECONNREFUSED);

	/* a listener that never answers: timed out (and refused + silent: still timed out) */
	struct fake silent, garbled;
	fake_start(&silent, false);
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,http://127.0.0.1:%d", dead, silent.port);
	uint64_t t0 = h_now_ms();
	assert_int_equal(vmem_etcd_pool_destroy(&o, "e"), ETIMEDOUT);
	assert_true(h_now_ms() - t0 < 1500);

	/* an answer that is not JSON */
	fake_start(&garbled, true);
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d", garbled.port);
	assert_int_equal(vmem_etcd_open(&o, "e", &src), EPROTO);

	/* every endpoint is tried: dead ones before a live one do not matter */
	o.timeout_ms = 2000;
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d, %s/", dead, h_main.endpoints);
	assert_int_equal(vmem_etcd_pool_create(&o, "e", 0, 16, 16), 0);
	vmem_t *vm;
	assert_int_equal(h_open_arena(&o, "e", &src, &vm), 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	vmem_free(vm, a, 1);
	vmem_destroy(vm);
	assert_int_equal(H_STATS(src).errors, 0); /* endpoint attempts are not failed requests */
	assert_int_equal(vmem_etcd_close(src), 0);

	/* $VMEM_ETCD_ENDPOINTS when endpoints is NULL */
	o.endpoints = NULL;
	setenv("VMEM_ETCD_ENDPOINTS", h_main.endpoints, 1);
	assert_int_equal(vmem_etcd_pool_create(&o, "env", 0, 16, 16), 0);
	assert_int_equal(h_count(&h_main, "/errors/env/config"), 1);
	unsetenv("VMEM_ETCD_ENDPOINTS");
	fake_stop(&silent);
	fake_stop(&garbled);
}

/* ---- vmem-pool ------------------------------------------------------------- */

#define tool(out, len, ...) h_tool(&h_main, out, len, "--prefix /tool/ " __VA_ARGS__)

static void vmem_pool_tool(void **state)
{
	(void)state;
	char out[8192];
	assert_int_equal(tool(out, sizeof(out), "create pt --base 0x100 --size 1024 --block 0x10"), 0);
	config_is("/tool/", "pt", "{\"base\":\"256\",\"size\":\"1024\",\"block\":\"16\"}");
	assert_int_equal(tool(NULL, 0, "create pt --base 256 --size 1024 --block 16"), 0);
	assert_int_equal(tool(out, sizeof(out), "create pt --base 256 --size 2048 --block 16"), 1);
	assert_non_null(strstr(out, "pt"));
	/* usage errors */
	assert_int_equal(tool(NULL, 0, "create pt --base 256 --size 1024"), 2);
	assert_int_equal(tool(NULL, 0, "create pt --base x --size 1024 --block 16"), 2);
	assert_int_equal(tool(NULL, 0, "create pt --base 256 --size 1000 --block 16"), 2);
	assert_int_equal(tool(NULL, 0, "frobnicate pt"), 2);
	assert_int_equal(tool(NULL, 0, "show"), 2);
	assert_int_equal(tool(NULL, 0, "show a/b"), 2);
	assert_int_equal(tool(NULL, 0, "release pt"), 2);
	assert_int_equal(tool(NULL, 0, "--bogus show pt"), 2);
	assert_int_equal(tool(out, sizeof(out), "--help"), 0);
	assert_non_null(strstr(out, "usage"));
	/* pool errors */
	assert_int_equal(tool(out, sizeof(out), "show nope"), 1);
	assert_non_null(strstr(out, "no such pool"));

	/* two owners hold blocks; show counts them */
	vmem_etcd_t *s[2];
	vmem_t *v[2];
	open_two("/tool/", "pt", "ann", "ben", s, v);
	vmem_addr_t a, b;
	assert_int_equal(vmem_alloc(v[0], 3 * 16, VM_NOSLEEP, &a), 0);
	assert_int_equal(vmem_alloc(v[1], 1, VM_NOSLEEP, &b), 0);
	assert_int_equal(tool(out, sizeof(out), "show pt"), 0);
	assert_non_null(strstr(out, "64: 4 held, 60 free"));
	assert_non_null(strstr(out, "owner ann: 3 blocks"));
	assert_non_null(strstr(out, "owner ben: 1 blocks"));
	assert_int_equal(tool(out, sizeof(out), "show --json pt"), 0);
	json_error_t jerr;
	json_t *j = json_loads(out, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "base")), "256");
	assert_string_equal(json_string_value(json_object_get(j, "held")), "4");
	assert_string_equal(json_string_value(json_object_get(j, "free")), "60");
	assert_int_equal(json_array_size(json_object_get(j, "owners")), 2);
	json_decref(j);
	assert_int_equal(tool(NULL, 0, "destroy pt"), 1); /* busy */

	/* release by owner: ann's blocks go, ben's stay */
	assert_int_equal(tool(out, sizeof(out), "release pt --owner ann"), 0);
	assert_non_null(strstr(out, "released 3 blocks"));
	assert_int_equal(h_count(&h_main, "/tool/pt/blocks/"), 1);
	assert_int_equal(tool(out, sizeof(out), "release pt --owner nobody"), 0);
	assert_non_null(strstr(out, "released 0 blocks"));

	/* ann's own release later finds nothing of hers: nothing else is touched */
	vmem_free(v[0], a, 3 * 16);
	assert_int_equal(h_close_arena(s[0], v[0]), 0);
	assert_int_equal(h_count(&h_main, "/tool/pt/blocks/"), 1);
	vmem_free(v[1], b, 1);
	assert_int_equal(h_close_arena(s[1], v[1]), 0);
	assert_int_equal(tool(NULL, 0, "destroy pt"), 0);
	assert_int_equal(tool(NULL, 0, "destroy pt"), 1);
	assert_int_equal(h_count(&h_main, "/tool/"), 0);

	/* a block key that does not parse: show names EPROTO */
	assert_int_equal(tool(NULL, 0, "create g --base 0 --size 16 --block 16"), 0);
	assert_int_equal(h_put(&h_main, "/tool/g/blocks/0000000000000000", "junk"), 0);
	assert_int_equal(tool(out, sizeof(out), "show g"), 1);
	assert_non_null(strstr(out, "does not parse"));
}

static void release_guarded(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = opts("/guard/", NULL, 0);
	assert_int_equal(vmem_etcd_pool_create(&o, "g", 0, 2 * 16, 16), 0);
	vmem_etcd_t *s[2];
	vmem_t *v[2];
	open_two("/guard/", "g", "first", "second", s, v);
	vmem_addr_t a, b;
	assert_int_equal(vmem_alloc(v[0], 2 * 16, VM_NOSLEEP, &a), 0);
	assert_int_equal(h_tool(&h_main, NULL, 0, "--prefix /guard/ release g --owner first"), 0);
	assert_int_equal(vmem_alloc(v[1], 2 * 16, VM_NOSLEEP, &b), 0); /* the same two blocks */
	assert_int_equal(a, b);
	vmem_free(v[0], a, 2 * 16); /* first's release: nothing of it is left to delete */
	assert_int_equal(h_close_arena(s[0], v[0]), 0);
	json_t *keys = h_keys(&h_main, "/guard/g/blocks/");
	assert_int_equal(json_array_size(keys), 2);
	assert_string_equal(value_of(keys, "/guard/g/blocks/0000000000000000"), "{\"owner\":\"second\"}");
	assert_string_equal(value_of(keys, "/guard/g/blocks/0000000000000001"), "{\"owner\":\"second\"}");
	json_decref(keys);
	vmem_free(v[1], b, 2 * 16);
	assert_int_equal(h_close_arena(s[1], v[1]), 0);
	assert_int_equal(h_count(&h_main, "/guard/"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_layout),     cmocka_unit_test(create_idempotent),
		cmocka_unit_test(config_garbage), cmocka_unit_test(missing_pool),
		cmocka_unit_test(bad_options),    cmocka_unit_test(top_of_range),
		cmocka_unit_test(attach_checks),  cmocka_unit_test(destroy_busy),
		cmocka_unit_test(destroy_vs_claims), cmocka_unit_test(request_errors),
		cmocka_unit_test(vmem_pool_tool), cmocka_unit_test(release_guarded),
	};
	return cmocka_run_group_tests_name("etcd_pool", tests, h_setup_one, h_teardown_main);
}
