/*
 * import.c - sources: spans imported from a parent arena or from
 * callbacks, sized and constrained so that the request that caused the
 * import can be met from the new span, and given back unchanged.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>

#include "arena_impl.h"

/* The span to ask for: at least import_quantum, and with round a multiple
 * of it; 0 when it cannot be expressed. */
static vmem_size_t import_size(const struct arena *ar, const struct fitreq *req, bool round)
{
	vmem_size_t n = req->size;
	if (ar->source == NULL && req->align > ar->quantum) {
		/* a callback knows only a size: leave room to reach the phase */
		vmem_size_t slack = req->align - ar->quantum;
		if (n > VMEM_ADDR_MAX - slack)
			return 0;
		n += slack;
	}
	vmem_size_t iq = ar->import_quantum;
	if (n < iq) {
		n = iq;
	} else if (round && iq != 0 && n % iq != 0) {
		if (n > VMEM_ADDR_MAX - (iq - 1))
			return 0;
		n = (n + iq - 1) / iq * iq;
	}
	/* a source must keep the whole span inside one nocross block */
	if (ar->source != NULL && req->nocross != 0 && n > req->nocross)
		n = req->size;
	return n;
}

static int import_from_source(vmem_t *src, const struct arena *ar, const struct fitreq *req,
			      vmem_size_t n, int flags, vmem_addr_t *addrp)
{
	vmem_size_t align = req->align > ar->quantum ? req->align : ar->quantum;
	vmem_addr_t maxaddr = req->maxaddr;
	/* the request sits at the span's start: the span may reach past maxaddr */
	if (maxaddr > VMEM_ADDR_MAX - (n - req->size))
		maxaddr = VMEM_ADDR_MAX;
	else
		maxaddr += n - req->size;
	int policy = flags & VM_POLICIES;
	if (policy == VM_NEXTFIT)
		policy = VM_INSTANTFIT; /* the rotor is the child's, not the source's */
	int err = vmem_xalloc(src, n, align, req->phase, req->nocross, req->minaddr, maxaddr,
			      VM_NOSLEEP | policy, addrp);
	return err == 0 ? 0 : ENOMEM;
}

static bool import_within_limit(const struct arena *ar, vmem_size_t n)
{
	return ar->limit == 0 || (n <= ar->limit && ar->import_total <= ar->limit - n);
}

/* One call to the source or the callback, lock dropped; 0 or ENOMEM. */
static int import_call(struct arena *ar, const struct fitreq *req, vmem_size_t n, int flags,
		       vmem_addr_t *addrp)
{
	vmem_t *src = ar->source;
	vmem_import_fn *fn = ar->importfn;
	void *arg = ar->import_arg;
	struct fitreq r = *req;
	int err;

	pthread_mutex_unlock(&ar->lock);
	if (src != NULL)
		err = import_from_source(src, ar, &r, n, flags, addrp);
	else
		err = fn(arg, n, flags & VM_SLEEPFLAGS, addrp) == 0 ? 0 : ENOMEM;
	pthread_mutex_lock(&ar->lock);
	return err;
}

int import_span_relocking(struct arena *ar, const struct fitreq *req, int flags, bt_idx *spanp)
{
	/* Candidates, largest first; 0 means "cannot be expressed" (a rounded
	 * size past 2^64) and is skipped, never taken as "smaller". */
	vmem_size_t cand[3] = {
		import_size(ar, req, true),
		/* import_quantum is a preference: the request itself may still fit */
		import_size(ar, req, false),
		/* A request must be met through its source whenever the source can
		 * meet it: when no span of import_quantum can be had (too little
		 * room, or no nocross block holds it), ask for just it. */
		ar->source != NULL ? req->size : 0,
	};
	vmem_size_t n = 0;
	vmem_addr_t addr = 0;
	int err = ENOMEM;

	for (int i = 0; i < 3 && err != 0; i++) {
		if (cand[i] == 0 || (n != 0 && cand[i] >= n) || !import_within_limit(ar, cand[i]))
			continue;
		n = cand[i];
		err = import_call(ar, req, n, flags, &addr);
	}
	if (err != 0)
		return ENOMEM;

	/* a callback may hand back anything: keep only what the arena can hold */
	bool ok = (addr & (ar->quantum - 1)) == 0 && n - 1 <= VMEM_ADDR_MAX - addr &&
		  import_within_limit(ar, n);
	if (ok && seg_add_span(ar, addr, n, true, spanp) == 0) {
		ar->imports++; /* the caller wakes sleepers, who may want the rest */
		return 0;
	}
	pthread_mutex_unlock(&ar->lock);
	import_release(ar, addr, n);
	pthread_mutex_lock(&ar->lock);
	return ENOMEM;
}

void import_release(struct arena *ar, vmem_addr_t addr, vmem_size_t size)
{
	if (ar->source != NULL)
		vmem_xfree(ar->source, addr, size);
	else if (ar->releasefn != NULL)
		ar->releasefn(ar->import_arg, addr, size);
}

/* ---- configuration --------------------------------------------------------- */

int arena_set_import(struct arena *ar, vmem_t *src, struct arena *src_ar,
		     vmem_import_fn *importfn, vmem_release_fn *releasefn, void *arg,
		     vmem_size_t import_quantum)
{
	if ((import_quantum & (ar->quantum - 1)) != 0)
		return EINVAL;
	/* the chain from the source must never come back to this arena; a
	 * source's source is set before anything imports, so this reads
	 * settled fields */
	for (const struct arena *s = src_ar; s != NULL; s = s->source_ar)
		if (s == ar)
			return EINVAL;
	pthread_mutex_lock(&ar->lock);
	if (ar->ever_allocated) {
		pthread_mutex_unlock(&ar->lock);
		return EBUSY;
	}
	ar->source = src;
	ar->source_ar = src_ar;
	ar->importfn = importfn;
	ar->releasefn = releasefn;
	ar->import_arg = arg;
	ar->import_quantum = import_quantum;
	pthread_mutex_unlock(&ar->lock);
	return 0;
}

void arena_set_limit(struct arena *ar, vmem_size_t limit)
{
	pthread_mutex_lock(&ar->lock);
	ar->limit = limit;
	pthread_mutex_unlock(&ar->lock);
}

void arena_set_reclaim(struct arena *ar, vmem_reclaim_fn *fn, void *arg)
{
	pthread_mutex_lock(&ar->lock);
	ar->reclaimfn = fn;
	ar->reclaim_arg = arg;
	pthread_mutex_unlock(&ar->lock);
}
