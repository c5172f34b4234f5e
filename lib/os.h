/*
 * os.h - the OS layer: the only code that talks to the kernel (os.c).
 * Mappings (with fault injection and accounting for tests, see seams.h),
 * lock and condition set-up, the environment, and the CPU: which one a
 * thread runs on, restartable sequences and the fence that restarts them.
 * It knows nothing of arenas; every other layer may call it.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_OS_H
#define VMEM_OS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMEM_API __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
/* On a definition: inline it wherever the unity build sees a call (hot paths). */
#define HOT_INLINE __attribute__((always_inline)) inline
#define NOINLINE __attribute__((noinline))

void *os_map(size_t bytes);                        /* NULL on failure */
void *os_remap(void *p, size_t old, size_t bytes); /* NULL on failure; p unchanged */
/* Give back a mapping's pages from bytes to old (both page multiples):
 * it stays where it is, and this never fails. */
void os_shrink(void *p, size_t old, size_t bytes);
void os_unmap(void *p, size_t bytes);
size_t os_pagesize(void);
size_t os_round_page(size_t bytes);
void os_lock_init(pthread_mutex_t *m, pthread_cond_t *cv);
void os_cond_init(pthread_cond_t *cv); /* on CLOCK_MONOTONIC */
/* For the checker: scratch memory that neither counts in os_mapped_bytes
 * nor takes part in fault injection, so that checking changes nothing a
 * test measures.  NULL on failure. */
void *os_scratch_map(size_t bytes);
void os_scratch_unmap(void *p, size_t bytes);
/* VMEM_DEBUG in the environment: unset (or anything else) is off, "1"
 * reports misuse and leaks on stderr, "abort" reports the first misuse and
 * aborts, so that a core dump shows the caller.  Only the caller's own
 * setting may make the library abort. */
enum { OS_DEBUG_OFF = 0, OS_DEBUG_REPORT = 1, OS_DEBUG_ABORT = 2 };
int os_debug_mode(void);
/* os_fault_after, os_map_calls, os_mapped_bytes and os_debug_env are
 * declared in seams.h: tests call them too. */

/* The CPU layer of the quantum caches runs as rseq critical sections on
 * x86-64 with glibc 2.35 or later; elsewhere, and under ThreadSanitizer
 * (which cannot see into them), it takes a spinlock. */
#if defined(__x86_64__) && defined(__GLIBC__) && \
	(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OS_RSEQ 0
#endif
#endif
#ifndef OS_RSEQ
#define OS_RSEQ 1
#endif
#else
#define OS_RSEQ 0
#endif
#if OS_RSEQ
#include <sys/rseq.h>
static inline struct rseq *os_rseq_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}
#endif
/* The process has one thread, and only the caller could start another:
 * glibc's own flag (2.32 and later), which it clears for good when a
 * second thread starts and sets again in the child of a fork.  A check
 * that needs an atomic instruction only against other threads may do
 * without it while this holds. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#include <sys/single_threaded.h>
static inline bool os_single_threaded(void)
{
	return __libc_single_threaded != 0;
}
#else
static inline bool os_single_threaded(void)
{
	return false;
}
#endif

bool os_rseq_enabled(void);  /* rseq and its fence both work here */
void os_rseq_child(void);    /* after fork, in the child */
void os_rseq_fence(int cpu); /* restart sequences on cpu; < 0: on every CPU */
unsigned int os_cpu(void);   /* the CPU this thread runs on (may be stale at once) */

/* Tags are described to valgrind memcheck as heap blocks, so a tag that
 * leaks or is used after tagslab_put shows up in its reports.  Reading an
 * unused tag on purpose (the unused chain, a stale hint) is done quietly.
 * Only memcheck reads those descriptions, and keeping them walks the whole
 * tag table whenever it grows: under any other tool (cachegrind, callgrind)
 * that walk would be all that is measured, so it is kept to memcheck,
 * which alone answers VALGRIND_GET_VBITS (1; every other tool, 0). */
#ifdef VMEM_VALGRIND
#include <valgrind/memcheck.h>
static inline int os_on_memcheck(void)
{
	unsigned char probe = 0, vbits;
	return RUNNING_ON_VALGRIND != 0 && VALGRIND_GET_VBITS(&probe, &vbits, 1) == 1;
}
#define ON_VALGRIND() os_on_memcheck()
#else
#define ON_VALGRIND() 0
#endif

#endif /* VMEM_OS_H */
