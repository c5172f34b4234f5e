/*
 * test_tls - TLS with client certificates, and username/password auth,
 * against real etcd members configured for each (certificates made by the
 * harness with openssl):
 *   tls_right_certificate  the CA and a client certificate it signed: pool
 *                          create, open (with a lease), claim, release, close
 *   tls_refused            no client certificate, one from another CA, or no
 *                          CA to check the server: EACCES from create, open
 *                          and destroy, and nothing written
 *   auth_right_password    root's password: create, open, claim, close; the
 *                          block keys are there while held
 *   auth_refused           a wrong password, or no username: EACCES
 *   vmem_pool_tls_auth     vmem-pool with --cacert/--cert/--key, and --user
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

static struct h_cluster tls, auth;

/* Create, open, claim a block (the key appears), release it, close. */
static void round_trip(const struct h_cluster *cl, vmem_etcd_opts_t o, const char *pool)
{
	assert_int_equal(vmem_etcd_pool_create(&o, pool, 0, 64, 16), 0);
	o.ttl_s = 5;
	o.prefetch = 1;
	vmem_etcd_t *src;
	vmem_t *vm;
	assert_int_equal(h_open_arena(&o, pool, &src, &vm), 0);
	vmem_addr_t a;
	assert_int_equal(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "/vmem/%s/blocks/", pool);
	assert_true(h_count(cl, prefix) >= 1);
	vmem_free(vm, a, 1);
	vmem_destroy(vm);
	assert_int_equal(H_STATS(src).errors, 0);
	assert_int_equal(vmem_etcd_close(src), 0);
	assert_int_equal(h_count(cl, prefix), 0);
	assert_int_equal(vmem_etcd_pool_destroy(&o, pool), 0);
}

static void refused(const struct h_cluster *cl, vmem_etcd_opts_t o)
{
	vmem_etcd_t *src;
	assert_int_equal(vmem_etcd_pool_create(&o, "never", 0, 64, 16), EACCES);
	assert_int_equal(vmem_etcd_open(&o, "ok", &src), EACCES);
	assert_int_equal(vmem_etcd_pool_destroy(&o, "ok"), EACCES);
	assert_int_equal(h_count(cl, "/vmem/never/"), 0);
}

/* The cluster's own options, once its pool "ok" is created with them. */
static vmem_etcd_opts_t with_pool_ok(const struct h_cluster *cl)
{
	vmem_etcd_opts_t good = h_opts(cl);
	assert_int_equal(vmem_etcd_pool_create(&good, "ok", 0, 64, 16), 0);
	return good;
}

static void tls_right_certificate(void **state)
{
	(void)state;
	round_trip(&tls, h_opts(&tls), "tls");
}

static void tls_refused(void **state)
{
	(void)state;
	vmem_etcd_opts_t good = with_pool_ok(&tls), o = good;
	o.cert_file = o.key_file = NULL;
	refused(&tls, o);
	o = good;
	o.cert_file = tls.other_cert;
	o.key_file = tls.other_key;
	refused(&tls, o);
	o = good;
	o.ca_file = NULL; /* the server's certificate cannot be checked */
	refused(&tls, o);
	/* plain HTTP to a TLS port is not an answer */
	char plain[128];
	snprintf(plain, sizeof(plain), "http://127.0.0.1:%d", tls.m[0].client_port);
	o = good;
	o.endpoints = plain;
	vmem_etcd_t *src;
	assert_int_not_equal(vmem_etcd_open(&o, "ok", &src), 0);
}

static void auth_right_password(void **state)
{
	(void)state;
	round_trip(&auth, h_opts(&auth), "auth");
}

static void auth_refused(void **state)
{
	(void)state;
	vmem_etcd_opts_t o = with_pool_ok(&auth);
	o.password = "wrong";
	refused(&auth, o);
	o.username = "nobody";
	refused(&auth, o);
	o.username = o.password = NULL;
	refused(&auth, o);
}

static void vmem_pool_tls_auth(void **state)
{
	(void)state;
	char out[4096];
	assert_int_equal(h_tool(&tls, out, sizeof(out),
				"--cacert %s --cert %s --key %s create vt --base 0 --size 32 --block 16",
				tls.ca, tls.cert, tls.key),
			 0);
	assert_int_equal(h_tool(&tls, out, sizeof(out), "--cacert %s --cert %s --key %s show vt",
				tls.ca, tls.cert, tls.key),
			 0);
	assert_non_null(strstr(out, "2 free"));
	assert_int_equal(h_tool(&tls, out, sizeof(out), "--cacert %s show vt", tls.ca), 1);
	assert_non_null(strstr(out, "refused"));
	assert_int_equal(h_tool(&auth, out, sizeof(out),
				"--user " H_USER ":" H_PASSWORD " create va --base 0 --size 32 --block 16"),
			 0);
	assert_int_equal(h_tool(&auth, out, sizeof(out), "--user " H_USER ":nope show va"), 1);
	assert_non_null(strstr(out, "refused"));
	assert_int_equal(h_tool(&auth, out, sizeof(out), "--user " H_USER ":" H_PASSWORD " destroy va"),
			 0);
}

static int group_setup(void **state)
{
	(void)state;
	if (h_start(&tls, 1, H_TLS) != 0)
		return -1;
	return h_start(&auth, 1, H_AUTH);
}

static int group_teardown(void **state)
{
	(void)state;
	h_stop(&tls);
	h_stop(&auth);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tls_right_certificate), cmocka_unit_test(tls_refused),
		cmocka_unit_test(auth_right_password),   cmocka_unit_test(auth_refused),
		cmocka_unit_test(vmem_pool_tls_auth),
	};
	return cmocka_run_group_tests_name("etcd_tls", tests, group_setup, group_teardown);
}
