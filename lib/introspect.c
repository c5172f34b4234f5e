/*
 * introspect.c - looking inside an arena: sizes, containment, walks,
 * statistics and the human-readable dump.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <string.h>

#include "vmem_impl.h"

VMEM_API vmem_size_t vmem_size(vmem_t *vm, int typemask)
{
	if (vm == NULL)
		return 0;
	pthread_mutex_lock(&vm->lock);
	vmem_size_t n = 0;
	if ((typemask & (VMEM_ALLOC | VMEM_FREE)) == (VMEM_ALLOC | VMEM_FREE) ||
	    (typemask & VMEM_SPAN) != 0)
		n = vm->span_total;
	else if (typemask & VMEM_ALLOC)
		n = vm->alloc_total;
	else if (typemask & VMEM_FREE)
		n = arena_free_total(vm);
	pthread_mutex_unlock(&vm->lock);
	return n;
}

VMEM_API int vmem_contains(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	if (vm == NULL || size == 0 || size - 1 > VMEM_ADDR_MAX - addr)
		return 0;
	vmem_addr_t last = addr + (size - 1);
	pthread_mutex_lock(&vm->lock);
	bt_idx si = tree_span_floor(vm, addr);
	int in = si != BT_NIL && bt_last(BT(vm, si)) >= last;
	pthread_mutex_unlock(&vm->lock);
	return in;
}

static int walk_type(const struct bt *b)
{
	if (bt_is_span(b))
		return VMEM_SPAN;
	return b->type == BT_FREE ? VMEM_FREE : VMEM_ALLOC;
}

VMEM_API int vmem_walk(vmem_t *vm, int typemask, vmem_walk_fn *fn, void *arg)
{
	if (vm == NULL || fn == NULL || (typemask & ~(VMEM_ALLOC | VMEM_FREE | VMEM_SPAN)) != 0)
		return EINVAL;
	pthread_mutex_lock(&vm->lock);
	for (bt_idx i = BT(vm, BT_HEAD)->next; i != BT_HEAD; i = BT(vm, i)->next) {
		const struct bt *b = BT(vm, i);
		int t = walk_type(b);
		if (t & typemask)
			fn(arg, b->start, b->size, t);
	}
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static void stats_fill(const vmem_t *vm, vmem_stats_t *full)
{
	memset(full, 0, sizeof(*full));
	full->size = sizeof(*full);
	full->span_total = vm->span_total;
	full->alloc_total = vm->alloc_total;
	full->free_total = arena_free_total(vm);
	full->cached_total = 0;
	full->import_total = vm->import_total;
	full->nspans = vm->nspans;
	full->nalloc = vm->nalloc;
	full->nfree = vm->nfree;
	full->allocs = vm->allocs;
	full->frees = vm->frees;
	full->fails = vm->fails;
	full->imports = vm->imports;
	full->releases = vm->releases;
	full->waits = vm->waits;
	full->tag_bytes = vm->bt_bytes;
	full->hash_bytes = vm->hash_bytes;
	full->arena_bytes = vm->bt_bytes + vm->hash_bytes + vm->self_bytes + qcache_bytes(vm);
}

/* Every figure, the caches' included; returns with the arena locked. */
static void stats_take_locked(vmem_t *vm, vmem_stats_t *full)
{
	vmem_stats_t qc;
	/* the caches first: their locks come before the arena's */
	memset(&qc, 0, sizeof(qc));
	if (vm->qc != NULL)
		qcache_stats(vm, &qc);
	pthread_mutex_lock(&vm->lock);
	stats_fill(vm, full);
	full->allocs += qc.allocs;
	full->frees += qc.frees;
	full->cached_total = qc.cached_total;
	full->qcache_hits = qc.qcache_hits;
	full->qcache_misses = qc.qcache_misses;
}

VMEM_API int vmem_get_stats(vmem_t *vm, vmem_stats_t *st)
{
	if (vm == NULL || st == NULL || st->size < offsetof(vmem_stats_t, hash_bytes))
		return EINVAL;
	vmem_stats_t full;
	stats_take_locked(vm, &full);
	pthread_mutex_unlock(&vm->lock);
	uint32_t n = st->size < sizeof(full) ? st->size : (uint32_t)sizeof(full);
	/* size and reserved are the caller's; copy the rest up to n */
	memcpy((char *)st + offsetof(vmem_stats_t, span_total),
	       (const char *)&full + offsetof(vmem_stats_t, span_total),
	       n - offsetof(vmem_stats_t, span_total));
	return 0;
}

static const char *dump_type(const struct bt *b)
{
	switch (b->type) {
	case BT_SPAN:
		return "span";
	case BT_SPAN_IMPORT:
		return "span (imported)";
	case BT_FREE:
		return "free";
	case BT_BUSY_X:
		return "alloc (xalloc)";
	case BT_BUSY_QC:
		return "alloc (qcache)";
	default:
		return "alloc";
	}
}

VMEM_API int vmem_dump(vmem_t *vm, FILE *fp)
{
	if (vm == NULL || fp == NULL)
		return EINVAL;
	vmem_stats_t st;
	stats_take_locked(vm, &st);
	/* the name comes first, so a reader (and grep) can tell dumps apart */
	fprintf(fp, "%s: vmem arena, quantum %llu, qcache_max %llu%s\n", vm->name,
		(unsigned long long)vm->quantum, (unsigned long long)vm->qcache_max,
		vm->debug ? ", debug" : "");
	fprintf(fp, "  units: %llu in spans, %llu allocated, %llu free, %llu cached, %llu imported\n",
		(unsigned long long)st.span_total, (unsigned long long)st.alloc_total,
		(unsigned long long)st.free_total, (unsigned long long)st.cached_total,
		(unsigned long long)st.import_total);
	fprintf(fp, "  segments: %llu spans, %llu allocated, %llu free\n",
		(unsigned long long)st.nspans, (unsigned long long)st.nalloc,
		(unsigned long long)st.nfree);
	fprintf(fp,
		"  calls: %llu allocs, %llu frees, %llu fails; %llu imports, %llu releases, "
		"%llu waits; qcache %llu hits, %llu misses\n",
		(unsigned long long)st.allocs, (unsigned long long)st.frees,
		(unsigned long long)st.fails, (unsigned long long)st.imports,
		(unsigned long long)st.releases, (unsigned long long)st.waits,
		(unsigned long long)st.qcache_hits, (unsigned long long)st.qcache_misses);
	fprintf(fp, "  memory: %llu bytes of tags (%u mapped, %u unused), %llu bytes of hash "
		    "(%llu buckets, load %.2f)\n",
		(unsigned long long)vm->bt_bytes, vm->bt_cap, vm->bt_nunused,
		(unsigned long long)vm->hash_bytes, (unsigned long long)(vm->hash_mask + 1),
		(double)vm->nalloc / (double)(vm->hash_mask + 1));
	fprintf(fp, "  freelists:");
	if (!vm->fl_on)
		fprintf(fp, " not built (no instant or best fit yet)");
	else if (vm->fl_bitmap == 0)
		fprintf(fp, " all empty");
	for (unsigned int k = 0; k < VMEM_NCLASS; k++) {
		if (!(vm->fl_bitmap & (1ull << k)))
			continue;
		unsigned long n = 0;
		for (bt_idx i = vm->fl_head[k]; i != BT_NIL; i = BT(vm, i)->lnext)
			n++;
		fprintf(fp, " [2^%u: %lu]", k, n);
	}
	fprintf(fp, "\n  segments in address order:\n");
	unsigned long shown = 0, limit = 64;
	for (bt_idx i = BT(vm, BT_HEAD)->next; i != BT_HEAD; i = BT(vm, i)->next) {
		const struct bt *b = BT(vm, i);
		if (!bt_is_span(b) && shown >= limit)
			continue;
		if (!bt_is_span(b))
			shown++;
		fprintf(fp, "  %s[%#llx, %#llx] %llu units: %s\n", bt_is_span(b) ? "" : "  ",
			(unsigned long long)b->start, (unsigned long long)bt_last(b),
			(unsigned long long)b->size, dump_type(b));
	}
	if (shown >= limit && st.nalloc + st.nfree > limit)
		fprintf(fp, "    ... %llu more segments not shown\n",
			(unsigned long long)(st.nalloc + st.nfree - limit));
	pthread_mutex_unlock(&vm->lock);
	/* after the arena's lock: the caches' locks come first in the order */
	qcache_dump(vm, fp);
	return ferror(fp) ? EIO : 0;
}
