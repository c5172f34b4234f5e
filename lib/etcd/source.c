/*
 * source.c - a connection to one pool, as an import source for arenas.
 *
 * What this connection holds is a list of runs: consecutive blocks claimed
 * in one transaction.  A run is a spare (claimed ahead by prefetch), in use
 * (an arena's span), pending (its release not yet accepted by etcd; an
 * unsettled claim is pending too, since a release guarded by owner and lease
 * deletes the keys if they turn out to be ours and nothing otherwise), or
 * orphaned (in an arena after the lease was lost: etcd already deleted it).
 *
 * Claims choose blocks from a view of the taken ones: the block keys as
 * last read, plus everything this connection holds.  A claim compares each
 * chosen key's create_revision with 0 and the config's mod_revision with
 * the one read at open (see pool.c on destroy); when it fails, its failure
 * branch reads the config and every block key, which becomes the new view,
 * so a conflict costs one round trip.  Claims are serialized per connection
 * (claim_lock) so that two of ours never pick the same blocks; the state
 * lock is never held across a request.
 *
 * The background thread does what callers should not wait for: it keeps
 * `prefetch` spares and deletes released runs, waiting out the client's
 * backoff when etcd does not answer.  Spares come first, since an import
 * may be waiting for them and a release only holds blocks a little longer.
 * Callers wake it as seldom as they can, after unlocking, because on a busy
 * machine a woken thread takes the caller's CPU: an import wakes it only
 * once fewer than half the spares are left (it tops them up whenever it
 * runs, at the latest after a second), and a release only when it is the
 * first one pending.  Then one transaction claims the missing spares, and
 * one deletes up to RELEASE_BATCH released runs.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd_impl.h"

enum run_state { RUN_SPARE, RUN_INUSE, RUN_PENDING, RUN_ORPHAN };

struct run {
	uint64_t first;
	uint32_t n;
	enum run_state state;
	/* the first release attempt that may have gone through unanswered, or
	 * 0: keys found gone later are put down to it (etcd applies requests
	 * in the order they come, and a later retry cannot delete keys the
	 * first one deleted).  One attempt can cover a whole batch of runs,
	 * so it is counted once. */
	uint64_t maybe_attempt;
};

struct vmem_etcd {
	struct etcd_conf conf;
	struct etcd_client *c;
	char *config_key, *bfirst, *bend, *owner_val;
	size_t bfirst_len;
	struct pool_conf pc;
	int64_t config_rev; /* the config's mod_revision every claim compares */
	struct lease *lease;
	int64_t lease_id;

	pthread_mutex_t claim_lock; /* one claim at a time */
	pthread_mutex_t lock;       /* everything below */
	pthread_cond_t work;        /* to the background thread */
	pthread_cond_t changed;     /* from it: a release went through */
	struct run *runs;
	size_t nruns, cap;
	uint64_t held, spares, pending; /* blocks held; spare runs; pending runs */
	uint64_t claims, releases, conflicts;
	uint64_t release_attempts; /* numbers the attempts, for maybe_attempt; background thread only */
	uint64_t prefetch_after; /* no prefetch before (ms): the pool looked full */
	bool lost, closing, stop;

	uint64_t *taken; /* the view: sorted block indices thought taken */
	size_t ntaken, taken_cap;
	bool view_valid;
	int64_t view_rev; /* the store's revision the view was read at */
	uint64_t cursor;  /* where the next search starts */
	uint64_t jitter;  /* xorshift state: where a search goes after a conflict */

	pthread_t bg;
	bool bg_running;
};

static atomic_uint opened_count;

/* A release compares owner and lease over each run's keys: two compares a
 * run, and etcd takes at most 128 (--max-txn-ops) in one transaction. */
#define RELEASE_BATCH 64

/* An import that leaves fewer spares than this wakes the background thread. */
static uint64_t refill_mark(const struct vmem_etcd *s)
{
	return (s->conf.prefetch + 1) / 2;
}

/* ---- runs (lock held) ------------------------------------------------------ */

static struct run *run_find(struct vmem_etcd *s, uint64_t first, enum run_state state)
{
	for (size_t i = 0; i < s->nruns; i++)
		if (s->runs[i].first == first && s->runs[i].state == state)
			return &s->runs[i];
	return NULL;
}

static int run_add(struct vmem_etcd *s, uint64_t first, uint32_t n, enum run_state state)
{
	if (s->nruns == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct run *r = realloc(s->runs, cap * sizeof(*r));
		if (r == NULL)
			return ENOMEM;
		s->runs = r;
		s->cap = cap;
	}
	s->runs[s->nruns++] = (struct run){first, n, state, false};
	if (state != RUN_ORPHAN)
		s->held += n;
	s->spares += state == RUN_SPARE;
	s->pending += state == RUN_PENDING;
	return 0;
}

static void run_set_state(struct vmem_etcd *s, struct run *r, enum run_state state)
{
	s->spares -= r->state == RUN_SPARE;
	s->pending -= r->state == RUN_PENDING;
	if (r->state == RUN_ORPHAN)
		s->held += r->n;
	r->state = state;
	s->spares += state == RUN_SPARE;
	s->pending += state == RUN_PENDING;
	if (state == RUN_ORPHAN)
		s->held -= r->n;
}

static void run_remove(struct vmem_etcd *s, struct run *r)
{
	run_set_state(s, r, RUN_ORPHAN);
	*r = s->runs[--s->nruns];
}

/* ---- the view (lock held) ----------------------------------------------------- */

static size_t lower_bound(const uint64_t *a, size_t n, uint64_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int view_reserve(struct vmem_etcd *s, size_t n)
{
	if (n <= s->taken_cap)
		return 0;
	size_t cap = s->taken_cap ? s->taken_cap : 64;
	while (cap < n)
		cap *= 2;
	uint64_t *t = realloc(s->taken, cap * sizeof(*t));
	if (t == NULL)
		return ENOMEM;
	s->taken = t;
	s->taken_cap = cap;
	return 0;
}

static void view_insert(struct vmem_etcd *s, uint64_t x)
{
	size_t j = lower_bound(s->taken, s->ntaken, x);
	if (j < s->ntaken && s->taken[j] == x)
		return;
	if (view_reserve(s, s->ntaken + 1) != 0) {
		s->view_valid = false; /* read it again rather than be wrong */
		return;
	}
	memmove(&s->taken[j + 1], &s->taken[j], (s->ntaken - j) * sizeof(*s->taken));
	s->taken[j] = x;
	s->ntaken++;
}

static void view_erase(struct vmem_etcd *s, uint64_t x)
{
	size_t j = lower_bound(s->taken, s->ntaken, x);
	if (j < s->ntaken && s->taken[j] == x) {
		memmove(&s->taken[j], &s->taken[j + 1], (s->ntaken - j - 1) * sizeof(*s->taken));
		s->ntaken--;
	}
}

/* The view from a read of every block key, with our own runs added: an
 * unsettled claim may not show in etcd yet must never be chosen again. */
static void view_set(struct vmem_etcd *s, const struct etcd_kvs *kvs)
{
	s->ntaken = 0;
	if (view_reserve(s, kvs->n + 1) != 0) {
		s->view_valid = false;
		return;
	}
	for (size_t i = 0; i < kvs->n; i++) {
		uint64_t idx;
		if (pool_block_index(kvs->kv[i].key, s->bfirst_len, &idx) && idx < s->pc.nblocks)
			s->taken[s->ntaken++] = idx; /* etcd returns keys in order */
	}
	s->view_valid = true;
	s->view_rev = kvs->revision;
	for (size_t r = 0; r < s->nruns && s->view_valid; r++)
		for (uint32_t k = 0; k < s->runs[r].n; k++)
			view_insert(s, s->runs[r].first + k);
}

/* The first start of m free consecutive blocks in [lo, hi). */
static bool view_search(const struct vmem_etcd *s, uint64_t lo, uint64_t hi, uint64_t m,
			uint64_t *first)
{
	size_t j = lower_bound(s->taken, s->ntaken, lo);
	uint64_t p = lo;
	while (p < hi) {
		uint64_t end = j < s->ntaken && s->taken[j] < hi ? s->taken[j] : hi;
		if (end - p >= m) {
			*first = p;
			return true;
		}
		if (end == hi)
			break;
		p = s->taken[j] + 1;
		j++;
	}
	return false;
}

/* Up to k free blocks: one run of k (run), or up to k single blocks. */
static size_t view_choose(struct vmem_etcd *s, size_t k, bool run, uint64_t *idx)
{
	uint64_t nb = s->pc.nblocks, c = s->cursor % nb, first;
	if (run) {
		if (view_search(s, c, nb, k, &first) || view_search(s, 0, nb, k, &first)) {
			for (size_t i = 0; i < k; i++)
				idx[i] = first + i;
			return k;
		}
		return 0;
	}
	size_t got = 0;
	uint64_t p = c;
	bool wrapped = false;
	while (got < k) {
		if (p >= nb) {
			if (wrapped || c == 0)
				break;
			wrapped = true;
			p = 0;
		}
		if (wrapped && p >= c)
			break;
		size_t j = lower_bound(s->taken, s->ntaken, p);
		if (j < s->ntaken && s->taken[j] == p) {
			p++;
			continue;
		}
		idx[got++] = p++;
	}
	return got;
}

/* ---- claims ------------------------------------------------------------------ */

static bool kv_is_ours(const struct vmem_etcd *s, const struct etcd_kv *kv)
{
	char *who;
	if (kv->lease != s->lease_id || owner_parse(kv->value, kv->value_len, &who) != 0)
		return false;
	bool ours = strcmp(who, s->conf.owner) == 0;
	free(who);
	return ours;
}

/* How many of the chosen blocks a read of the block keys shows as ours. */
static size_t count_ours(const struct vmem_etcd *s, const struct etcd_kvs *kvs,
			 const uint64_t *idx, size_t k)
{
	size_t ours = 0;
	for (size_t i = 0; i < kvs->n; i++) {
		uint64_t x;
		if (!pool_block_index(kvs->kv[i].key, s->bfirst_len, &x) || !kv_is_ours(s, &kvs->kv[i]))
			continue;
		for (size_t j = 0; j < k; j++)
			ours += idx[j] == x;
	}
	return ours;
}

static int view_refresh(struct vmem_etcd *s)
{
	struct etcd_kvs kvs;
	int err = etcd_range(s->c, s->bfirst, s->bend, &kvs);
	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	view_set(s, &kvs);
	pthread_mutex_unlock(&s->lock);
	etcd_kvs_free(&kvs);
	return 0;
}

/* Record a claimed set: one run, or one run per single block.  ENOLINK if
 * the lease was declared lost meanwhile: the keys go with the lease, and the
 * blocks must not be handed out. */
static int record_claim(struct vmem_etcd *s, const uint64_t *idx, size_t k, bool run,
			enum run_state state)
{
	pthread_mutex_lock(&s->lock);
	if (s->lost) {
		pthread_mutex_unlock(&s->lock);
		return ENOLINK;
	}
	for (size_t i = 0; i < k; i++)
		view_insert(s, idx[i]);
	if (run) {
		run_add(s, idx[0], (uint32_t)k, state);
	} else {
		for (size_t i = 0; i < k; i++)
			run_add(s, idx[i], 1, state);
	}
	s->cursor = idx[k - 1] + 1;
	if (state != RUN_PENDING)
		s->claims++;
	else
		pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The config changed under the connection: the same pool written again
 * goes on (with its new revision); anything else fences claims. */
static int config_changed(struct vmem_etcd *s, const struct etcd_kvs *cfg)
{
	struct pool_conf pc;
	if (cfg->n == 0)
		return ENOENT;
	int err = pool_config_parse(cfg->kv[0].value, cfg->kv[0].value_len, &pc);
	if (err)
		return err;
	if (pc.base != s->pc.base || pc.size != s->pc.size || pc.block != s->pc.block)
		return ENOENT; /* not the pool this connection opened */
	s->config_rev = cfg->kv[0].mod_revision;
	return 0;
}

static char *block_key(const struct vmem_etcd *s, uint64_t idx)
{
	char *key = malloc(s->bfirst_len + 17);
	if (key)
		snprintf(key, s->bfirst_len + 17, "%s%016llx", s->bfirst, (unsigned long long)idx);
	return key;
}

/* One claim transaction for the chosen blocks.  0 claimed; EAGAIN lost to
 * another owner (the view is then the one the failure branch read); else
 * an error. */
static int claim_txn(struct vmem_etcd *s, const uint64_t *idx, size_t k, bool run,
		     enum run_state state)
{
	json_t *cmp = json_array(), *ops = json_array();
	json_array_append_new(cmp, cmp_mod(s->config_key, s->config_rev));
	for (size_t i = 0; i < k; i++) {
		char *key = block_key(s, idx[i]);
		if (key == NULL) {
			json_decref(cmp);
			json_decref(ops);
			return ENOMEM;
		}
		json_array_append_new(cmp, cmp_create(key, 0));
		json_array_append_new(ops, op_put(key, s->owner_val, s->lease_id));
		free(key);
	}
	json_t *fail = json_pack("[o,o]", op_range(s->config_key, NULL, false, false),
				 op_range(s->bfirst, s->bend, false, false));
	bool ok;
	json_t *resp = NULL;
	struct etcd_outcome out;
	int err = etcd_txn(s->c, cmp, ops, fail, &ok, &resp, &out);
	if (err == 0 && ok) {
		json_decref(resp);
		return record_claim(s, idx, k, run, state);
	}
	if (err == 0) {
		struct etcd_kvs cfg, blocks;
		err = txn_range_kvs(resp, 0, &cfg);
		if (!err)
			err = txn_range_kvs(resp, 1, &blocks);
		json_decref(resp);
		if (err) {
			etcd_kvs_free(&cfg);
			return err;
		}
		if (cfg.n == 0 || cfg.kv[0].mod_revision != s->config_rev) {
			err = config_changed(s, &cfg);
			if (err)
				etcd_note_error(s->c, err);
			else
				err = EAGAIN;
		} else if (out.maybe_applied && count_ours(s, &blocks, idx, k) == k) {
			/* an earlier attempt on another endpoint went through */
			err = 0;
		} else {
			err = EAGAIN;
		}
		pthread_mutex_lock(&s->lock);
		view_set(s, &blocks);
		pthread_mutex_unlock(&s->lock);
		if (err == 0)
			err = record_claim(s, idx, k, run, state);
		etcd_kvs_free(&cfg);
		etcd_kvs_free(&blocks);
		return err;
	}
	json_decref(resp);
	if (!out.maybe_applied)
		return err;
	/* Unknown outcome: settle it by reading the keys back. */
	struct etcd_kvs kvs;
	if (etcd_range(s->c, s->bfirst, s->bend, &kvs) == 0) {
		size_t ours = count_ours(s, &kvs, idx, k);
		pthread_mutex_lock(&s->lock);
		view_set(s, &kvs);
		pthread_mutex_unlock(&s->lock);
		etcd_kvs_free(&kvs);
		if (ours == k)
			return record_claim(s, idx, k, run, state);
		if (ours == 0)
			return err;
	}
	/* unsettled, or partly ours: a guarded release deletes what is ours */
	record_claim(s, idx, k, run, RUN_PENDING);
	return err;
}

/* Claim k blocks (a run, or up to k singles for spares).  ENOMEM when a
 * fresh view shows no room. */
static int claim(struct vmem_etcd *s, size_t k, bool run, enum run_state state, uint64_t *first,
		 size_t *claimed)
{
	uint64_t *idx = malloc(k * sizeof(*idx));
	if (idx == NULL)
		return ENOMEM;
	int err = 0;
	bool fresh = false;
	pthread_mutex_lock(&s->claim_lock);
	for (int round = 0; round < 64; round++) {
		pthread_mutex_lock(&s->lock);
		bool lost = s->lost, valid = s->view_valid;
		size_t got = valid && !lost ? view_choose(s, k, run, idx) : 0;
		pthread_mutex_unlock(&s->lock);
		if (lost) {
			err = ENOLINK;
			break;
		}
		if (got == 0) {
			if (valid && fresh) {
				err = ENOMEM;
				break;
			}
			err = view_refresh(s);
			if (err)
				break;
			fresh = true;
			continue;
		}
		err = claim_txn(s, idx, got, run, state);
		if (err != EAGAIN) {
			if (err == 0) {
				*first = idx[0];
				*claimed = got;
			}
			break;
		}
		pthread_mutex_lock(&s->lock);
		s->conflicts++;
		/* The owner that won took the blocks after the cursor, and will
		 * take the next ones too: following it, a slower claimer would
		 * lose every round.  Search from somewhere else instead. */
		s->jitter ^= s->jitter << 13;
		s->jitter ^= s->jitter >> 7;
		s->jitter ^= s->jitter << 17;
		s->cursor = s->jitter % s->pc.nblocks;
		pthread_mutex_unlock(&s->lock);
		fresh = true;
		err = ENOMEM; /* if the rounds run out: contention looks like a full pool */
	}
	pthread_mutex_unlock(&s->claim_lock);
	free(idx);
	return err;
}

/* ---- releases ------------------------------------------------------------------ */

/* Delete the run's keys that are ours, in one txn guarded by owner and
 * lease over the run's range; a key that is no longer ours (another owner
 * claimed it after an operator's release) splits the run. */
static int release_range(struct vmem_etcd *s, uint64_t first, uint64_t n, bool *deleted,
			 bool *maybe)
{
	char *b0 = block_key(s, first), *b1 = block_key(s, first + n);
	if (b0 == NULL || b1 == NULL) {
		free(b0);
		free(b1);
		return ENOMEM;
	}
	json_t *cmp = json_pack("[o,o]", cmp_value_range(b0, b1, s->owner_val),
				cmp_lease_range(b0, b1, s->lease_id));
	bool ok;
	json_t *resp = NULL;
	struct etcd_outcome out;
	int err = etcd_txn(s->c, cmp, json_pack("[o]", op_delete(b0, b1)),
			   json_pack("[o]", op_range(b0, b1, false, false)), &ok, &resp, &out);
	free(b0);
	free(b1);
	*deleted = err == 0 && ok;
	*maybe = out.maybe_applied;
	if (err || ok) {
		json_decref(resp);
		return err;
	}
	struct etcd_kvs kvs;
	err = txn_range_kvs(resp, 0, &kvs);
	json_decref(resp);
	for (size_t i = 0; i < kvs.n && !err; i++) {
		uint64_t x;
		bool one, unsure;
		if (n > 1 && kv_is_ours(s, &kvs.kv[i]) &&
		    pool_block_index(kvs.kv[i].key, s->bfirst_len, &x)) {
			err = release_range(s, x, 1, &one, &unsure);
			*deleted |= one;
			*maybe |= unsure;
		}
	}
	etcd_kvs_free(&kvs);
	return err;
}

/* One transaction that deletes the keys of k runs, each guarded by owner
 * and lease over its range.  *deleted: it went through; false with 0: some
 * run holds a key that is not (or no longer) ours. */
static int release_runs_txn(struct vmem_etcd *s, const struct run *runs, size_t k, bool *deleted,
			    bool *maybe)
{
	json_t *cmp = json_array(), *ops = json_array();
	int err = 0;
	for (size_t i = 0; i < k && !err; i++) {
		char *b0 = block_key(s, runs[i].first), *b1 = block_key(s, runs[i].first + runs[i].n);
		if (b0 == NULL || b1 == NULL) {
			err = ENOMEM;
		} else {
			json_array_append_new(cmp, cmp_value_range(b0, b1, s->owner_val));
			json_array_append_new(cmp, cmp_lease_range(b0, b1, s->lease_id));
			json_array_append_new(ops, op_delete(b0, b1));
		}
		free(b0);
		free(b1);
	}
	*deleted = *maybe = false;
	if (err) {
		json_decref(cmp);
		json_decref(ops);
		return err;
	}
	bool ok;
	struct etcd_outcome out;
	err = etcd_txn(s->c, cmp, ops, NULL, &ok, NULL, &out);
	*deleted = err == 0 && ok;
	*maybe = out.maybe_applied;
	return err;
}

/* A number for the next release attempt.  Only the background thread
 * releases (release_batch), so the counter is its own: no lock. */
static uint64_t next_release_attempt(struct vmem_etcd *s)
{
	return ++s->release_attempts;
}

/* Attempt may have released run r unanswered; the first such one stays. */
static void note_unanswered(struct run *r, uint64_t attempt)
{
	if (r->maybe_attempt == 0)
		r->maybe_attempt = attempt;
}

/* Whether attempt is in seen[0..*n); adds it if not. */
static bool attempt_seen(uint64_t *seen, size_t *n, uint64_t attempt)
{
	for (size_t i = 0; i < *n; i++)
		if (seen[i] == attempt)
			return true;
	seen[(*n)++] = attempt;
	return false;
}

/* Release up to RELEASE_BATCH pending runs: all in one transaction or,
 * when one of them holds a key that is not ours (release_range then splits
 * it), each alone.  Stops at the first failure (the client is then backing
 * off).  Returns how many runs it settled. */
static size_t release_batch(struct vmem_etcd *s)
{
	struct run batch[RELEASE_BATCH];
	size_t k = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nruns && !s->lost && k < RELEASE_BATCH; i++)
		if (s->runs[i].state == RUN_PENDING)
			batch[k++] = s->runs[i];
	pthread_mutex_unlock(&s->lock);
	if (k == 0)
		return 0;

	/* settled: runs batch[0..settled) are done; txns: transactions that
	 * went through.  A run settled by a transaction that found its keys gone
	 * counts the unanswered attempt that may have deleted them, once per
	 * attempt however many runs it covered (a timed-out batch whose keys
	 * then go one run at a time is one transaction, not k). */
	size_t settled = 0;
	uint64_t txns = 0;
	uint64_t counted[RELEASE_BATCH];
	size_t ncounted = 0;
	bool went, maybe, whole = false;
	int err = 0;
	if (k > 1) {
		uint64_t attempt = next_release_attempt(s);
		err = release_runs_txn(s, batch, k, &went, &maybe);
		whole = err == 0 && went;
		for (size_t i = 0; i < k && maybe; i++)
			note_unanswered(&batch[i], attempt);
		if (whole) {
			settled = k;
			txns = 1;
		}
	}
	while (err == 0 && settled < k) {
		struct run *b = &batch[settled];
		uint64_t attempt = next_release_attempt(s);
		err = release_range(s, b->first, b->n, &went, &maybe);
		if (err == 0) {
			if (went || maybe)
				txns++;
			else if (b->maybe_attempt != 0 &&
				 !attempt_seen(counted, &ncounted, b->maybe_attempt))
				txns++;
			settled++;
		} else if (maybe) {
			note_unanswered(b, attempt);
		}
	}

	pthread_mutex_lock(&s->lock);
	s->releases += txns;
	for (size_t i = 0; i < k; i++) {
		struct run *r = run_find(s, batch[i].first, RUN_PENDING);
		if (r == NULL)
			continue;
		if (i < settled) {
			run_remove(s, r);
			for (uint32_t j = 0; j < batch[i].n; j++)
				view_erase(s, batch[i].first + j);
		} else {
			r->maybe_attempt = batch[i].maybe_attempt;
		}
	}
	if (settled > 0)
		pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	return settled;
}

/* ---- the background thread -------------------------------------------------------- */

static void prefetch(struct vmem_etcd *s)
{
	pthread_mutex_lock(&s->lock);
	size_t want = s->closing || s->lost || s->spares >= s->conf.prefetch
			      ? 0
			      : s->conf.prefetch - s->spares;
	pthread_mutex_unlock(&s->lock);
	if (want == 0)
		return;
	if (want > CLAIM_MAX_BLOCKS)
		want = CLAIM_MAX_BLOCKS;
	uint64_t first;
	size_t got;
	int err = claim(s, want, false, RUN_SPARE, &first, &got);
	if (err == ENOMEM) {
		pthread_mutex_lock(&s->lock);
		s->prefetch_after = now_ms() + 1000;
		pthread_mutex_unlock(&s->lock);
	}
}

static void *background(void *arg)
{
	struct vmem_etcd *s = arg;
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		uint64_t now = now_ms(), until;
		bool backoff = etcd_backing_off(s->c, &until);
		bool releases = s->pending > 0 && !s->lost;
		bool spares = !s->closing && !s->lost && s->spares < s->conf.prefetch;
		bool spares_now = spares && now >= s->prefetch_after;
		if ((releases || spares_now) && !backoff) {
			pthread_mutex_unlock(&s->lock);
			if (spares_now)
				prefetch(s);
			if (releases && !etcd_backing_off(s->c, NULL))
				release_batch(s);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		uint64_t wake = now + 1000;
		if (backoff && until < wake)
			wake = until;
		if (!backoff && spares && s->prefetch_after < wake)
			wake = s->prefetch_after;
		cond_wait_until(&s->work, &s->lock, wake);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- import and release callbacks ------------------------------------------------ */

static int source_import(void *arg, vmem_size_t size, int vmflags, vmem_addr_t *addrp)
{
	struct vmem_etcd *s = arg;
	uint64_t K = s->pc.block;
	uint64_t m = size / K + (size % K != 0);
	if (size == 0 || m > s->pc.nblocks || m > CLAIM_MAX_BLOCKS)
		return ENOMEM;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		if (s->lost) {
			pthread_mutex_unlock(&s->lock);
			etcd_note_error(s->c, ENOLINK);
			return ENOLINK;
		}
		for (size_t i = 0; m == 1 && s->spares > 0 && i < s->nruns; i++) {
			struct run *r = &s->runs[i];
			if (r->state == RUN_SPARE) {
				run_set_state(s, r, RUN_INUSE);
				*addrp = s->pc.base + r->first * K;
				bool refill = s->spares < refill_mark(s);
				pthread_mutex_unlock(&s->lock);
				if (refill)
					pthread_cond_signal(&s->work);
				return 0;
			}
		}
		pthread_mutex_unlock(&s->lock);
		if (etcd_backing_off(s->c, NULL)) {
			int e = etcd_last_error(s->c);
			return e ? e : ECONNREFUSED;
		}
		uint64_t first;
		size_t got;
		int err = claim(s, (size_t)m, true, RUN_INUSE, &first, &got);
		if (err == 0) {
			*addrp = s->pc.base + first * K;
			return 0;
		}
		if (err != ENOMEM || !(vmflags & VM_SLEEP))
			return err;
		/* exhausted: wait for some owner's release, then try again */
		pthread_mutex_lock(&s->lock);
		int64_t rev = s->view_rev;
		pthread_mutex_unlock(&s->lock);
		err = etcd_watch_deletes(s->c, s->bfirst, s->bend, rev, 1000);
		if (err != 0 && err != EAGAIN)
			return err;
		if (err == 0) {
			pthread_mutex_lock(&s->lock);
			s->view_valid = false;
			pthread_mutex_unlock(&s->lock);
		}
	}
}

static void source_release(void *arg, vmem_addr_t addr, vmem_size_t size)
{
	struct vmem_etcd *s = arg;
	(void)size;
	uint64_t first = (addr - s->pc.base) / s->pc.block;
	pthread_mutex_lock(&s->lock);
	struct run *r = run_find(s, first, RUN_INUSE);
	bool wake = false;
	if (r != NULL) {
		run_set_state(s, r, RUN_PENDING);
		/* with others pending, the thread is at work and finds this one too */
		wake = s->pending == 1;
	} else if ((r = run_find(s, first, RUN_ORPHAN)) != NULL) {
		run_remove(s, r); /* etcd dropped it with the lease */
	}
	pthread_mutex_unlock(&s->lock);
	if (wake)
		pthread_cond_signal(&s->work);
}

void source_lease_lost(struct vmem_etcd *s)
{
	pthread_mutex_lock(&s->lock);
	bool first_time = !s->lost;
	s->lost = true;
	/* etcd deleted every key of the lease: nothing is left to release */
	for (size_t i = 0; i < s->nruns;) {
		struct run *r = &s->runs[i];
		if (r->state == RUN_INUSE) {
			run_set_state(s, r, RUN_ORPHAN);
			i++;
		} else if (r->state != RUN_ORPHAN) {
			run_remove(s, r);
		} else {
			i++;
		}
	}
	pthread_cond_broadcast(&s->work);
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	if (first_time && s->conf.lease_lost != NULL)
		s->conf.lease_lost(s->conf.lease_lost_arg);
}

/* ---- open, attach, close, stats ------------------------------------------------ */

static int default_owner(struct etcd_conf *conf, unsigned n)
{
	char host[256];
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	size_t len = strlen(host) + 32;
	conf->owner = malloc(len);
	if (conf->owner == NULL)
		return ENOMEM;
	snprintf(conf->owner, len, "%s:%ld:%u", host, (long)getpid(), n);
	return 0;
}

static void source_free(struct vmem_etcd *s)
{
	etcd_client_free(s->c);
	free(s->config_key);
	free(s->bfirst);
	free(s->bend);
	free(s->owner_val);
	free(s->runs);
	free(s->taken);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->claim_lock);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->changed);
	conf_free(&s->conf);
	free(s);
}

static uint64_t owner_hash(const char *owner)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (; *owner; owner++)
		h = (h ^ (unsigned char)*owner) * 1099511628211ull;
	return h;
}

ETCD_API int vmem_etcd_open(const vmem_etcd_opts_t *o, const char *pool, vmem_etcd_t **srcp)
{
	if (srcp == NULL || !pool_name_ok(pool))
		return EINVAL;
	struct vmem_etcd *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->claim_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->work, &ca);
	pthread_cond_init(&s->changed, &ca);
	pthread_condattr_destroy(&ca);
	int err = conf_load(o, &s->conf);
	if (err) {
		free(s->conf.owner);
		pthread_mutex_destroy(&s->lock);
		pthread_mutex_destroy(&s->claim_lock);
		pthread_cond_destroy(&s->work);
		pthread_cond_destroy(&s->changed);
		free(s);
		return err;
	}
	/* every connection counts, whoever names its owner */
	unsigned n = atomic_fetch_add(&opened_count, 1) + 1;
	if (s->conf.owner == NULL)
		err = default_owner(&s->conf, n);
	if (!err)
		err = etcd_client_new(&s->conf, &s->c);
	if (!err) {
		s->config_key = pool_config_key(s->conf.prefix, pool);
		s->bfirst = pool_blocks_prefix(s->conf.prefix, pool);
		s->bend = pool_blocks_end(s->conf.prefix, pool);
		s->owner_val = owner_value(s->conf.owner);
		if (!s->config_key || !s->bfirst || !s->bend || !s->owner_val)
			err = ENOMEM;
	}
	if (!err) {
		s->bfirst_len = strlen(s->bfirst);
		err = pool_config_read(s->c, s->conf.prefix, pool, &s->pc, &s->config_rev);
	}
	if (!err) {
		s->cursor = owner_hash(s->conf.owner) % s->pc.nblocks;
		/* owners may share a name (the default one, across hosts): the
		 * jitter of each connection differs anyway */
		s->jitter = owner_hash(s->conf.owner) ^ ((uint64_t)getpid() << 32) ^ now_ms() ^
			    (uintptr_t)s;
		if (s->jitter == 0)
			s->jitter = 1;
		if (s->conf.ttl_s > 0) {
			err = lease_start(s, s->c, &s->conf, &s->lease);
			if (!err)
				s->lease_id = lease_id(s->lease);
		}
	}
	if (!err) {
		err = pthread_create(&s->bg, NULL, background, s);
		s->bg_running = err == 0;
		if (err) {
			lease_stop(s->lease);
			err = EAGAIN;
		}
	}
	if (err) {
		source_free(s);
		return err;
	}
	/* a fresh connection's view is read by its first claim */
	*srcp = s;
	return 0;
}

ETCD_API int vmem_etcd_attach(vmem_etcd_t *s, vmem_t *vm)
{
	if (s == NULL || vm == NULL)
		return EINVAL;
	vmem_size_t q = vmem_roundup_size(vm, 1);
	if (q == 0 || s->pc.block % q != 0 || s->pc.base % q != 0)
		return EINVAL;
	return vmem_set_import(vm, source_import, source_release, s, s->pc.block);
}

ETCD_API int vmem_etcd_close(vmem_etcd_t *s)
{
	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	for (size_t i = 0; i < s->nruns; i++)
		if (s->runs[i].state == RUN_SPARE || s->runs[i].state == RUN_INUSE)
			run_set_state(s, &s->runs[i], RUN_PENDING);
	pthread_cond_signal(&s->work);
	uint64_t deadline = now_ms() + s->conf.timeout_ms;
	while (s->pending > 0 && !s->lost && now_ms() < deadline)
		cond_wait_until(&s->changed, &s->lock, deadline);
	uint64_t left = s->pending;
	s->stop = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	if (s->bg_running)
		pthread_join(s->bg, NULL);
	lease_stop(s->lease);
	source_free(s);
	return left ? ETIMEDOUT : 0;
}

ETCD_API int vmem_etcd_get_stats(vmem_etcd_t *s, vmem_etcd_stats_t *st)
{
	if (s == NULL || st == NULL || st->size < STATS_V1_SIZE)
		return EINVAL;
	vmem_etcd_stats_t v = {0};
	pthread_mutex_lock(&s->lock);
	v.lease_lost = s->lost;
	v.blocks_held = s->held;
	v.spares = s->spares;
	v.claims = s->claims;
	v.releases = s->releases;
	v.conflicts = s->conflicts;
	v.pending_releases = s->pending;
	pthread_mutex_unlock(&s->lock);
	v.errors = etcd_errors(s->c);
	v.last_error = etcd_last_error(s->c);
	uint32_t size = st->size;
	memcpy(st, &v, size < sizeof(v) ? size : sizeof(v));
	st->size = size;
	return 0;
}

uint64_t vmem_etcd_requests(vmem_etcd_t *s)
{
	return etcd_requests(s->c);
}
