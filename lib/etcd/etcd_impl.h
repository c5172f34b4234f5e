/*
 * etcd_impl.h - the pieces of libvmem-etcd, shared between its files, the
 * vmem-pool command and the tests (none of it is exported).
 *
 *   http.c    endpoints, failover, TLS, authentication, error mapping
 *   kv.c      base64, the etcd calls (range, txn, lease, watch) in JSON
 *   pool.c    options, pool names, keys, config, create/destroy
 *   source.c  a connection: import/release, prefetch, pending releases
 *   lease.c   the keepalive thread
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_ETCD_IMPL_H
#define VMEM_ETCD_IMPL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmem.h"
#include "vmem_etcd.h"

#define ETCD_API __attribute__((visibility("default")))

/* The version-1 structures: anything smaller from a caller is EINVAL. */
#define OPTS_V1_SIZE (offsetof(vmem_etcd_opts_t, lease_lost_arg) + sizeof(void *))
#define STATS_V1_SIZE (offsetof(vmem_etcd_stats_t, last_error) + sizeof(int))

#define POOL_NAME_MAX 64
#define DEFAULT_ENDPOINTS "http://127.0.0.1:2379"
#define DEFAULT_PREFIX "/vmem/"
#define DEFAULT_TIMEOUT_MS 2000
/* etcd's default --max-txn-ops is 128: a claim compares the config and
 * each block key, so it may hold at most 127 blocks. */
#define CLAIM_MAX_BLOCKS 127

uint64_t now_ms(void); /* CLOCK_MONOTONIC */
/* Wait on cv (made with CLOCK_MONOTONIC) until signalled or until_ms. */
void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t until_ms);

/* ---- http.c ---------------------------------------------------------------- */

struct etcd_client;

/* Options with every default applied and every string copied. */
struct etcd_conf {
	char *endpoints, *prefix, *owner;
	char *ca_file, *cert_file, *key_file, *username, *password;
	uint32_t ttl_s, timeout_ms, prefetch;
	void (*lease_lost)(void *arg);
	void *lease_lost_arg;
};

/* What one request came to, beyond its errno. */
struct etcd_outcome {
	bool maybe_applied; /* some attempt may have reached etcd without an answer */
};

int etcd_client_new(const struct etcd_conf *conf, struct etcd_client **cp);
void etcd_client_free(struct etcd_client *c);
/* POST body (not consumed) to path; *resp is the parsed answer.  timeout_ms
 * 0: the connection's.  0 or ETIMEDOUT/ECONNREFUSED/EACCES/EPROTO. */
int etcd_post(struct etcd_client *c, const char *path, json_t *body, uint32_t timeout_ms,
	      json_t **resp, struct etcd_outcome *out);
/* Stream a watch: 0 when a message with events (or a cancel) arrives,
 * EAGAIN when nothing did within max_ms, else an errno as for etcd_post. */
int etcd_stream_until_event(struct etcd_client *c, const char *path, json_t *body,
			    uint32_t max_ms);
/* Failed requests set the backoff; imports and the background thread wait
 * it out.  Any answered request clears it. */
bool etcd_backing_off(struct etcd_client *c, uint64_t *until_ms);
void etcd_backoff_reset(struct etcd_client *c);
/* Counters for stats and benchmarks. */
uint64_t etcd_requests(const struct etcd_client *c); /* HTTP requests sent */
uint64_t etcd_errors(const struct etcd_client *c);   /* failed etcd_post calls */
int etcd_last_error(const struct etcd_client *c);
void etcd_note_error(struct etcd_client *c, int err); /* record a failure seen above http */

/* ---- kv.c ------------------------------------------------------------------ */

char *b64_encode(const void *data, size_t len);
/* NUL-terminated copy in *out; 0 or EPROTO. */
int b64_decode(const char *text, char **out, size_t *lenp);

struct etcd_kv {
	char *key, *value; /* decoded, NUL-terminated */
	size_t value_len;
	int64_t create_revision, mod_revision, lease;
};
struct etcd_kvs {
	struct etcd_kv *kv;
	size_t n;
	int64_t revision; /* the store's revision at the read */
};
void etcd_kvs_free(struct etcd_kvs *kvs);

/* int64 fields arrive as decimal strings, and are absent when 0. */
int json_int64_field(json_t *obj, const char *name, int64_t *out);

/* Request pieces for a txn (keys and values are plain strings). */
json_t *cmp_create(const char *key, int64_t rev);      /* create_revision == rev */
json_t *cmp_mod(const char *key, int64_t rev);         /* mod_revision == rev */
json_t *cmp_value_range(const char *key, const char *end, const char *value);
json_t *cmp_lease_range(const char *key, const char *end, int64_t lease);
json_t *cmp_create_range(const char *key, const char *end, int64_t rev);
json_t *op_put(const char *key, const char *value, int64_t lease);
json_t *op_delete(const char *key, const char *end);
json_t *op_range(const char *key, const char *end, bool keys_only, bool count_only);

/* Range [key, end) (end NULL: the key alone). */
int etcd_range(struct etcd_client *c, const char *key, const char *end, struct etcd_kvs *kvs);
int etcd_range_count(struct etcd_client *c, const char *key, const char *end, int64_t *count);
/* A txn; compare/success/failure are arrays, consumed.  *succeeded says
 * which branch ran; *resp (may be NULL) the answer, to read its ranges. */
int etcd_txn(struct etcd_client *c, json_t *compare, json_t *success, json_t *failure,
	     bool *succeeded, json_t **resp, struct etcd_outcome *out);
/* The kvs of response i of a txn answer (a response_range). */
int txn_range_kvs(json_t *resp, size_t i, struct etcd_kvs *kvs);
int etcd_lease_grant(struct etcd_client *c, int64_t ttl, int64_t *id, int64_t *granted);
/* *ttl is 0 when etcd no longer knows the lease. */
int etcd_lease_keepalive(struct etcd_client *c, int64_t id, uint32_t timeout_ms, int64_t *ttl);
int etcd_lease_revoke(struct etcd_client *c, int64_t id);
/* Wait up to max_ms for a delete under [key, end) after revision rev:
 * 0 (something was deleted), EAGAIN (nothing) or an errno. */
int etcd_watch_deletes(struct etcd_client *c, const char *key, const char *end, int64_t rev,
		       uint32_t max_ms);

/* ---- pool.c ---------------------------------------------------------------- */

struct pool_conf {
	uint64_t base, size, block, nblocks;
};

int conf_load(const vmem_etcd_opts_t *o, struct etcd_conf *conf);
void conf_free(struct etcd_conf *conf);
bool pool_name_ok(const char *pool);
int pool_check(uint64_t base, uint64_t size, uint64_t block);
char *pool_config_key(const char *prefix, const char *pool);
char *pool_blocks_prefix(const char *prefix, const char *pool); /* ".../blocks/" */
char *pool_blocks_end(const char *prefix, const char *pool);    /* the range's end */
char *pool_block_key(const char *prefix, const char *pool, uint64_t index);
/* The block index of a key under the blocks prefix; false if it is not one. */
bool pool_block_index(const char *key, size_t prefix_len, uint64_t *index);
int pool_config_parse(const char *text, size_t len, struct pool_conf *pc);
char *pool_config_format(const struct pool_conf *pc);
/* ENOENT, EPROTO or an etcd error; *mod_rev is the config's mod_revision. */
int pool_config_read(struct etcd_client *c, const char *prefix, const char *pool,
		     struct pool_conf *pc, int64_t *mod_rev);
char *owner_value(const char *owner);
/* The owner named by a block key's value; 0 or EPROTO. */
int owner_parse(const char *text, size_t len, char **owner);
/* Delete every block key of owner (guarded by each key's mod_revision);
 * *released counts them. */
int pool_release_owner(struct etcd_client *c, const char *prefix, const char *pool,
		       const char *owner, uint64_t *released);

/* ---- source.c / lease.c ---------------------------------------------------- */

struct vmem_etcd;
struct lease;
int lease_start(struct vmem_etcd *src, struct etcd_client *c, const struct etcd_conf *conf,
		struct lease **lp);
int64_t lease_id(const struct lease *l); /* 0 without a lease */
/* Stop the keepalive thread; revoke unless lost; free. */
void lease_stop(struct lease *l);
/* The keepalive thread declares the lease lost through this (source.c). */
void source_lease_lost(struct vmem_etcd *src);

/* For benchmarks: HTTP requests this connection has sent. */
uint64_t vmem_etcd_requests(vmem_etcd_t *src);

#endif /* VMEM_ETCD_IMPL_H */
