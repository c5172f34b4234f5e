/*
 * vmem_impl.h - struct vmem, the front door's view of an arena: its
 * quantum caches and the arena proper, side by side.  Only vmem.c (the
 * public entry points) and the checker include it; the layers below see
 * only their own structures (qcache.h, arena_impl.h).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_IMPL_H
#define VMEM_IMPL_H

#include "arena_impl.h"
#include "qcache.h"
#include "seams.h"

struct vmem {
	/* first: what every cached vmem_alloc reads (alloc_max, the rseq
	 * offset, the cache table) */
	struct qcaches qc;
	/* vmem_free reads arena.free_gate and arena.nwaiters, its first fields */
	struct arena arena;
	int debug; /* OS_DEBUG_* */

	/* vmem.c: the global list, for fork */
	vmem_t *gnext, *gprev;
	size_t self_bytes;
};

#endif /* VMEM_IMPL_H */
