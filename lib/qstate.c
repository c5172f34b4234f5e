/*
 * qstate.c - the caches' object states (qstate.h explains them): leaves
 * and the table that finds them, grown under a mutex, read without one.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <string.h>

#include "os.h"
#include "qstate.h"

static struct qstate_table *qstate_table_new(struct qstate *m, unsigned int bits)
{
	size_t bytes = os_round_page(sizeof(struct qstate_table) +
				     ((size_t)1 << bits) * sizeof(struct qstate_entry));
	struct qstate_table *t = os_map(bytes); /* zero: every entry empty */
	if (t == NULL)
		return NULL;
	t->mask = ((uint64_t)1 << bits) - 1;
	t->shift = 64 - bits;
	t->bytes = bytes;
	__atomic_fetch_add(&m->bytes, bytes, __ATOMIC_RELAXED); /* read by stats */
	return t;
}

/* Put key -> leaf into t, which has room; lock held. */
static void qstate_put(struct qstate_table *t, uint64_t key, uint8_t *leaf)
{
	uint64_t h = (key * 0x9e3779b97f4a7c15ull) >> t->shift;
	while (t->e[h].key != 0)
		h = (h + 1) & t->mask;
	t->e[h].leaf = leaf;
	__atomic_store_n(&t->e[h].key, key, __ATOMIC_RELEASE); /* readers see a whole entry */
	t->used++;
}

int qstate_init(struct qstate *m)
{
	pthread_mutex_init(&m->lock, NULL);
	m->table = qstate_table_new(m, 6);
	return m->table != NULL ? 0 : ENOMEM;
}

void qstate_fini(struct qstate *m)
{
	struct qstate_table *t = m->table;
	if (t == NULL)
		return;
	for (uint64_t h = 0; h <= t->mask; h++)
		if (t->e[h].key != 0)
			os_unmap(t->e[h].leaf, QSTATE_LEAF_UNITS);
	while (t != NULL) {
		struct qstate_table *older = t->older;
		os_unmap(t, t->bytes);
		t = older;
	}
	m->table = NULL;
	pthread_mutex_destroy(&m->lock);
}

/* Room for one more entry at a load of at most 1/2; lock held.  The old
 * table stays mapped: readers may still be in it. */
static int qstate_make_room(struct qstate *m)
{
	struct qstate_table *t = m->table;
	if ((t->used + 1) * 2 <= t->mask + 1)
		return 0;
	struct qstate_table *n = qstate_table_new(m, 64 - t->shift + 1);
	if (n == NULL)
		return ENOMEM;
	for (uint64_t h = 0; h <= t->mask; h++)
		if (t->e[h].key != 0)
			qstate_put(n, t->e[h].key, t->e[h].leaf);
	n->older = t;
	__atomic_store_n(&m->table, n, __ATOMIC_RELEASE);
	return 0;
}

int qstate_cover(struct qstate *m, uint64_t u, uint64_t n)
{
	int err = 0;
	pthread_mutex_lock(&m->lock);
	uint8_t *p = qstate_byte(m, u);
	if (p == NULL) {
		uint8_t *leaf = NULL;
		err = qstate_make_room(m);
		if (err == 0 && (leaf = os_map(QSTATE_LEAF_UNITS)) == NULL)
			err = ENOMEM;
		if (err == 0) {
			uint64_t key = (u >> QSTATE_LEAF_SHIFT) + 1;
			struct qstate_entry *d = &m->direct[key % QSTATE_DIRECT];
			if (d->key == 0) { /* a direct slot is set once, never replaced */
				d->leaf = leaf;
				__atomic_store_n(&d->key, key, __ATOMIC_RELEASE);
			}
			qstate_put(m->table, key, leaf);
			m->nleaves++;
			__atomic_fetch_add(&m->bytes, QSTATE_LEAF_UNITS, __ATOMIC_RELAXED);
			p = leaf + (u & (QSTATE_LEAF_UNITS - 1));
		}
	}
	if (err == 0) {
		/* no reader can hold one of these objects: plain stores, then
		 * the slab is published by the cache's mutex */
		for (uint64_t i = 0; i < n; i++)
			__atomic_store_n(&p[i], 0, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

void qstate_each_leaf(const struct qstate *m, void (*fn)(void *arg, uint64_t u0, const uint8_t *b),
		      void *arg)
{
	const struct qstate_table *t = m->table;
	for (uint64_t h = 0; t != NULL && h <= t->mask; h++)
		if (t->e[h].key != 0)
			fn(arg, (t->e[h].key - 1) << QSTATE_LEAF_SHIFT, t->e[h].leaf);
}
