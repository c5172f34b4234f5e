#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void check_arena_at(vmem_t *vm, const char *file, int line)
{
	char why[512];
	int inv = vmem_check(vm, why, sizeof(why));
	if (inv != 0)
		fail_msg("%s:%d: invariant I%d broken: %s", file, line, inv, why);
}

uint64_t tu_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t tu_seed(uint64_t dflt)
{
	const char *e = getenv("VMEM_TEST_SEED");
	uint64_t seed = e ? strtoull(e, NULL, 0) : dflt;
	fprintf(stderr, "# seed %" PRIu64 " (set VMEM_TEST_SEED to replay)\n", seed);
	return seed;
}

uint64_t tu_scale(uint64_t n)
{
	const char *e = getenv("VMEM_TEST_SCALE");
	uint64_t k = e ? strtoull(e, NULL, 0) : 1;
	return n * (k ? k : 1);
}
