/*
 * os.c - the only file that talks to the kernel: mappings, lock setup and
 * the environment.  Every mapping goes through os_map/os_remap so tests can
 * make the nth one fail (os_fault_after) and count what is mapped.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmem_impl.h"

static _Atomic size_t mapped_bytes;
static _Atomic uint64_t map_calls;
static _Atomic uint64_t fault_at; /* map_calls value that fails; 0: none */

size_t os_pagesize(void)
{
	static _Atomic size_t pagesize; /* threads may race to fill it: same value */
	size_t p = atomic_load_explicit(&pagesize, memory_order_relaxed);
	if (p == 0) {
		p = (size_t)sysconf(_SC_PAGESIZE);
		atomic_store_explicit(&pagesize, p, memory_order_relaxed);
	}
	return p;
}

size_t os_round_page(size_t bytes)
{
	size_t p = os_pagesize();
	return (bytes + p - 1) & ~(p - 1);
}

static bool os_fault_now(void)
{
	uint64_t n = atomic_fetch_add(&map_calls, 1) + 1;
	uint64_t at = atomic_load(&fault_at);
	return at != 0 && n == at;
}

void os_fault_after(uint64_t n)
{
	atomic_store(&fault_at, n ? atomic_load(&map_calls) + n : 0);
}

uint64_t os_map_calls(void)
{
	return atomic_load(&map_calls);
}

size_t os_mapped_bytes(void)
{
	return atomic_load(&mapped_bytes);
}

/* Tag tables and hashes are read at random: past a few huge pages' worth,
 * ask for transparent huge pages so each access is not also a TLB miss. */
#define OS_HUGE_MIN (4u << 20)

static void os_advise(void *p, size_t bytes)
{
	if (bytes >= OS_HUGE_MIN)
		madvise(p, bytes, MADV_HUGEPAGE);
}

void *os_map(size_t bytes)
{
	if (os_fault_now())
		return NULL;
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	os_advise(p, bytes);
	atomic_fetch_add(&mapped_bytes, bytes);
	return p;
}

void *os_remap(void *p, size_t old, size_t bytes)
{
	if (os_fault_now())
		return NULL;
	void *q = mremap(p, old, bytes, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		return NULL;
	os_advise(q, bytes);
	atomic_fetch_add(&mapped_bytes, bytes);
	atomic_fetch_sub(&mapped_bytes, old);
	return q;
}

void os_unmap(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	munmap(p, bytes);
	atomic_fetch_sub(&mapped_bytes, bytes);
}

void os_lock_init(pthread_mutex_t *m, pthread_cond_t *cv)
{
	pthread_mutex_init(m, NULL);
	os_cond_init(cv);
}

void os_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

bool os_debug_env(void)
{
	const char *e = getenv("VMEM_DEBUG");
	return e != NULL && strcmp(e, "1") == 0;
}
