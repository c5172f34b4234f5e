/*
 * seams.h - the few internal functions that tests, the fuzzer and the
 * reliability tools may call beyond the public header.  Tests of the public
 * API include vmem.h and this, never vmem_impl.h: they look at an arena
 * only through the contract, the invariant checker and these seams.  None
 * of them is exported from libvmem.so; they are reached by linking the
 * internal static library.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_SEAMS_H
#define VMEM_SEAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmem.h"

/* The invariant checker (check.c): 0 if every invariant holds, else the
 * number of the first broken one (I1..I11 as 1..11, Q1..Q7 as 101..107), with a
 * description in buf.  Takes the arena's locks; call with none held. */
int vmem_check(vmem_t *vm, char *buf, size_t len);

/* Fault injection and accounting of the OS layer (os.c).  Every map and
 * remap counts; the nth from now (1-based) fails, 0 disarms. */
void os_fault_after(uint64_t n);
uint64_t os_map_calls(void);
/* Bytes the library has mapped and not yet unmapped, all arenas together. */
size_t os_mapped_bytes(void);
/* VMEM_DEBUG asks for debug reports in every arena ("1" or "abort"). */
bool os_debug_env(void);

/* The arena's mutex is free at this moment (it is taken and released): a
 * callback can tell that the arena did not call it with its lock held. */
bool vmem_seam_lock_free(vmem_t *vm);
/* Threads asleep in this arena in VM_SLEEP, now. */
unsigned int vmem_seam_nwaiters(vmem_t *vm);

#endif /* VMEM_SEAMS_H */
