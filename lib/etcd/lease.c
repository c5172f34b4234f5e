/*
 * lease.c - the connection's lease and the thread that keeps it alive.
 *
 * etcd deletes every key attached to a lease once it has gone `granted TTL`
 * seconds without a keepalive.  The thread sends one every third of ttl_s
 * (more often after a failure) and counts from the moment it *sent* the last
 * keepalive that etcd accepted: etcd cannot have expired the lease earlier
 * than ttl_s after that, since ttl_s <= granted TTL.  Once ttl_s has passed
 * without an accepted keepalive, or etcd answers that the lease is gone, the
 * lease is lost: the connection is fenced (source_lease_lost) before, or at
 * the latest when, etcd frees its blocks.  Each keepalive's timeout is cut
 * to the time left, so a stalled etcd cannot hold the verdict back.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "etcd_impl.h"

struct lease {
	struct vmem_etcd *src;
	struct etcd_client *c;
	int64_t id, granted_ttl;
	uint32_t ttl_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stop, lost;
};

static void *keepalive(void *arg)
{
	struct lease *l = arg;
	uint64_t period = l->ttl_ms / 3, last_ok = now_ms();
	uint64_t next = last_ok + period;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->stop && now_ms() < next)
			cond_wait_until(&l->cv, &l->lock, next);
		if (l->stop)
			break;
		pthread_mutex_unlock(&l->lock);

		uint64_t sent = now_ms(), deadline = last_ok + l->ttl_ms;
		uint64_t left = deadline > sent ? deadline - sent : 0;
		int64_t ttl = 0;
		int err = left > 0 ? etcd_lease_keepalive(l->c, l->id, (uint32_t)left, &ttl) : ETIMEDOUT;
		bool gone = err == 0 && ttl <= 0;
		if (err == 0 && !gone) {
			last_ok = sent;
			next = sent + period;
		} else {
			/* try again soon, but not in a tight loop */
			next = now_ms() + (period / 4 > 50 ? period / 4 : 50);
		}
		if (gone || now_ms() >= last_ok + l->ttl_ms) {
			pthread_mutex_lock(&l->lock);
			l->lost = true;
			pthread_mutex_unlock(&l->lock);
			if (gone)
				etcd_note_error(l->c, ENOLINK);
			source_lease_lost(l->src);
			return NULL;
		}
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int lease_start(struct vmem_etcd *src, struct etcd_client *c, const struct etcd_conf *conf,
		struct lease **lp)
{
	struct lease *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return ENOMEM;
	l->src = src;
	l->c = c;
	l->ttl_ms = conf->ttl_s > UINT32_MAX / 1000 ? UINT32_MAX : conf->ttl_s * 1000;
	int err = etcd_lease_grant(c, conf->ttl_s, &l->id, &l->granted_ttl);
	if (err) {
		free(l);
		return err;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&l->thread, NULL, keepalive, l) != 0) {
		etcd_lease_revoke(c, l->id);
		pthread_mutex_destroy(&l->lock);
		pthread_cond_destroy(&l->cv);
		free(l);
		return EAGAIN;
	}
	*lp = l;
	return 0;
}

int64_t lease_id(const struct lease *l)
{
	return l ? l->id : 0;
}

void lease_stop(struct lease *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	if (!l->lost)
		etcd_lease_revoke(l->c, l->id);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cv);
	free(l);
}
