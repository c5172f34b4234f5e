/*
 * os.c - the only file that talks to the kernel: mappings, lock setup and
 * the environment.  Every mapping goes through os_map/os_remap so tests can
 * make the nth one fail (os_fault_after) and count what is mapped.  It
 * also owns the CPU: which one a thread is on, and the fence that makes
 * the quantum caches' lock-free CPU layer safe to touch from elsewhere.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os.h"
#include "seams.h"
#if OS_RSEQ /* set by os.h */
#include <linux/membarrier.h>
#endif

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

void os_shrink(void *p, size_t old, size_t bytes)
{
	if (bytes >= old)
		return;
	munmap((char *)p + bytes, old - bytes);
	atomic_fetch_sub(&mapped_bytes, old - bytes);
}

void os_unmap(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	munmap(p, bytes);
	atomic_fetch_sub(&mapped_bytes, bytes);
}

void *os_scratch_map(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void os_scratch_unmap(void *p, size_t bytes)
{
	munmap(p, bytes);
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

int os_debug_mode(void)
{
	const char *e = getenv("VMEM_DEBUG");
	if (e == NULL)
		return OS_DEBUG_OFF;
	if (strcmp(e, "1") == 0)
		return OS_DEBUG_REPORT;
	if (strcmp(e, "abort") == 0)
		return OS_DEBUG_ABORT;
	return OS_DEBUG_OFF;
}

bool os_debug_env(void)
{
	return os_debug_mode() != OS_DEBUG_OFF;
}

/* ---- CPUs ------------------------------------------------------------------

 * With restartable sequences (rseq(2), registered for every thread by
 * glibc 2.35 and later), the caches' CPU layer runs without a lock: the
 * kernel restarts a sequence that is preempted, migrated or signalled
 * before its one committing store.  Code that takes a CPU slot's lock from
 * elsewhere must then make sure no sequence on that CPU is still running
 * past its check of the lock: membarrier(2)'s expedited rseq fence restarts
 * them.  Without both (old kernel or glibc, valgrind, seccomp, or
 * GLIBC_TUNABLES=glibc.pthread.rseq=0) every access takes the slot's
 * spinlock instead. */

static _Atomic int rseq_mode; /* 0: not decided, 1: rseq and fence, 2: neither */

#if OS_RSEQ
static bool fence_by_cpu; /* the kernel can fence one CPU (Linux 5.10) */

static long os_membarrier(int cmd, unsigned int flags, int cpu)
{
	return syscall(__NR_membarrier, cmd, flags, cpu);
}

static int os_rseq_decide(void)
{
	int mode = 2;
	long q = __rseq_size >= 12 ? os_membarrier(MEMBARRIER_CMD_QUERY, 0, 0) : -1;
	if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) &&
	    os_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0) {
		mode = 1;
		fence_by_cpu = os_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
					     MEMBARRIER_CMD_FLAG_CPU, 0) == 0;
	}
	return mode;
}
#endif

bool os_rseq_enabled(void)
{
	int mode = atomic_load_explicit(&rseq_mode, memory_order_acquire);
	if (likely(mode != 0))
		return mode == 1;
#if OS_RSEQ
	static pthread_mutex_t decide = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&decide);
	mode = atomic_load_explicit(&rseq_mode, memory_order_relaxed);
	if (mode == 0) {
		mode = os_rseq_decide();
		atomic_store_explicit(&rseq_mode, mode, memory_order_release);
	}
	pthread_mutex_unlock(&decide);
#else
	mode = 2;
	atomic_store_explicit(&rseq_mode, mode, memory_order_release);
#endif
	return mode == 1;
}

/* In a forked child (one thread, in no sequence): whether the fence still
 * works is the kernel's to say again; fall back to locks if not. */
void os_rseq_child(void)
{
#if OS_RSEQ
	if (atomic_load_explicit(&rseq_mode, memory_order_relaxed) == 1 &&
	    os_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0)
		atomic_store_explicit(&rseq_mode, 2, memory_order_relaxed);
#endif
}

unsigned int os_cpu(void)
{
#if OS_RSEQ
	if (__rseq_size >= 8)
		return __atomic_load_n(&os_rseq_area()->cpu_id, __ATOMIC_RELAXED);
#endif
	int cpu = sched_getcpu();
	return cpu < 0 ? 0 : (unsigned int)cpu;
}

/* Restart every sequence running on cpu (or on any CPU when cpu < 0).  Once
 * registered, the fence fails only for want of memory (retry: going on
 * without it could hand an object out twice), or with EINVAL for a CPU the
 * kernel will not name (fence them all). */
void os_rseq_fence(int cpu)
{
#if OS_RSEQ
	if (atomic_load_explicit(&rseq_mode, memory_order_relaxed) != 1)
		return;
	unsigned int flags = 0;
	if (cpu >= 0 && fence_by_cpu)
		flags = MEMBARRIER_CMD_FLAG_CPU;
	else
		cpu = 0;
	while (os_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, flags, cpu) != 0) {
		if (errno == EINVAL && flags != 0)
			flags = 0, cpu = 0; /* fence every CPU instead */
		else
			sched_yield();
	}
#else
	(void)cpu;
#endif
}
