/*
 * rseq.h - the quantum caches' common paths as restartable sequences, for
 * x86-64 with glibc 2.35 or later (os.h decides OS_RSEQ).  qc_pop_rseq
 * takes an object (and where its state byte is, qcache.h) from the loaded
 * magazine of this CPU's slot, and qc_push_rseq puts one there; each
 * returns false, having changed nothing,
 * when the slot is locked, the magazine is empty (pop) or full (push), or
 * the CPU is past the caches' slots: the caller then takes the slow path.
 * Without rseq both always return false, and the slow path does the work
 * under the slot's spinlock.
 *
 * Each sequence sets rseq_cs, then (from label 1) finds its CPU's slot,
 * leaves for the slow path if it must, and ends with the committing store
 * of pops or pushes: the rounds are bias + pushes - pops (qcache.h), so
 * one plain store commits.  The kernel restarts a sequence that is
 * preempted, migrated or signalled before that store, at label 4 (after
 * the signature glibc registered), which starts over from label 0.  A push
 * writes its object and its state pointer above the top first: harmless
 * if the commit never comes.  rseq_cs is cleared on the way out (by
 * qc_rseq_left on the slow path): the kernel reads the descriptor it
 * points to at every preemption, and after a dlclose that would fault.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_RSEQ_H
#define VMEM_RSEQ_H

#include <stdbool.h>

#include "os.h"
#include "qcache.h"

#if OS_RSEQ
/* a field of the CPU's slot: %rax is its offset in the cache */
#define QC_SLOT(field) "%c[o_cpus]+%c[" #field "](%[c], %%rax)"

/* The descriptor (label 3: version, flags, start, length, abort) goes to
 * the __rseq_cs section; the abort handler (label 4) to __rseq_failure,
 * preceded by the signature the kernel checks.  The signature's bytes are
 * glibc's RSEQ_SIG for x86 (0x53053053), encoded as the operand of a
 * harmless 7-byte instruction, "ud1 0x53053053(%rip), %edi", so that the
 * bytes before the handler disassemble cleanly. */
#define QC_RSEQ_HEAD                                                                  \
	".pushsection __rseq_cs, \"aw\"\n\t"                                          \
	".balign 32\n"                                                                \
	"3:\n\t"                                                                      \
	".long 0, 0\n\t"                                                              \
	".quad 1f, 2f - 1f, 4f\n\t"                                                   \
	".popsection\n"                                                               \
	"0:\n\t"                                                                      \
	"leaq 3b(%%rip), %%rax\n\t"                                                   \
	"movq %%rax, %%fs:%c[o_cs](%[off])\n"                                         \
	"1:\n\t"                                                                      \
	"movl %%fs:%c[o_cpu](%[off]), %%eax\n\t"                                      \
	"cmpl %c[o_ncpu](%[qs]), %%eax\n\t"                                           \
	"jae %l[slow]\n\t"                                                            \
	"shlq %[sshift], %%rax\n\t"                                                   \
	"cmpl $0, " QC_SLOT(o_lock) "\n\t"                                            \
	"jne %l[slow]\n\t"

#define QC_RSEQ_TAIL                                                                  \
	"2:\n\t"                                                                      \
	"movq $0, %%fs:%c[o_cs](%[off])\n\t"                                          \
	".pushsection __rseq_failure, \"ax\"\n\t"                                     \
	".byte 0x0f, 0xb9, 0x3d\n\t"                                                  \
	".long 0x53053053\n"                                                          \
	"4:\n\t"                                                                      \
	"jmp 0b\n\t"                                                                  \
	".popsection\n"

/* The end of a sequence: the committing store of pops or pushes, whose
 * old value is in %r9, then the tail. */
#define QC_RSEQ_COMMIT(counter)                                                       \
	"incq %%r9\n\t"                                                              \
	"movq %%r9, " QC_SLOT(counter) "\n"                                           \
	QC_RSEQ_TAIL

#define QC_RSEQ_OPERANDS(qs, c)                                                       \
	[off] "r"((qs)->rseq_off), [qs] "r"(qs), [c] "r"(c),                          \
		[o_ncpu] "i"(offsetof(struct qcaches, ncpu)),                         \
		[o_cpus] "i"(offsetof(struct qcache, cpu)),                           \
		[sshift] "i"(QC_CPU_SHIFT),                                           \
		[o_cs] "i"(offsetof(struct rseq, rseq_cs)),                           \
		[o_cpu] "i"(offsetof(struct rseq, cpu_id)),                           \
		[o_lock] "i"(offsetof(struct qc_cpu, lock)),                          \
		[o_cap] "i"(offsetof(struct qc_cpu, cap)),                            \
		[o_loaded] "i"(offsetof(struct qc_cpu, loaded)),                      \
		[o_bias] "i"(offsetof(struct qc_cpu, bias)),                          \
		[o_pops] "i"(offsetof(struct qc_cpu, pops)),                          \
		[o_pushes] "i"(offsetof(struct qc_cpu, pushes)),                      \
		[o_obj] "i"(offsetof(struct qc_mag, obj)),                            \
		[o_state] "i"(offsetof(struct qc_mag, state))

/* Scratch registers: %rax and %r8 to %r10, none of which holds an argument
 * of vmem_alloc or vmem_free, so the compiler need not save those for the
 * slow path. */
#define QC_RSEQ_CLOBBERS_BUT_R8_R10 "rax", "r9", "memory", "cc"
#define QC_RSEQ_CLOBBERS QC_RSEQ_CLOBBERS_BUT_R8_R10, "r8", "r10"

/* A sequence left for the slow path still names its descriptor: clear it,
 * and say that the sequence did not commit. */
static inline bool qc_rseq_left(void)
{
	__atomic_store_n(&os_rseq_area()->rseq_cs, 0, __ATOMIC_RELAXED);
	return false;
}

static inline bool qc_pop_rseq(const struct qcaches *qs, struct qcache *c, vmem_addr_t *objp,
			       uint8_t **statep)
{
	/* The object and its state pointer come back in r8 and r10, which the
	 * sequence uses anyway: outputs in registers of the compiler's choice
	 * would take two more, and vmem_alloc would then save callee-saved
	 * registers on every call, the uncached ones included. */
	register vmem_addr_t obj __asm__("r8");
	register uint8_t *st __asm__("r10");
	__asm__ volatile goto(QC_RSEQ_HEAD
		     "movq " QC_SLOT(o_bias) ", %%r8\n\t"
		     "addq " QC_SLOT(o_pushes) ", %%r8\n\t"
		     "movq " QC_SLOT(o_pops) ", %%r9\n\t"
		     "subq %%r9, %%r8\n\t" /* rounds */
		     "jz %l[slow]\n\t"
		     "movq " QC_SLOT(o_loaded) ", %%r10\n\t"
		     "leaq -8(%%r10, %%r8, 8), %%r10\n\t"
		     "movq %c[o_obj](%%r10), %%r8\n\t"
		     "movq %c[o_state](%%r10), %%r10\n\t"
		     QC_RSEQ_COMMIT(o_pops)
		     : "=&r"(obj), "=&r"(st) /* written before the inputs are done with */
		     : QC_RSEQ_OPERANDS(qs, c)
		     : QC_RSEQ_CLOBBERS_BUT_R8_R10 : slow);
	*objp = obj;
	*statep = st;
	return true;
slow:
	return qc_rseq_left();
}

static inline bool qc_push_rseq(const struct qcaches *qs, struct qcache *c, vmem_addr_t obj,
				uint8_t *st)
{
	__asm__ volatile goto(QC_RSEQ_HEAD
		     "movq " QC_SLOT(o_pushes) ", %%r9\n\t"
		     "movq " QC_SLOT(o_bias) ", %%r8\n\t"
		     "addq %%r9, %%r8\n\t"
		     "subq " QC_SLOT(o_pops) ", %%r8\n\t" /* rounds, at most cap */
		     "cmpl " QC_SLOT(o_cap) ", %%r8d\n\t"
		     "jae %l[slow]\n\t"
		     "movq " QC_SLOT(o_loaded) ", %%r10\n\t"
		     "movq %[obj], %c[o_obj](%%r10, %%r8, 8)\n\t"
		     "movq %[st], %c[o_state](%%r10, %%r8, 8)\n\t"
		     QC_RSEQ_COMMIT(o_pushes)
		     :
		     : [obj] "r"(obj), [st] "r"(st), QC_RSEQ_OPERANDS(qs, c)
		     : QC_RSEQ_CLOBBERS : slow);
	return true;
slow:
	return qc_rseq_left();
}

static inline ptrdiff_t qc_rseq_offset(void)
{
	return __rseq_offset;
}
#else
static inline bool qc_pop_rseq(const struct qcaches *qs, struct qcache *c, vmem_addr_t *objp,
			       uint8_t **statep)
{
	(void)qs, (void)c, (void)objp, (void)statep;
	return false;
}
static inline bool qc_push_rseq(const struct qcaches *qs, struct qcache *c, vmem_addr_t obj,
				uint8_t *st)
{
	(void)qs, (void)c, (void)obj, (void)st;
	return false;
}
static inline ptrdiff_t qc_rseq_offset(void)
{
	return 0;
}
#endif

#endif /* VMEM_RSEQ_H */
