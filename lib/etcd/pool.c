/*
 * pool.c - what a pool is in etcd: the options that reach it, its name, its
 * keys, its config, and the calls that create and destroy it.
 *
 * Destroy and claims cannot interleave because both are single etcd
 * transactions that look at each other's keys:
 *   - a claim compares the config key's mod_revision with the one read at
 *     open, so it fails once the config is gone (or was written again);
 *   - destroy compares the config's mod_revision with the one it read and,
 *     over the whole range of block keys, create_revision with 0 (a range
 *     compare holds for every key in the range, and trivially for none),
 *     so it fails while any block key exists.
 * etcd applies transactions one at a time, so either the claim comes first
 * and destroy sees its block (EBUSY), or destroy comes first and the claim
 * sees the config changed.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd_impl.h"

/* ---- options --------------------------------------------------------------- */

/* The options' strings, each copied into the conf: where it is in the one and
 * in the other. */
#define CONF_STRING(field) {offsetof(vmem_etcd_opts_t, field), offsetof(struct etcd_conf, field)}
static const struct {
	size_t opt, conf;
} conf_strings[] = {
	CONF_STRING(endpoints), CONF_STRING(prefix),    CONF_STRING(owner),
	CONF_STRING(ca_file),   CONF_STRING(cert_file), CONF_STRING(key_file),
	CONF_STRING(username),  CONF_STRING(password),
};
#define NCONF_STRINGS (sizeof(conf_strings) / sizeof(conf_strings[0]))

static char **conf_string(struct etcd_conf *conf, size_t i)
{
	return (char **)((char *)conf + conf_strings[i].conf);
}

int conf_load(const vmem_etcd_opts_t *o, struct etcd_conf *conf)
{
	vmem_etcd_opts_t v = {0};
	*conf = (struct etcd_conf){0};
	if (o != NULL) {
		if (o->size < OPTS_V1_SIZE)
			return EINVAL;
		memcpy(&v, o, o->size < sizeof(v) ? o->size : sizeof(v));
	}
	/* a key file without a certificate (or the reverse) cannot work */
	if ((v.cert_file == NULL) != (v.key_file == NULL) || (v.password && !v.username))
		return EINVAL;
	if (v.owner != NULL && v.owner[0] == '\0')
		return EINVAL;
	const char *env = getenv("VMEM_ETCD_ENDPOINTS");
	if (v.endpoints == NULL)
		v.endpoints = env && *env ? env : DEFAULT_ENDPOINTS;
	if (v.prefix == NULL)
		v.prefix = DEFAULT_PREFIX;
	for (size_t i = 0; i < NCONF_STRINGS; i++) {
		const char *s = *(const char *const *)((const char *)&v + conf_strings[i].opt);
		if (s != NULL && (*conf_string(conf, i) = strdup(s)) == NULL) {
			conf_free(conf);
			return ENOMEM;
		}
	}
	conf->ttl_s = v.ttl_s;
	conf->timeout_ms = v.timeout_ms ? v.timeout_ms : DEFAULT_TIMEOUT_MS;
	conf->prefetch = v.prefetch;
	conf->lease_lost = v.lease_lost;
	conf->lease_lost_arg = v.lease_lost_arg;
	return 0;
}

void conf_free(struct etcd_conf *conf)
{
	if (conf->password)
		memset(conf->password, 0, strlen(conf->password));
	for (size_t i = 0; i < NCONF_STRINGS; i++)
		free(*conf_string(conf, i));
	*conf = (struct etcd_conf){0};
}

/* ---- names and keys -------------------------------------------------------- */

bool pool_name_ok(const char *pool)
{
	if (pool == NULL)
		return false;
	size_t n = strlen(pool);
	if (n < 1 || n > POOL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = pool[i];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
		if (!ok)
			return false;
	}
	return true;
}

int pool_check(uint64_t base, uint64_t size, uint64_t block)
{
	if (block == 0 || size == 0 || size % block != 0)
		return EINVAL;
	/* the last unit, base + size - 1, must not wrap; base + size == 2^64 is fine */
	if (size - 1 > UINT64_MAX - base)
		return EINVAL;
	return 0;
}

static char *key_printf(const char *prefix, const char *pool, const char *suffix,
			const char *hex)
{
	size_t n = strlen(prefix) + strlen(pool) + strlen(suffix) + (hex ? strlen(hex) : 0) + 1;
	char *k = malloc(n);
	if (k)
		snprintf(k, n, "%s%s%s%s", prefix, pool, suffix, hex ? hex : "");
	return k;
}

char *pool_config_key(const char *prefix, const char *pool)
{
	return key_printf(prefix, pool, "/config", NULL);
}

char *pool_blocks_prefix(const char *prefix, const char *pool)
{
	return key_printf(prefix, pool, "/blocks/", NULL);
}

char *pool_blocks_end(const char *prefix, const char *pool)
{
	/* '/' + 1 == '0': the end of the range of keys starting with ".../blocks/" */
	return key_printf(prefix, pool, "/blocks0", NULL);
}

char *pool_block_key(const char *prefix, const char *pool, uint64_t index)
{
	char hex[17];
	snprintf(hex, sizeof(hex), "%016" PRIx64, index);
	return key_printf(prefix, pool, "/blocks/", hex);
}

bool pool_block_index(const char *key, size_t prefix_len, uint64_t *index)
{
	const char *h = key + prefix_len;
	if (strlen(key) != prefix_len + 16)
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char ch = h[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*index = v;
	return true;
}

/* ---- config ---------------------------------------------------------------- */

/* A decimal string for a uint64: digits only, no overflow. */
static int decimal_field(json_t *obj, const char *name, uint64_t *out)
{
	json_t *v = json_object_get(obj, name);
	if (!json_is_string(v))
		return EPROTO;
	const char *s = json_string_value(v);
	if (*s == '\0')
		return EPROTO;
	uint64_t x = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return EPROTO;
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return EPROTO;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

int pool_config_parse(const char *text, size_t len, struct pool_conf *pc)
{
	json_error_t jerr;
	json_t *j = json_loadb(text, len, 0, &jerr);
	static const char *const fields[] = {"base", "size", "block"};
	uint64_t *dst[] = {&pc->base, &pc->size, &pc->block};
	int err = json_is_object(j) ? 0 : EPROTO;
	for (size_t i = 0; !err && i < sizeof(fields) / sizeof(fields[0]); i++)
		err = decimal_field(j, fields[i], dst[i]);
	if (!err && pool_check(pc->base, pc->size, pc->block) != 0)
		err = EPROTO; /* a stored pool that could never have been created */
	if (!err)
		pc->nblocks = pc->size / pc->block;
	json_decref(j);
	return err;
}

char *pool_config_format(const struct pool_conf *pc)
{
	char b[24], s[24], k[24];
	snprintf(b, sizeof(b), "%" PRIu64, pc->base);
	snprintf(s, sizeof(s), "%" PRIu64, pc->size);
	snprintf(k, sizeof(k), "%" PRIu64, pc->block);
	json_t *j = json_pack("{s:s, s:s, s:s}", "base", b, "size", s, "block", k);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	return text;
}

int pool_config_read(struct etcd_client *c, const char *prefix, const char *pool,
		     struct pool_conf *pc, int64_t *mod_rev)
{
	char *key = pool_config_key(prefix, pool);
	if (key == NULL)
		return ENOMEM;
	struct etcd_kvs kvs;
	int err = etcd_range(c, key, NULL, &kvs);
	free(key);
	if (err != 0)
		return err;
	if (kvs.n == 0)
		err = ENOENT;
	else
		err = pool_config_parse(kvs.kv[0].value, kvs.kv[0].value_len, pc);
	if (!err && mod_rev)
		*mod_rev = kvs.kv[0].mod_revision;
	etcd_kvs_free(&kvs);
	return err;
}

/* ---- owners ------------------------------------------------------------------ */

char *owner_value(const char *owner)
{
	json_t *j = json_pack("{s:s}", "owner", owner);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return text;
}

int owner_parse(const char *text, size_t len, char **owner)
{
	json_error_t jerr;
	json_t *j = json_loadb(text, len, 0, &jerr);
	json_t *o = json_object_get(j, "owner");
	int err = json_is_string(o) ? 0 : EPROTO;
	if (!err) {
		*owner = strdup(json_string_value(o));
		err = *owner ? 0 : ENOMEM;
	}
	json_decref(j);
	return err;
}

/* ---- create and destroy ------------------------------------------------------ */

/* Options, name and a client for one call; conf and client freed by done(). */
static int begin(const vmem_etcd_opts_t *o, const char *pool, struct etcd_conf *conf,
		 struct etcd_client **c)
{
	int err = conf_load(o, conf);
	if (err)
		return err;
	if (!pool_name_ok(pool)) {
		conf_free(conf);
		return EINVAL;
	}
	err = etcd_client_new(conf, c);
	if (err)
		conf_free(conf);
	return err;
}

static void done(struct etcd_conf *conf, struct etcd_client *c)
{
	etcd_client_free(c);
	conf_free(conf);
}

ETCD_API int vmem_etcd_pool_create(const vmem_etcd_opts_t *o, const char *pool, vmem_addr_t base,
				   vmem_size_t size, vmem_size_t block)
{
	struct etcd_conf conf;
	struct etcd_client *c;
	if (pool_check(base, size, block) != 0)
		return EINVAL;
	int err = begin(o, pool, &conf, &c);
	if (err)
		return err;
	struct pool_conf want = {base, size, block, size / block};
	char *key = pool_config_key(conf.prefix, pool);
	char *value = pool_config_format(&want);
	if (key == NULL || value == NULL) {
		err = ENOMEM;
		goto out;
	}
	/* put if absent; else read what is there, in the same txn */
	for (int round = 0; round < 8; round++) {
		bool created;
		json_t *resp;
		err = etcd_txn(c, json_pack("[o]", cmp_create(key, 0)),
			       json_pack("[o]", op_put(key, value, 0)),
			       json_pack("[o]", op_range(key, NULL, false, false)), &created, &resp, NULL);
		if (err || created) {
			json_decref(resp);
			break;
		}
		struct etcd_kvs kvs;
		struct pool_conf have;
		err = txn_range_kvs(resp, 0, &kvs);
		json_decref(resp);
		if (!err && kvs.n == 0)
			err = EAGAIN; /* destroyed in between: try again */
		if (!err)
			err = pool_config_parse(kvs.kv[0].value, kvs.kv[0].value_len, &have);
		if (!err && (have.base != base || have.size != size || have.block != block))
			err = EEXIST;
		etcd_kvs_free(&kvs);
		if (err != EAGAIN)
			break;
	}
out:
	free(key);
	free(value);
	done(&conf, c);
	return err;
}

ETCD_API int vmem_etcd_pool_destroy(const vmem_etcd_opts_t *o, const char *pool)
{
	struct etcd_conf conf;
	struct etcd_client *c;
	int err = begin(o, pool, &conf, &c);
	if (err)
		return err;
	char *key = pool_config_key(conf.prefix, pool);
	char *bfirst = pool_blocks_prefix(conf.prefix, pool);
	char *bend = pool_blocks_end(conf.prefix, pool);
	if (key == NULL || bfirst == NULL || bend == NULL) {
		err = ENOMEM;
		goto out;
	}
	for (int round = 0; round < 16; round++) {
		int64_t rev;
		/* a config that does not parse can still be destroyed */
		struct etcd_kvs kvs;
		err = etcd_range(c, key, NULL, &kvs);
		if (err)
			break;
		if (kvs.n == 0) {
			etcd_kvs_free(&kvs);
			err = ENOENT;
			break;
		}
		rev = kvs.kv[0].mod_revision;
		etcd_kvs_free(&kvs);
		bool deleted;
		json_t *resp;
		err = etcd_txn(c, json_pack("[o,o]", cmp_mod(key, rev), cmp_create_range(bfirst, bend, 0)),
			       json_pack("[o]", op_delete(key, NULL)),
			       json_pack("[o]", op_range(bfirst, bend, false, true)), &deleted, &resp, NULL);
		if (err)
			break;
		int64_t held = 0;
		if (!deleted) {
			json_t *rr = json_object_get(json_array_get(json_object_get(resp, "responses"), 0),
						     "response_range");
			err = rr ? json_int64_field(rr, "count", &held) : EPROTO;
		}
		json_decref(resp);
		if (deleted || err)
			break;
		if (held > 0) {
			err = EBUSY;
			break;
		}
		/* the config changed between the read and the txn: look again */
		err = EAGAIN;
	}
out:
	free(key);
	free(bfirst);
	free(bend);
	done(&conf, c);
	return err;
}

/* ---- release by owner (vmem-pool) ---------------------------------------- */

int pool_release_owner(struct etcd_client *c, const char *prefix, const char *pool,
		       const char *owner, uint64_t *released)
{
	char *bfirst = pool_blocks_prefix(prefix, pool);
	char *bend = pool_blocks_end(prefix, pool);
	int err = bfirst && bend ? 0 : ENOMEM;
	*released = 0;
	for (int round = 0; !err && round < 64; round++) {
		struct etcd_kvs kvs;
		err = etcd_range(c, bfirst, bend, &kvs);
		if (err)
			break;
		/* delete this owner's keys, each guarded by the revision read, so
		 * a block another owner claimed since is left alone */
		json_t *cmp = json_array(), *ops = json_array();
		size_t batch = 0;
		bool more = false;
		for (size_t i = 0; i < kvs.n && !err; i++) {
			char *who;
			err = owner_parse(kvs.kv[i].value, kvs.kv[i].value_len, &who);
			if (err)
				break;
			if (strcmp(who, owner) == 0) {
				if (batch == 128) {
					more = true; /* etcd's limit of ops per txn */
				} else {
					json_array_append_new(cmp, cmp_mod(kvs.kv[i].key,
									   kvs.kv[i].mod_revision));
					json_array_append_new(ops, op_delete(kvs.kv[i].key, NULL));
					batch++;
				}
			}
			free(who);
		}
		etcd_kvs_free(&kvs);
		if (err || batch == 0) {
			json_decref(cmp);
			json_decref(ops);
			break;
		}
		bool ok;
		err = etcd_txn(c, cmp, ops, NULL, &ok, NULL, NULL);
		if (!err && ok) {
			*released += batch;
			if (!more)
				break;
		}
	}
	free(bfirst);
	free(bend);
	return err;
}
