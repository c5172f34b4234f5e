/*
 * qstate.h - the caches' object states: for every quantum unit where a
 * slab has ever been, one byte that says whether a cached object starting
 * there is with a caller.  It is what lets vmem_free of a cached size
 * check, without a lock, that it names exactly one outstanding allocation
 * (qcache.c, Q7).
 *
 * A unit's byte is
 *   0                 no object starts here, or one that was never handed out;
 *   k (1..16)         an object of k quanta starts here and a caller holds it;
 *   QSTATE_FREED | k  such an object was handed out and has been freed.
 * An allocation stores k with a plain store: only the thread that took the
 * object from a magazine or a slab can write it, since nobody else holds
 * it.  A free must turn k into QSTATE_FREED | k and fail on anything else,
 * and two threads may try at once (a double free racing with itself), so
 * it is one compare-and-exchange: the one atomic instruction a checked
 * pair costs, and only in a process that has more than one thread (a
 * single thread cannot race with itself).  The high bit keeps the history a debug report needs to
 * tell a double free from a free of something never allocated.
 *
 * The bytes live in leaves of QSTATE_LEAF_UNITS units, one page each, found
 * through an open-addressed table keyed by leaf number, with a small
 * direct-mapped first level in front of it.  Readers take no lock: a leaf is published (key stored with release) after it is filled,
 * a table after it is complete, and nothing is ever taken out or unmapped
 * while the arena lives, so a reader holding an old table or leaf still
 * reads memory that means what it meant.  A reader can never miss a leaf
 * it needs: an object is handed out only after its slab's leaf was
 * published, and its free comes after that.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_QSTATE_H
#define VMEM_QSTATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "vmem.h"

#define QSTATE_LEAF_SHIFT 12
#define QSTATE_LEAF_UNITS (1u << QSTATE_LEAF_SHIFT)
#define QSTATE_FREED 0x80u

struct qstate_entry {
	uint64_t key;  /* leaf number + 1; 0: empty */
	uint8_t *leaf; /* QSTATE_LEAF_UNITS bytes */
};

struct qstate_table {
	uint64_t mask;   /* entries - 1 */
	unsigned int shift; /* 64 - log2(entries) */
	uint64_t used;
	size_t bytes;
	struct qstate_table *older; /* kept mapped for readers until qstate_fini */
	struct qstate_entry e[];
};

#define QSTATE_DIRECT 64

struct qstate {
	/* the first leaf of each key modulo QSTATE_DIRECT, where a lookup
	 * looks first: set once, never replaced, so a reader sees either an
	 * empty slot or the leaf for good (an arena of up to 64 leaves, 2^18
	 * units, never reaches the table) */
	struct qstate_entry direct[QSTATE_DIRECT];
	struct qstate_table *table; /* every leaf */
	pthread_mutex_t lock; /* inserts and growth */
	uint64_t nleaves;
	size_t bytes; /* leaves and tables mapped */
};

/* The byte of unit u, or NULL if no slab has ever covered it. */
static inline uint8_t *qstate_byte(const struct qstate *m, uint64_t u)
{
	uint64_t key = (u >> QSTATE_LEAF_SHIFT) + 1;
	const struct qstate_entry *d = &m->direct[key % QSTATE_DIRECT];
	if (likely(__atomic_load_n(&d->key, __ATOMIC_ACQUIRE) == key))
		return d->leaf + (u & (QSTATE_LEAF_UNITS - 1));
	const struct qstate_table *t = __atomic_load_n(&m->table, __ATOMIC_ACQUIRE);
	uint64_t h = (key * 0x9e3779b97f4a7c15ull) >> t->shift;
	for (;;) {
		const struct qstate_entry *e = &t->e[h];
		uint64_t k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
		if (k == key)
			return e->leaf + (u & (QSTATE_LEAF_UNITS - 1));
		if (k == 0)
			return NULL;
		h = (h + 1) & t->mask;
	}
}

/* The state byte at p, read without a lock while frees may change it. */
static inline uint8_t qstate_read(const uint8_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A checked free of the object of k quanta at addr, units of 2^shift:
 * its state byte (now saying freed) if a caller held exactly that object,
 * else NULL.  An addr inside a unit is no object's start, though its unit
 * may be.  While the process has one thread no other free can race with
 * this one, and a plain load and store are as exact as the
 * compare-and-exchange. */
static inline uint8_t *qstate_free(const struct qstate *m, vmem_addr_t addr, unsigned int shift,
				   uint8_t k)
{
	uint64_t u = addr >> shift;
	uint8_t *p = u << shift == addr ? qstate_byte(m, u) : NULL;
	if (p == NULL)
		return NULL;
	if (likely(os_single_threaded())) {
		if (qstate_read(p) != k)
			return NULL;
		__atomic_store_n(p, (uint8_t)(QSTATE_FREED | k), __ATOMIC_RELAXED);
		return p;
	}
	uint8_t want = k;
	if (!__atomic_compare_exchange_n(p, &want, (uint8_t)(QSTATE_FREED | k), false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return NULL;
	return p;
}

/* An object of k quanta, whose state byte is at p, goes to a caller. */
static inline void qstate_alloc(uint8_t *p, uint8_t k)
{
	__atomic_store_n(p, k, __ATOMIC_RELAXED);
}

int qstate_init(struct qstate *m);  /* 0 or ENOMEM */
void qstate_fini(struct qstate *m);
/* Make sure units [u, u + n) have bytes, all 0 (a new slab: no history);
 * n within one leaf.  0 or ENOMEM. */
int qstate_cover(struct qstate *m, uint64_t u, uint64_t n);
/* Call fn for every leaf: its first unit and its bytes (the checker). */
void qstate_each_leaf(const struct qstate *m, void (*fn)(void *arg, uint64_t u0, const uint8_t *b),
		      void *arg);

#endif /* VMEM_QSTATE_H */
