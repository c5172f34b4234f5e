/*
 * plugin.c - autopkgtest: use libvmem the way a plugin host does.  The
 * program is not linked against libvmem: each round dlopen()s
 * "libvmem.so.1", resolves every function it calls with
 * dlvsym(handle, name, "VMEM_1.0"), uses them (quantum caches included,
 * from the main thread and from a second thread that is still alive when
 * the library is closed), destroys its arenas and dlclose()s the library.
 * Mapped memory must not grow with the number of rounds.
 *
 * Usage: plugin [rounds]   (default 1000)
 *
 * Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
 */
#define _GNU_SOURCE /* dlvsym */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmem.h>

#define SONAME "libvmem.so.1"
#define NODE "VMEM_1.0"

/* Pointers typed from the declarations in <vmem.h>; __typeof__ does not
 * reference the symbols, so the program does not link against libvmem. */
struct api {
	__typeof__(vmem_version) *version;
	__typeof__(vmem_create) *create;
	__typeof__(vmem_destroy) *destroy;
	__typeof__(vmem_name) *name;
	__typeof__(vmem_alloc) *alloc;
	__typeof__(vmem_free) *free;
	__typeof__(vmem_xalloc) *xalloc;
	__typeof__(vmem_xfree) *xfree;
	__typeof__(vmem_set_source) *set_source;
	__typeof__(vmem_reap) *reap;
	__typeof__(vmem_size) *size;
	__typeof__(vmem_get_stats) *get_stats;
};

static int fail(const char *what)
{
	fprintf(stderr, "plugin: FAIL: %s\n", what);
	return 1;
}

static void *resolve(void *h, const char *name, int *bad)
{
	void *p = dlvsym(h, name, NODE);
	if (p == NULL) {
		fprintf(stderr, "plugin: dlvsym(%s, %s): %s\n", name, NODE, dlerror());
		*bad = 1;
	}
	return p;
}

static int load(void **hp, struct api *a)
{
	int bad = 0;
	void *h = dlopen(SONAME, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		fprintf(stderr, "plugin: dlopen(%s): %s\n", SONAME, dlerror());
		return 1;
	}
#define R(field, sym) a->field = (__typeof__(a->field))resolve(h, #sym, &bad)
	R(version, vmem_version);
	R(create, vmem_create);
	R(destroy, vmem_destroy);
	R(name, vmem_name);
	R(alloc, vmem_alloc);
	R(free, vmem_free);
	R(xalloc, vmem_xalloc);
	R(xfree, vmem_xfree);
	R(set_source, vmem_set_source);
	R(reap, vmem_reap);
	R(size, vmem_size);
	R(get_stats, vmem_get_stats);
#undef R
	/* The PMDK library of the same SONAME has LIBVMEM_1.0 instead. */
	if (dlvsym(h, "vmem_create", "LIBVMEM_1.0") != NULL)
		bad = 1, fail("vmem_create@LIBVMEM_1.0 exists: wrong libvmem.so.1");
	*hp = h;
	return bad;
}

/* A thread that uses a cached arena, then waits (still holding whatever
 * per-thread state the library keeps) until the library has been closed. */
struct worker {
	struct api *a;
	vmem_t *vm;
	int err;
	int phase; /* 0: start, 1: used the arena, 2: may exit */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	vmem_addr_t x[8];
	int err = 0;

	for (int i = 0; i < 8 && !err; i++)
		err = w->a->alloc(w->vm, 4096 * (1 + i % 4), VM_NOSLEEP, &x[i]);
	for (int i = 0; i < 8 && !err; i++)
		err = w->a->free(w->vm, x[i], 4096 * (1 + i % 4));
	pthread_mutex_lock(&w->mu);
	w->err = err;
	w->phase = 1;
	pthread_cond_broadcast(&w->cv);
	while (w->phase != 2)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static int round_trip(int round)
{
	struct api a;
	void *h = NULL;
	vmem_addr_t addr[64], x;
	int rc = 0;

	if (load(&h, &a)) {
		if (h)
			dlclose(h);
		return 1;
	}
	if (round == 0)
		printf("plugin: loaded libvmem %s\n", a.version());
	if (strncmp(a.version(), "1.", 2) != 0)
		return fail("vmem_version() is not 1.x");

	vmem_t *src = a.create("plugin-src", 0x100000, 0x10000000, 4096, 0, VM_NOSLEEP);
	vmem_t *vm = a.create("plugin", 0, 0, 4096, 8 * 4096, VM_NOSLEEP);
	if (src == NULL || vm == NULL)
		return fail("vmem_create");
	if (strcmp(a.name(vm), "plugin") != 0)
		return fail("vmem_name");
	if (a.set_source(vm, src, 16 * 4096) != 0)
		return fail("vmem_set_source");

	for (int i = 0; i < 64; i++) {
		vmem_size_t sz = 4096 * (1 + (vmem_size_t)(i % 12));
		if (a.alloc(vm, sz, VM_NOSLEEP, &addr[i]) != 0)
			return fail("vmem_alloc");
		if (addr[i] < 0x100000 || addr[i] + sz > 0x100000 + 0x10000000)
			return fail("vmem_alloc result outside the source's span");
	}
	if (a.xalloc(vm, 3 * 4096, 65536, 4096, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, VM_NOSLEEP,
		     &x) != 0)
		return fail("vmem_xalloc");
	if (x % 65536 != 4096)
		return fail("vmem_xalloc alignment/phase");
	if (a.xfree(vm, x, 3 * 4096) != 0)
		return fail("vmem_xfree");
	for (int i = 0; i < 64; i++)
		if (a.free(vm, addr[i], 4096 * (1 + (vmem_size_t)(i % 12))) != 0)
			return fail("vmem_free");

	/* Every tenth round a second thread uses the quantum caches and is
	 * still running when the library is closed. */
	struct worker w = {.a = &a, .vm = vm};
	pthread_t tid;
	int threaded = round % 10 == 0;
	if (threaded) {
		pthread_mutex_init(&w.mu, NULL);
		pthread_cond_init(&w.cv, NULL);
		if (pthread_create(&tid, NULL, worker_main, &w) != 0)
			return fail("pthread_create");
		pthread_mutex_lock(&w.mu);
		while (w.phase != 1)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
		if (w.err)
			rc = fail("allocation in the worker thread");
	}

	a.reap(vm);
	if (a.size(vm, VMEM_ALLOC) != 0)
		rc = fail("vmem_size(VMEM_ALLOC) after freeing everything");
	vmem_stats_t st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	if (a.get_stats(vm, &st) != 0 || st.allocs != st.frees)
		rc = fail("vmem_get_stats");
	a.destroy(vm);
	a.destroy(src);
	if (dlclose(h) != 0) {
		fprintf(stderr, "plugin: dlclose: %s\n", dlerror());
		rc = 1;
	}

	if (threaded) {
		pthread_mutex_lock(&w.mu);
		w.phase = 2;
		pthread_cond_broadcast(&w.cv);
		pthread_mutex_unlock(&w.mu);
		pthread_join(tid, NULL); /* thread exit runs any TLS destructors */
		pthread_cond_destroy(&w.cv);
		pthread_mutex_destroy(&w.mu);
	}
	return rc;
}

/* Number of mappings and their total size, from /proc/self/maps. */
static void mappings(long *count, unsigned long long *bytes)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long long lo, hi;
	char line[512];

	*count = 0;
	*bytes = 0;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%llx-%llx", &lo, &hi) == 2) {
			(*count)++;
			*bytes += hi - lo;
		}
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 1000;
	long count0 = 0, count1;
	unsigned long long bytes0 = 0, bytes1;

	if (rounds < 20)
		rounds = 20;
	for (int i = 0; i < rounds; i++) {
		if (round_trip(i)) {
			fprintf(stderr, "plugin: FAILED in round %d\n", i);
			return 1;
		}
		/* Baseline once libc's own thread stacks and arenas exist. */
		if (i == 10)
			mappings(&count0, &bytes0);
	}
	mappings(&count1, &bytes1);
	printf("plugin: %d rounds; mappings %ld -> %ld, mapped bytes %llu -> %llu\n", rounds,
	       count0, count1, bytes0, bytes1);
	if (count1 > count0 + 8 || bytes1 > bytes0 + (4ull << 20)) {
		fprintf(stderr, "plugin: FAIL: mapped memory grows with dlopen/dlclose rounds\n");
		return 1;
	}
	if (dlopen(SONAME, RTLD_NOW | RTLD_NOLOAD) != NULL)
		printf("plugin: note: libvmem.so.1 stays loaded after the last dlclose\n");
	printf("plugin: ok\n");
	return 0;
}
