/*
 * http.c - requests to etcd's JSON gateway: the endpoint list and its
 * failover, TLS, username/password tokens, and the mapping of every way a
 * request can fail onto the contract's errno values.
 *
 * One request tries the endpoints in turn, starting from the last one that
 * answered, until one answers.  "Answers" means an HTTP reply from an etcd
 * that could serve it: a gRPC status of Unavailable ("no leader", "request
 * timed out", "leader changed") counts as no answer and the next endpoint is
 * tried.  When none answers, the result is ETIMEDOUT if some attempt timed
 * out, else ECONNREFUSED.
 *
 * TLS is held to version 1.2.  Under 1.3 the server checks the client's
 * certificate after the handshake has completed on the client's side, and a
 * refusal shows up as a reset connection on the first read or write, which
 * cannot be told from a peer that went away; under 1.2 it fails the
 * handshake itself, which is EACCES without doubt.
 *
 * libcurl easy handles are kept in a small free list: any thread takes one
 * for a request and puts it back, so connections (and TLS sessions) are
 * reused.  Proxies from the environment are ignored: etcd is reached
 * directly, as its own clients do.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd_impl.h"

#define MAX_ANSWER (64u << 20) /* bytes: a larger answer is EPROTO */
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000

struct handle {
	CURL *curl;
	struct handle *next;
};

struct etcd_client {
	char **urls;
	size_t nurls;
	atomic_size_t preferred; /* the endpoint that answered last */
	uint32_t timeout_ms;
	const struct etcd_conf *conf;

	pthread_mutex_t lock; /* token, handles, backoff */
	char *token;          /* etcd auth token, NULL before authenticating */
	struct handle *idle;
	uint32_t backoff_ms;
	uint64_t backoff_until;

	atomic_uint_least64_t requests, errors;
	atomic_int last_error;
};

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t until_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = now_ms(), wait = until_ms > now ? until_ms - now : 0;
	ts.tv_sec += (time_t)(wait / 1000);
	ts.tv_nsec += (long)(wait % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, m, &ts);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_urls(char **urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

/* Split "URL,URL,..." into URLs without a trailing '/'; EINVAL for an empty
 * list, an empty element or a scheme other than http/https. */
static int split_endpoints(const char *list, char ***urlsp, size_t *np)
{
	size_t cap = 1;
	for (const char *p = list; *p; p++)
		cap += *p == ',';
	char **urls = calloc(cap, sizeof(*urls));
	if (urls == NULL)
		return ENOMEM;
	size_t n = 0;
	const char *p = list;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len > 0 && (p[0] == ' ' || p[0] == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '/'))
			len--;
		bool http = len > 7 && strncmp(p, "http://", 7) == 0;
		bool https = len > 8 && strncmp(p, "https://", 8) == 0;
		if (!http && !https) {
			free_urls(urls, n);
			return EINVAL;
		}
		urls[n] = strndup(p, len);
		if (urls[n] == NULL) {
			free_urls(urls, n);
			return ENOMEM;
		}
		n++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*urlsp = urls;
	*np = n;
	return 0;
}

int etcd_client_new(const struct etcd_conf *conf, struct etcd_client **cp)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_result != CURLE_OK)
		return ENOMEM;
	struct etcd_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ENOMEM;
	int err = split_endpoints(conf->endpoints, &c->urls, &c->nurls);
	if (err != 0) {
		free(c);
		return err;
	}
	c->conf = conf;
	c->timeout_ms = conf->timeout_ms;
	pthread_mutex_init(&c->lock, NULL);
	*cp = c;
	return 0;
}

void etcd_client_free(struct etcd_client *c)
{
	if (c == NULL)
		return;
	while (c->idle != NULL) {
		struct handle *h = c->idle;
		c->idle = h->next;
		curl_easy_cleanup(h->curl);
		free(h);
	}
	free_urls(c->urls, c->nurls);
	free(c->token);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct handle *handle_get(struct etcd_client *c)
{
	pthread_mutex_lock(&c->lock);
	struct handle *h = c->idle;
	if (h != NULL)
		c->idle = h->next;
	pthread_mutex_unlock(&c->lock);
	if (h != NULL) {
		curl_easy_reset(h->curl);
		return h;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	h->curl = curl_easy_init();
	if (h->curl == NULL) {
		free(h);
		return NULL;
	}
	return h;
}

static void handle_put(struct etcd_client *c, struct handle *h)
{
	pthread_mutex_lock(&c->lock);
	h->next = c->idle;
	c->idle = h;
	pthread_mutex_unlock(&c->lock);
}

/* ---- one attempt ----------------------------------------------------------- */

struct buffer {
	char *data;
	size_t len;
	bool too_big;
	/* streaming: stop at the first message with events */
	bool stream, event_seen;
	size_t scanned;
};

static bool stream_has_event(struct buffer *b);

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct buffer *b = arg;
	size_t n = size * nmemb;
	if (b->len + n > MAX_ANSWER) {
		b->too_big = true;
		return 0;
	}
	char *d = realloc(b->data, b->len + n + 1);
	if (d == NULL) {
		b->too_big = true;
		return 0;
	}
	memcpy(d + b->len, ptr, n);
	b->data = d;
	b->len += n;
	d[b->len] = '\0';
	if (b->stream && stream_has_event(b)) {
		b->event_seen = true;
		return 0; /* enough: abort the transfer */
	}
	return n;
}

/* How an attempt on one endpoint ended. */
enum attempt {
	ANSWERED,     /* HTTP 200 and JSON: *resp set */
	NO_ANSWER,    /* refused, reset, or an etcd that cannot serve: try the next */
	TIMED_OUT,    /* no answer within the timeout: try the next */
	BAD_TOKEN,    /* the auth token is no longer valid: authenticate again */
	REFUSED_AUTH, /* TLS or authentication refused: EACCES */
	GARBLED,      /* an answer that does not parse, or a request etcd rejects: EPROTO */
};

static bool is_tls_refusal(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED:
		return true;
	default:
		return false;
	}
}

/* An etcd error answer: {"error": "...", "code": N, "message": "..."}. */
static enum attempt classify_error_answer(long http_status, const struct buffer *b)
{
	json_error_t jerr;
	json_t *j = b->data ? json_loadb(b->data, b->len, 0, &jerr) : NULL;
	json_t *code = j ? json_object_get(j, "code") : NULL;
	json_t *msg = j ? json_object_get(j, "error") : NULL;
	if (!json_is_integer(code)) {
		json_decref(j);
		/* a proxy or a gateway in trouble: this endpoint cannot serve */
		return http_status >= 500 ? NO_ANSWER : GARBLED;
	}
	json_int_t grpc = json_integer_value(code);
	const char *text = json_is_string(msg) ? json_string_value(msg) : "";
	enum attempt a;
	switch (grpc) {
	case 16: /* Unauthenticated: "invalid auth token" */
		a = BAD_TOKEN;
		break;
	case 7: /* PermissionDenied */
		a = REFUSED_AUTH;
		break;
	case 1:  /* Canceled */
	case 4:  /* DeadlineExceeded */
	case 8:  /* ResourceExhausted: "too many requests" */
	case 10: /* Aborted */
	case 14: /* Unavailable: "no leader", "request timed out", "leader changed" */
		a = NO_ANSWER;
		break;
	default:
		/* InvalidArgument also carries the authentication refusals */
		if (strstr(text, "authentication failed") || strstr(text, "user name is empty") ||
		    strstr(text, "permission denied") || strstr(text, "invalid auth"))
			a = REFUSED_AUTH;
		else
			a = GARBLED;
		break;
	}
	json_decref(j);
	return a;
}

static enum attempt attempt_once(struct etcd_client *c, struct handle *h, const char *url,
				 const char *path, const char *payload, const char *token,
				 uint32_t timeout_ms, struct buffer *b, bool *maybe_applied)
{
	CURL *curl = h->curl;
	char full[2048];
	size_t ul = strlen(url), pl = strlen(path);
	if (ul + pl + 1 > sizeof(full))
		return NO_ANSWER;
	memcpy(full, url, ul);
	memcpy(full + ul, path, pl + 1);

	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	hdr = hdr ? curl_slist_append(hdr, "Expect:") : NULL;
	char *auth = NULL;
	if (hdr != NULL && token != NULL) {
		size_t tl = strlen(token);
		auth = malloc(tl + 16);
		if (auth != NULL) {
			memcpy(auth, "Authorization: ", 15);
			memcpy(auth + 15, token, tl + 1);
			struct curl_slist *h2 = curl_slist_append(hdr, auth);
			if (h2 == NULL) {
				curl_slist_free_all(hdr);
				hdr = NULL;
			} else {
				hdr = h2;
			}
		}
	}
	if (hdr == NULL || (token != NULL && auth == NULL)) {
		curl_slist_free_all(hdr);
		free(auth);
		return NO_ANSWER;
	}

	curl_easy_setopt(curl, CURLOPT_URL, full);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, b);
	const struct etcd_conf *conf = c->conf;
	if (strncmp(url, "https://", 8) == 0) {
		curl_easy_setopt(curl, CURLOPT_SSLVERSION,
				 (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
		if (conf->ca_file)
			curl_easy_setopt(curl, CURLOPT_CAINFO, conf->ca_file);
		if (conf->cert_file)
			curl_easy_setopt(curl, CURLOPT_SSLCERT, conf->cert_file);
		if (conf->key_file)
			curl_easy_setopt(curl, CURLOPT_SSLKEY, conf->key_file);
	}

	atomic_fetch_add(&c->requests, 1);
	CURLcode rc = curl_easy_perform(curl);
	long status = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_off_t connected = 0;
	curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connected);
	curl_slist_free_all(hdr);
	free(auth);

	if (rc == CURLE_WRITE_ERROR && b->event_seen)
		return ANSWERED;
	/* a watch that etcd accepted and that saw nothing until the limit */
	if (b->stream && rc == CURLE_OPERATION_TIMEDOUT && status == 200)
		return ANSWERED;
	if (rc != CURLE_OK) {
		if (b->too_big)
			return GARBLED;
		if (is_tls_refusal(rc))
			return REFUSED_AUTH;
		/* once connected, the request may have been taken and applied */
		if (connected > 0 || rc == CURLE_OPERATION_TIMEDOUT)
			*maybe_applied = true;
		return rc == CURLE_OPERATION_TIMEDOUT ? TIMED_OUT : NO_ANSWER;
	}
	if (status != 200) {
		enum attempt a = classify_error_answer(status, b);
		if (a == NO_ANSWER)
			*maybe_applied = true; /* "request timed out" may still commit */
		return a;
	}
	return ANSWERED;
}

/* ---- authentication -------------------------------------------------------- */

/* Take a token from the endpoint at url; ANSWERED or why not. */
static enum attempt authenticate(struct etcd_client *c, struct handle *h, const char *url,
				 uint32_t timeout_ms)
{
	json_t *body = json_pack("{s:s, s:s}", "name", c->conf->username, "password",
				 c->conf->password ? c->conf->password : "");
	char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (payload == NULL)
		return NO_ANSWER;
	struct buffer b = {0};
	bool maybe = false;
	enum attempt a = attempt_once(c, h, url, "/v3/auth/authenticate", payload, NULL, timeout_ms,
				      &b, &maybe);
	free(payload);
	if (a == ANSWERED) {
		json_error_t jerr;
		json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
		json_t *tok = j ? json_object_get(j, "token") : NULL;
		if (json_is_string(tok)) {
			char *t = strdup(json_string_value(tok));
			if (t == NULL) {
				a = NO_ANSWER;
			} else {
				pthread_mutex_lock(&c->lock);
				free(c->token);
				c->token = t;
				pthread_mutex_unlock(&c->lock);
			}
		} else {
			a = GARBLED;
		}
		json_decref(j);
	} else if (a == BAD_TOKEN) {
		a = REFUSED_AUTH;
	}
	free(b.data);
	return a;
}

static char *token_copy(struct etcd_client *c)
{
	pthread_mutex_lock(&c->lock);
	char *t = c->token ? strdup(c->token) : NULL;
	pthread_mutex_unlock(&c->lock);
	return t;
}

/* One endpoint, with (re)authentication when a username is set. */
static enum attempt attempt_endpoint(struct etcd_client *c, struct handle *h, const char *url,
				     const char *path, const char *payload, uint32_t timeout_ms,
				     struct buffer *b, bool *maybe_applied, bool stream)
{
	bool fresh_token = false;
	for (int tries = 0; tries < 2; tries++) {
		char *token = NULL;
		if (c->conf->username != NULL) {
			token = token_copy(c);
			if (token == NULL) {
				enum attempt a = authenticate(c, h, url, timeout_ms);
				if (a != ANSWERED)
					return a;
				fresh_token = true;
				token = token_copy(c);
				if (token == NULL)
					return NO_ANSWER;
			}
		}
		free(b->data);
		*b = (struct buffer){.stream = stream};
		enum attempt a = attempt_once(c, h, url, path, payload, token, timeout_ms, b,
					      maybe_applied);
		free(token);
		if (a != BAD_TOKEN)
			return a;
		if (c->conf->username == NULL || fresh_token)
			return REFUSED_AUTH;
		/* the token expired (etcd keeps simple tokens 5 minutes): get another */
		pthread_mutex_lock(&c->lock);
		free(c->token);
		c->token = NULL;
		pthread_mutex_unlock(&c->lock);
	}
	return REFUSED_AUTH;
}

/* ---- requests -------------------------------------------------------------- */

static void backoff_after(struct etcd_client *c, int err)
{
	atomic_fetch_add(&c->errors, 1);
	atomic_store(&c->last_error, err);
	pthread_mutex_lock(&c->lock);
	c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_FIRST_MS : c->backoff_ms * 2;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	c->backoff_until = now_ms() + c->backoff_ms;
	pthread_mutex_unlock(&c->lock);
}

void etcd_note_error(struct etcd_client *c, int err)
{
	atomic_store(&c->last_error, err);
}

void etcd_backoff_reset(struct etcd_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->backoff_ms = 0;
	c->backoff_until = 0;
	pthread_mutex_unlock(&c->lock);
}

bool etcd_backing_off(struct etcd_client *c, uint64_t *until_ms)
{
	pthread_mutex_lock(&c->lock);
	uint64_t until = c->backoff_until;
	pthread_mutex_unlock(&c->lock);
	if (until_ms)
		*until_ms = until;
	return until != 0 && now_ms() < until;
}

/* Every endpoint in turn from the preferred one; the body parsed in *resp. */
static int request(struct etcd_client *c, const char *path, json_t *body, uint32_t timeout_ms,
		   bool stream, json_t **resp, struct etcd_outcome *out)
{
	if (resp)
		*resp = NULL;
	if (out)
		out->maybe_applied = false;
	if (timeout_ms == 0)
		timeout_ms = c->timeout_ms;
	char *payload = json_dumps(body, JSON_COMPACT);
	struct handle *h = handle_get(c);
	if (payload == NULL || h == NULL) {
		free(payload);
		if (h)
			handle_put(c, h);
		return ENOMEM;
	}
	bool timed_out = false, maybe = false;
	int err = ECONNREFUSED;
	size_t first = atomic_load(&c->preferred);
	struct buffer b = {0};
	for (size_t k = 0; k < c->nurls; k++) {
		size_t i = (first + k) % c->nurls;
		enum attempt a = attempt_endpoint(c, h, c->urls[i], path, payload, timeout_ms, &b,
						  &maybe, stream);
		if (a == TIMED_OUT) {
			timed_out = true;
			continue;
		}
		if (a == NO_ANSWER)
			continue;
		if (a == ANSWERED) {
			atomic_store(&c->preferred, i);
			err = 0;
		} else {
			err = a == REFUSED_AUTH ? EACCES : EPROTO;
		}
		break;
	}
	if (err == ECONNREFUSED && timed_out)
		err = ETIMEDOUT;
	if (err == 0 && !stream) {
		json_error_t jerr;
		json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
		if (!json_is_object(j)) {
			json_decref(j);
			err = EPROTO;
		} else if (resp) {
			*resp = j;
		} else {
			json_decref(j);
		}
	} else if (err == 0 && stream && !b.event_seen) {
		err = EAGAIN; /* the watch ran to its time limit: nothing happened */
	}
	free(b.data);
	free(payload);
	handle_put(c, h);
	if (out)
		out->maybe_applied = maybe;
	if (err != 0 && err != EAGAIN)
		backoff_after(c, err);
	else
		etcd_backoff_reset(c);
	return err;
}

int etcd_post(struct etcd_client *c, const char *path, json_t *body, uint32_t timeout_ms,
	      json_t **resp, struct etcd_outcome *out)
{
	return request(c, path, body, timeout_ms, false, resp, out);
}

/* ---- watch streams ----------------------------------------------------------- */

/* The gateway sends one JSON message per line; look at the complete ones
 * not looked at yet for events or a cancelled watch. */
static bool stream_has_event(struct buffer *b)
{
	for (;;) {
		char *nl = memchr(b->data + b->scanned, '\n', b->len - b->scanned);
		size_t end = nl ? (size_t)(nl - b->data) : b->len;
		json_error_t jerr;
		json_t *j = json_loadb(b->data + b->scanned, end - b->scanned, 0, &jerr);
		if (j == NULL)
			return false; /* incomplete: wait for more */
		json_t *r = json_object_get(j, "result");
		json_t *ev = r ? json_object_get(r, "events") : NULL;
		bool hit = (json_is_array(ev) && json_array_size(ev) > 0) ||
			   json_is_true(json_object_get(r, "canceled")) ||
			   json_object_get(r, "compact_revision") != NULL ||
			   json_object_get(j, "error") != NULL;
		json_decref(j);
		if (hit)
			return true;
		if (nl == NULL) {
			b->scanned = b->len;
			return false;
		}
		b->scanned = end + 1;
	}
}

int etcd_stream_until_event(struct etcd_client *c, const char *path, json_t *body,
			    uint32_t max_ms)
{
	return request(c, path, body, max_ms, true, NULL, NULL);
}

/* ---- counters -------------------------------------------------------------- */

uint64_t etcd_requests(const struct etcd_client *c)
{
	return atomic_load(&c->requests);
}

uint64_t etcd_errors(const struct etcd_client *c)
{
	return atomic_load(&c->errors);
}

int etcd_last_error(const struct etcd_client *c)
{
	return atomic_load(&c->last_error);
}
