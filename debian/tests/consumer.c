/*
 * consumer.c - autopkgtest: a program built with `pkg-config --cflags --libs
 * vmem` against the installed libvmem-dev.  It allocates process IDs with
 * VM_NEXTFIT and checks that they are unique and handed out in increasing
 * order until the ID space wraps, as PIDs are.
 *
 * Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#define PID_BASE 300
#define PID_COUNT 700 /* PIDs 300..999 */

static int failures;

#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
			fprintf(stderr, __VA_ARGS__);                                    \
			fputc('\n', stderr);                                             \
			failures++;                                                      \
			return 1;                                                        \
		}                                                                        \
	} while (0)

static bool in_use[PID_COUNT];

static int pid_alloc(vmem_t *vm, vmem_addr_t *pid)
{
	int err = vmem_alloc(vm, 1, VM_NEXTFIT | VM_NOSLEEP, pid);
	if (err == 0) {
		CHECK(*pid >= PID_BASE && *pid < PID_BASE + PID_COUNT, "pid %llu out of range",
		      (unsigned long long)*pid);
		CHECK(!in_use[*pid - PID_BASE], "pid %llu handed out twice",
		      (unsigned long long)*pid);
		in_use[*pid - PID_BASE] = true;
	}
	return err;
}

static int pid_free(vmem_t *vm, vmem_addr_t pid)
{
	CHECK(vmem_free(vm, pid, 1) == 0, "vmem_free(%llu)", (unsigned long long)pid);
	in_use[pid - PID_BASE] = false;
	return 0;
}

static int run(void)
{
	char want[32];
	vmem_addr_t pid = 0, prev = 0;
	int err;

	snprintf(want, sizeof(want), "%d.%d.%d", VMEM_VERSION_MAJOR, VMEM_VERSION_MINOR,
		 VMEM_VERSION_PATCH);
	CHECK(strcmp(vmem_version(), want) == 0, "vmem_version() is %s, header says %s",
	      vmem_version(), want);

	/* Quantum caching on: VM_NEXTFIT requests must bypass it. */
	vmem_t *vm = vmem_create("pid", PID_BASE, PID_COUNT, 1, 4, VM_NOSLEEP);
	CHECK(vm != NULL, "vmem_create: %s", strerror(errno));
	CHECK(strcmp(vmem_name(vm), "pid") == 0, "name %s", vmem_name(vm));

	/* 1. The first 500 PIDs come out in order: 300, 301, ... */
	for (int i = 0; i < 500; i++) {
		CHECK(pid_alloc(vm, &pid) == 0, "allocation %d failed", i);
		CHECK(i == 0 || pid > prev, "pid %llu after %llu", (unsigned long long)pid,
		      (unsigned long long)prev);
		prev = pid;
	}
	CHECK(prev == PID_BASE + 499, "500th pid is %llu", (unsigned long long)prev);

	/* 2. Free every other one: the freed low PIDs must not be reused yet. */
	for (vmem_addr_t p = PID_BASE; p < PID_BASE + 500; p += 2)
		if (pid_free(vm, p))
			return 1;

	/* 3. The next 200 continue after the previous allocation: 800..999. */
	for (int i = 0; i < 200; i++) {
		CHECK(pid_alloc(vm, &pid) == 0, "allocation %d failed", 500 + i);
		CHECK(pid == prev + 1, "pid %llu after %llu: next fit must continue",
		      (unsigned long long)pid, (unsigned long long)prev);
		prev = pid;
	}

	/* 4. The space is used up to its end: the next PID wraps to the lowest
	 *    free one, then they increase again until every PID is taken. */
	CHECK(pid_alloc(vm, &pid) == 0, "allocation after wrap failed");
	CHECK(pid == PID_BASE, "wrapped to %llu, expected %d", (unsigned long long)pid,
	      PID_BASE);
	prev = pid;
	int n = 1;
	while ((err = pid_alloc(vm, &pid)) == 0) {
		CHECK(pid > prev, "pid %llu after %llu", (unsigned long long)pid,
		      (unsigned long long)prev);
		prev = pid;
		n++;
	}
	if (failures)
		return 1;
	CHECK(err == ENOMEM, "full arena returned %d, expected ENOMEM", err);
	CHECK(n == 250, "%d PIDs after the wrap, expected 250", n);
	CHECK(vmem_size(vm, VMEM_ALLOC) == PID_COUNT, "allocated %llu",
	      (unsigned long long)vmem_size(vm, VMEM_ALLOC));
	CHECK(vmem_size(vm, VMEM_FREE) == 0, "free %llu",
	      (unsigned long long)vmem_size(vm, VMEM_FREE));

	/* 5. Misuse is an error, not a crash: double free, bad flags. */
	CHECK(pid_free(vm, PID_BASE + 10) == 0, "free");
	CHECK(vmem_free(vm, PID_BASE + 10, 1) == EINVAL, "double free must be EINVAL");
	CHECK(vmem_alloc(vm, 1, VM_NEXTFIT | VM_FIRSTFIT, &pid) == EINVAL,
	      "two policies must be EINVAL");

	vmem_stats_t st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	CHECK(vmem_get_stats(vm, &st) == 0, "vmem_get_stats");
	CHECK(st.allocs == 950 && st.frees == 251 && st.fails == 1,
	      "stats allocs %llu frees %llu fails %llu", (unsigned long long)st.allocs,
	      (unsigned long long)st.frees, (unsigned long long)st.fails);

	for (vmem_addr_t p = PID_BASE; p < PID_BASE + PID_COUNT; p++)
		if (in_use[p - PID_BASE] && pid_free(vm, p))
			return 1;
	CHECK(vmem_size(vm, VMEM_ALLOC) == 0, "allocated %llu after freeing all",
	      (unsigned long long)vmem_size(vm, VMEM_ALLOC));
	vmem_destroy(vm);
	return 0;
}

int main(void)
{
	int rc = run();
	if (rc || failures) {
		fprintf(stderr, "consumer: FAILED\n");
		return 1;
	}
	printf("consumer: libvmem %s: 950 PIDs allocated with VM_NEXTFIT, unique and in order\n",
	       vmem_version());
	return 0;
}
