/*
 * kv.c - etcd's v3 calls as the JSON gateway spells them: keys and values
 * in base64, int64 fields as decimal strings (and left out when 0), a txn
 * as arrays of compares and request ops.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_impl.h"

/* ---- base64 (RFC 4648, with padding) ------------------------------------- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	char *o = out;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*o++ = b64_alphabet[v >> 18 & 63];
		*o++ = b64_alphabet[v >> 12 & 63];
		*o++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* A digit's value, -1 for a character outside the alphabet ('=' included). */
static int b64_digit(char ch)
{
	const char *at = ch != '\0' ? strchr(b64_alphabet, ch) : NULL;
	return at != NULL ? (int)(at - b64_alphabet) : -1;
}

int b64_decode(const char *text, char **out, size_t *lenp)
{
	size_t n = strlen(text);
	if (n % 4 != 0)
		return EPROTO;
	char *buf = malloc(n / 4 * 3 + 1);
	if (buf == NULL)
		return ENOMEM;
	size_t len = 0;
	for (size_t i = 0; i < n; i += 4) {
		int d[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			char ch = text[i + k];
			/* padding only in the last group's last two places */
			if (ch == '=' && i + 4 == n && k >= 2 && (k == 3 || text[i + 3] == '=')) {
				d[k] = 0;
				pad++;
			} else if ((d[k] = b64_digit(ch)) < 0) {
				free(buf);
				return EPROTO;
			}
		}
		uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 |
			     (uint32_t)d[3];
		buf[len++] = (char)(v >> 16);
		if (pad < 2)
			buf[len++] = (char)(v >> 8 & 255);
		if (pad < 1)
			buf[len++] = (char)(v & 255);
	}
	buf[len] = '\0';
	*out = buf;
	*lenp = len;
	return 0;
}

/* ---- JSON pieces ---------------------------------------------------------- */

int json_int64_field(json_t *obj, const char *name, int64_t *out)
{
	json_t *v = json_object_get(obj, name);
	*out = 0;
	if (v == NULL)
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return EPROTO;
	const char *s = json_string_value(v);
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0)
		return EPROTO;
	*out = x;
	return 0;
}

static json_t *b64_json(const char *s)
{
	char *e = b64_encode(s, strlen(s));
	json_t *j = e ? json_string(e) : NULL;
	free(e);
	return j;
}

static json_t *int64_json(int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_string(buf);
}

static json_t *compare(const char *key, const char *end, const char *target, const char *field,
		       json_t *value)
{
	json_t *c = json_object();
	json_object_set_new(c, "key", b64_json(key));
	if (end)
		json_object_set_new(c, "range_end", b64_json(end));
	json_object_set_new(c, "target", json_string(target));
	json_object_set_new(c, "result", json_string("EQUAL"));
	json_object_set_new(c, field, value);
	return c;
}

json_t *cmp_create(const char *key, int64_t rev)
{
	return compare(key, NULL, "CREATE", "create_revision", int64_json(rev));
}

json_t *cmp_create_range(const char *key, const char *end, int64_t rev)
{
	return compare(key, end, "CREATE", "create_revision", int64_json(rev));
}

json_t *cmp_mod(const char *key, int64_t rev)
{
	return compare(key, NULL, "MOD", "mod_revision", int64_json(rev));
}

json_t *cmp_value_range(const char *key, const char *end, const char *value)
{
	return compare(key, end, "VALUE", "value", b64_json(value));
}

json_t *cmp_lease_range(const char *key, const char *end, int64_t lease)
{
	return compare(key, end, "LEASE", "lease", int64_json(lease));
}

json_t *op_put(const char *key, const char *value, int64_t lease)
{
	json_t *p = json_object();
	json_object_set_new(p, "key", b64_json(key));
	json_object_set_new(p, "value", b64_json(value));
	if (lease != 0)
		json_object_set_new(p, "lease", int64_json(lease));
	return json_pack("{s:o}", "request_put", p);
}

json_t *op_delete(const char *key, const char *end)
{
	json_t *d = json_object();
	json_object_set_new(d, "key", b64_json(key));
	if (end)
		json_object_set_new(d, "range_end", b64_json(end));
	return json_pack("{s:o}", "request_delete_range", d);
}

static json_t *range_body(const char *key, const char *end, bool keys_only, bool count_only)
{
	json_t *r = json_object();
	json_object_set_new(r, "key", b64_json(key));
	if (end)
		json_object_set_new(r, "range_end", b64_json(end));
	if (keys_only)
		json_object_set_new(r, "keys_only", json_true());
	if (count_only)
		json_object_set_new(r, "count_only", json_true());
	return r;
}

json_t *op_range(const char *key, const char *end, bool keys_only, bool count_only)
{
	return json_pack("{s:o}", "request_range", range_body(key, end, keys_only, count_only));
}

/* ---- ranges --------------------------------------------------------------- */

void etcd_kvs_free(struct etcd_kvs *kvs)
{
	for (size_t i = 0; i < kvs->n; i++) {
		free(kvs->kv[i].key);
		free(kvs->kv[i].value);
	}
	free(kvs->kv);
	kvs->kv = NULL;
	kvs->n = 0;
}

static int revision_of(json_t *answer, int64_t *rev)
{
	json_t *h = json_object_get(answer, "header");
	if (!json_is_object(h))
		return EPROTO;
	return json_int64_field(h, "revision", rev);
}

/* A RangeResponse's kvs, decoded. */
static int parse_range(json_t *rr, struct etcd_kvs *kvs)
{
	*kvs = (struct etcd_kvs){0};
	if (!json_is_object(rr))
		return EPROTO;
	int err = revision_of(rr, &kvs->revision);
	if (err != 0)
		return err;
	json_t *arr = json_object_get(rr, "kvs");
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return EPROTO;
	size_t n = json_array_size(arr);
	kvs->kv = calloc(n ? n : 1, sizeof(*kvs->kv));
	if (kvs->kv == NULL)
		return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(arr, i);
		struct etcd_kv *kv = &kvs->kv[i];
		json_t *k = json_object_get(e, "key");
		json_t *v = json_object_get(e, "value");
		size_t klen;
		kvs->n = i + 1;
		if (!json_is_string(k) || (v != NULL && !json_is_string(v)))
			err = EPROTO;
		if (!err)
			err = b64_decode(json_string_value(k), &kv->key, &klen);
		if (!err)
			err = b64_decode(v ? json_string_value(v) : "", &kv->value, &kv->value_len);
		static const char *const int_fields[] = {"create_revision", "mod_revision", "lease"};
		int64_t *int_dst[] = {&kv->create_revision, &kv->mod_revision, &kv->lease};
		for (size_t f = 0; !err && f < sizeof(int_fields) / sizeof(int_fields[0]); f++)
			err = json_int64_field(e, int_fields[f], int_dst[f]);
		if (err) {
			etcd_kvs_free(kvs);
			return err;
		}
	}
	return 0;
}

int etcd_range(struct etcd_client *c, const char *key, const char *end, struct etcd_kvs *kvs)
{
	json_t *body = range_body(key, end, false, false), *resp;
	int err = etcd_post(c, "/v3/kv/range", body, 0, &resp, NULL);
	json_decref(body);
	*kvs = (struct etcd_kvs){0};
	if (err != 0)
		return err;
	err = parse_range(resp, kvs);
	json_decref(resp);
	return err;
}

int etcd_range_count(struct etcd_client *c, const char *key, const char *end, int64_t *count)
{
	json_t *body = range_body(key, end, false, true), *resp;
	int err = etcd_post(c, "/v3/kv/range", body, 0, &resp, NULL);
	json_decref(body);
	if (err != 0)
		return err;
	err = json_int64_field(resp, "count", count);
	json_decref(resp);
	return err;
}

/* ---- transactions --------------------------------------------------------- */

int etcd_txn(struct etcd_client *c, json_t *compare, json_t *success, json_t *failure,
	     bool *succeeded, json_t **resp, struct etcd_outcome *out)
{
	json_t *body = json_object();
	json_object_set_new(body, "compare", compare);
	json_object_set_new(body, "success", success ? success : json_array());
	json_object_set_new(body, "failure", failure ? failure : json_array());
	json_t *answer;
	int err = etcd_post(c, "/v3/kv/txn", body, 0, &answer, out);
	json_decref(body);
	if (resp)
		*resp = NULL;
	if (err != 0)
		return err;
	json_t *s = json_object_get(answer, "succeeded");
	if (s != NULL && !json_is_boolean(s)) {
		json_decref(answer);
		return EPROTO;
	}
	*succeeded = json_is_true(s);
	if (resp)
		*resp = answer;
	else
		json_decref(answer);
	return 0;
}

int txn_range_kvs(json_t *resp, size_t i, struct etcd_kvs *kvs)
{
	*kvs = (struct etcd_kvs){0};
	json_t *arr = json_object_get(resp, "responses");
	json_t *r = json_array_get(arr, i);
	json_t *rr = json_object_get(r, "response_range");
	/* a range that found nothing may come back as an empty object */
	return rr ? parse_range(rr, kvs) : EPROTO;
}

/* ---- leases --------------------------------------------------------------- */

int etcd_lease_grant(struct etcd_client *c, int64_t ttl, int64_t *id, int64_t *granted)
{
	json_t *body = json_pack("{s:o}", "TTL", int64_json(ttl)), *resp;
	int err = etcd_post(c, "/v3/lease/grant", body, 0, &resp, NULL);
	json_decref(body);
	if (err != 0)
		return err;
	err = json_int64_field(resp, "ID", id);
	if (!err)
		err = json_int64_field(resp, "TTL", granted);
	if (!err && (*id == 0 || *granted <= 0))
		err = EPROTO;
	json_decref(resp);
	return err;
}

int etcd_lease_keepalive(struct etcd_client *c, int64_t id, uint32_t timeout_ms, int64_t *ttl)
{
	json_t *body = json_pack("{s:o}", "ID", int64_json(id)), *resp;
	int err = etcd_post(c, "/v3/lease/keepalive", body, timeout_ms, &resp, NULL);
	json_decref(body);
	if (err != 0)
		return err;
	/* a stream of one message: {"result": {"ID": ..., "TTL": ...}} */
	json_t *r = json_object_get(resp, "result");
	err = json_is_object(r) ? json_int64_field(r, "TTL", ttl) : EPROTO;
	json_decref(resp);
	return err;
}

int etcd_lease_revoke(struct etcd_client *c, int64_t id)
{
	json_t *body = json_pack("{s:o}", "ID", int64_json(id)), *resp = NULL;
	int err = etcd_post(c, "/v3/lease/revoke", body, 0, &resp, NULL);
	json_decref(body);
	json_decref(resp);
	return err;
}

/* ---- watch ------------------------------------------------------------------ */

int etcd_watch_deletes(struct etcd_client *c, const char *key, const char *end, int64_t rev,
		       uint32_t max_ms)
{
	json_t *req = range_body(key, end, false, false);
	json_object_del(req, "keys_only");
	json_object_set_new(req, "start_revision", int64_json(rev + 1));
	json_object_set_new(req, "filters", json_pack("[s]", "NOPUT"));
	json_t *body = json_pack("{s:o}", "create_request", req);
	int err = etcd_stream_until_event(c, "/v3/watch", body, max_ms);
	json_decref(body);
	return err;
}
