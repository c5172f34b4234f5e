/*
 * introspect.c - looking inside an arena: sizes, containment, walks,
 * statistics and the human-readable dump.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <string.h>

#include "arena_impl.h"

vmem_size_t arena_size(struct arena *ar, int typemask)
{
	pthread_mutex_lock(&ar->lock);
	vmem_size_t n = 0;
	if ((typemask & (VMEM_ALLOC | VMEM_FREE)) == (VMEM_ALLOC | VMEM_FREE) ||
	    (typemask & VMEM_SPAN) != 0)
		n = ar->span_total;
	else if (typemask & VMEM_ALLOC)
		n = ar->alloc_total;
	else if (typemask & VMEM_FREE)
		n = arena_free_total(ar);
	pthread_mutex_unlock(&ar->lock);
	return n;
}

int arena_contains(struct arena *ar, vmem_addr_t addr, vmem_size_t size)
{
	if (size == 0 || size - 1 > VMEM_ADDR_MAX - addr)
		return 0;
	vmem_addr_t last = addr + (size - 1);
	pthread_mutex_lock(&ar->lock);
	bt_idx si = tree_span_floor(ar, addr);
	int in = si != BT_NIL && bt_last(BT(ar, si)) >= last;
	pthread_mutex_unlock(&ar->lock);
	return in;
}

static int walk_type(const struct bt *b)
{
	if (bt_is_span(b))
		return VMEM_SPAN;
	return b->type == BT_FREE ? VMEM_FREE : VMEM_ALLOC;
}

int arena_walk(struct arena *ar, int typemask, vmem_walk_fn *fn, void *arg)
{
	if (fn == NULL || (typemask & ~(VMEM_ALLOC | VMEM_FREE | VMEM_SPAN)) != 0)
		return EINVAL;
	pthread_mutex_lock(&ar->lock);
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next) {
		const struct bt *b = BT(ar, i);
		int t = walk_type(b);
		if (t & typemask)
			fn(arg, b->start, b->size, t);
	}
	pthread_mutex_unlock(&ar->lock);
	return 0;
}

void arena_stats(struct arena *ar, vmem_stats_t *st)
{
	pthread_mutex_lock(&ar->lock);
	/* grouped as vmem_stats_t groups them; the caches add theirs */
	*st = (vmem_stats_t){
		.size = sizeof(*st),
		.span_total = ar->span_total, .alloc_total = ar->alloc_total,
		.free_total = arena_free_total(ar), .import_total = ar->import_total,
		.nspans = ar->nspans, .nalloc = ar->nalloc, .nfree = ar->nfree,
		.allocs = ar->allocs, .frees = ar->frees, .fails = ar->fails,
		.imports = ar->imports, .releases = ar->releases, .waits = ar->waits,
		/* the free map is the tags' too: a bit each (I13) */
		.tag_bytes = ar->bt_bytes + ar->bt_freemap_bytes + ar->bt_node_bytes,
		.hash_bytes = ar->hash_bytes,
		.arena_bytes = ar->bt_bytes + ar->bt_freemap_bytes + ar->bt_node_bytes + ar->hash_bytes,
	};
	pthread_mutex_unlock(&ar->lock);
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

void arena_dump(struct arena *ar, FILE *fp)
{
	pthread_mutex_lock(&ar->lock);
	fprintf(fp, "  memory: %llu bytes of tags (%u mapped, %u unused), %llu of their cold parts, "
		    "%llu bytes of hash (%llu buckets, load %.2f)\n",
		(unsigned long long)ar->bt_bytes, ar->bt_cap, ar->bt_nunused,
		(unsigned long long)ar->bt_node_bytes,
		(unsigned long long)ar->hash_bytes, (unsigned long long)(ar->hash_mask + 1),
		(double)ar->nalloc / (double)(ar->hash_mask + 1));
	fprintf(fp, "  freelists:");
	if (!ar->fl_on)
		fprintf(fp, " not built (no instant or best fit yet)");
	else if (ar->fl_bitmap == 0)
		fprintf(fp, " all empty");
	for (unsigned int k = 0; k < VMEM_NCLASS; k++) {
		if (!(ar->fl_bitmap & (1ull << k)))
			continue;
		unsigned long n = 0;
		for (bt_idx i = ar->fl_head[k]; i != BT_NIL; i = BT(ar, i)->lnext)
			n++;
		fprintf(fp, " [2^%u: %lu]", k, n);
	}
	fprintf(fp, "\n  segments in address order:\n");
	unsigned long shown = 0, limit = 64;
	for (bt_idx i = BT(ar, BT_HEAD)->next; i != BT_HEAD; i = BT(ar, i)->next) {
		const struct bt *b = BT(ar, i);
		if (!bt_is_span(b) && shown >= limit)
			continue;
		if (!bt_is_span(b))
			shown++;
		fprintf(fp, "  %s[%#llx, %#llx] %llu units: %s\n", bt_is_span(b) ? "" : "  ",
			(unsigned long long)b->start, (unsigned long long)bt_last(b),
			(unsigned long long)b->size, dump_type(b));
	}
	if (shown >= limit && ar->nalloc + ar->nfree > limit)
		fprintf(fp, "    ... %llu more segments not shown\n",
			(unsigned long long)(ar->nalloc + ar->nfree - limit));
	pthread_mutex_unlock(&ar->lock);
}
