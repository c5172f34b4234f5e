/*
 * import.c - sources: spans imported from a parent arena or from
 * callbacks, sized and constrained so that the request that caused the
 * import can be met from the new span, and given back unchanged.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>

#include "vmem_impl.h"

/* The span to ask for: at least import_quantum, and with round a multiple
 * of it; 0 when it cannot be expressed. */
static vmem_size_t import_size(const vmem_t *vm, const struct fitreq *req, bool round)
{
	vmem_size_t n = req->size;
	if (vm->source == NULL && req->align > vm->quantum) {
		/* a callback knows only a size: leave room to reach the phase */
		vmem_size_t slack = req->align - vm->quantum;
		if (n > VMEM_ADDR_MAX - slack)
			return 0;
		n += slack;
	}
	vmem_size_t iq = vm->import_quantum;
	if (n < iq) {
		n = iq;
	} else if (round && iq != 0 && n % iq != 0) {
		if (n > VMEM_ADDR_MAX - (iq - 1))
			return 0;
		n = (n + iq - 1) / iq * iq;
	}
	/* a source must keep the whole span inside one nocross block */
	if (vm->source != NULL && req->nocross != 0 && n > req->nocross)
		n = req->size;
	return n;
}

static int import_from_source(vmem_t *src, const vmem_t *vm, const struct fitreq *req,
			      vmem_size_t n, int flags, vmem_addr_t *addrp)
{
	vmem_size_t align = req->align > vm->quantum ? req->align : vm->quantum;
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

static bool import_within_limit(const vmem_t *vm, vmem_size_t n)
{
	return vm->limit == 0 || (n <= vm->limit && vm->import_total <= vm->limit - n);
}

/* One call to the source or the callback, lock dropped; 0 or ENOMEM. */
static int import_call(vmem_t *vm, const struct fitreq *req, vmem_size_t n, int flags,
		       vmem_addr_t *addrp)
{
	vmem_t *src = vm->source;
	vmem_import_fn *fn = vm->importfn;
	void *arg = vm->import_arg;
	struct fitreq r = *req;
	int err;

	pthread_mutex_unlock(&vm->lock);
	if (src != NULL)
		err = import_from_source(src, vm, &r, n, flags, addrp);
	else
		err = fn(arg, n, flags & VM_SLEEPFLAGS, addrp) == 0 ? 0 : ENOMEM;
	pthread_mutex_lock(&vm->lock);
	return err;
}

int import_span(vmem_t *vm, const struct fitreq *req, int flags, bt_idx *spanp)
{
	/* Candidates, largest first; 0 means "cannot be expressed" (a rounded
	 * size past 2^64) and is skipped, never taken as "smaller". */
	vmem_size_t cand[3] = {
		import_size(vm, req, true),
		/* import_quantum is a preference: the request itself may still fit */
		import_size(vm, req, false),
		/* A request must be met through its source whenever the source can
		 * meet it: when no span of import_quantum can be had (too little
		 * room, or no nocross block holds it), ask for just it. */
		vm->source != NULL ? req->size : 0,
	};
	vmem_size_t n = 0;
	vmem_addr_t addr = 0;
	int err = ENOMEM;

	for (int i = 0; i < 3 && err != 0; i++) {
		if (cand[i] == 0 || (n != 0 && cand[i] >= n) || !import_within_limit(vm, cand[i]))
			continue;
		n = cand[i];
		err = import_call(vm, req, n, flags, &addr);
	}
	if (err != 0)
		return ENOMEM;

	/* a callback may hand back anything: keep only what the arena can hold */
	bool ok = (addr & (vm->quantum - 1)) == 0 && n - 1 <= VMEM_ADDR_MAX - addr &&
		  import_within_limit(vm, n);
	if (ok && seg_add_span(vm, addr, n, true, spanp) == 0) {
		vm->imports++;
		arena_wakeup(vm);
		return 0;
	}
	pthread_mutex_unlock(&vm->lock);
	import_release(vm, addr, n);
	pthread_mutex_lock(&vm->lock);
	return ENOMEM;
}

void import_release(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	if (vm->source != NULL)
		vmem_xfree(vm->source, addr, size);
	else if (vm->releasefn != NULL)
		vm->releasefn(vm->import_arg, addr, size);
}

/* ---- configuration --------------------------------------------------------- */

static int import_configure(vmem_t *vm, vmem_t *source, vmem_import_fn *importfn,
			    vmem_release_fn *releasefn, void *arg, vmem_size_t import_quantum)
{
	if ((import_quantum & (vm->quantum - 1)) != 0)
		return EINVAL;
	if (source != NULL) {
		/* the chain from source must never come back to vm */
		for (vmem_t *s = source; s != NULL; s = s->source)
			if (s == vm)
				return EINVAL;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->ever_allocated) {
		pthread_mutex_unlock(&vm->lock);
		return EBUSY;
	}
	vm->source = source;
	vm->importfn = importfn;
	vm->releasefn = releasefn;
	vm->import_arg = arg;
	vm->import_quantum = import_quantum;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

VMEM_API int vmem_set_import(vmem_t *vm, vmem_import_fn *importfn, vmem_release_fn *releasefn,
			     void *arg, vmem_size_t import_quantum)
{
	if (vm == NULL || importfn == NULL)
		return EINVAL;
	return import_configure(vm, NULL, importfn, releasefn, arg, import_quantum);
}

VMEM_API int vmem_set_source(vmem_t *vm, vmem_t *source, vmem_size_t import_quantum)
{
	if (vm == NULL || source == NULL)
		return EINVAL;
	return import_configure(vm, source, NULL, NULL, NULL, import_quantum);
}

VMEM_API int vmem_set_limit(vmem_t *vm, vmem_size_t limit)
{
	if (vm == NULL)
		return EINVAL;
	pthread_mutex_lock(&vm->lock);
	vm->limit = limit;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

VMEM_API int vmem_set_reclaim(vmem_t *vm, vmem_reclaim_fn *fn, void *arg)
{
	if (vm == NULL)
		return EINVAL;
	pthread_mutex_lock(&vm->lock);
	vm->reclaimfn = fn;
	vm->reclaim_arg = arg;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}
