/* Shared helpers for the cmocka suites. */
#ifndef VMEM_TESTUTIL_H
#define VMEM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmem_impl.h"

/* Fail the current test when any invariant of vm is broken. */
#define CHECK_ARENA(vm) check_arena_at((vm), __FILE__, __LINE__)
void check_arena_at(vmem_t *vm, const char *file, int line);

/* A small, seedable PRNG (splitmix64) so failures replay. */
uint64_t tu_rand(uint64_t *state);
/* Seed from VMEM_TEST_SEED if set, else the given default; printed once. */
uint64_t tu_seed(uint64_t dflt);
/* Iteration count scaled by VMEM_TEST_SCALE (default 1). */
uint64_t tu_scale(uint64_t n);

#endif
