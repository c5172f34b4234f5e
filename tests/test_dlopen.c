/*
 * test_dlopen.c - the built libvmem.so.1 loaded and unloaded at run time.
 *
 * The library's path is the first argument, or $VMEM_LIBRARY, or
 * ../lib/libvmem.so.1 next to this executable (the meson build tree).
 *
 *  - cycles: 2000 dlopen/dlclose cycles.  Each cycle resolves every
 *    function with dlvsym(h, name, "VMEM_1.0"), checks vmem_version(),
 *    creates arenas (quantum caches on and off, a child with a source),
 *    allocates and frees, checks the statistics and destroys them.
 *    Meanwhile two threads do their own dlopen/use/dlclose cycles (so the
 *    library is unloaded and loaded again under them) and two more use the
 *    statically linked copy.  Virtual size, mapping count and RSS of the
 *    process must not grow from one cycle to the next.
 *  - exports: internal symbols are not visible, unversioned lookups find
 *    the VMEM_1.0 versions.
 *  - thread exit after dlclose: a thread uses arenas of the loaded library
 *    (with quantum caches, which may keep per-thread state), the library is
 *    closed while the thread lives, then the thread exits: nothing may run
 *    code of the unloaded library.
 *  - fork after dlclose: the library's fork handlers went with it.
 *
 * Prints "# figure: dlopen cycles N".
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define VER "VMEM_1.0"

static char g_path[PATH_MAX + 64];

/* The functions of one loaded copy. */
struct api {
	void *h;
	vmem_t *(*create)(const char *, vmem_addr_t, vmem_size_t, vmem_size_t, vmem_size_t, int);
	void (*destroy)(vmem_t *);
	int (*alloc)(vmem_t *, vmem_size_t, int, vmem_addr_t *);
	int (*free)(vmem_t *, vmem_addr_t, vmem_size_t);
	int (*xalloc)(vmem_t *, vmem_size_t, vmem_size_t, vmem_size_t, vmem_size_t, vmem_addr_t,
		      vmem_addr_t, int, vmem_addr_t *);
	int (*xfree)(vmem_t *, vmem_addr_t, vmem_size_t);
	int (*add)(vmem_t *, vmem_addr_t, vmem_size_t, int);
	int (*set_source)(vmem_t *, vmem_t *, vmem_size_t);
	int (*get_stats)(vmem_t *, vmem_stats_t *);
	void (*reap)(vmem_t *);
	const char *(*version)(void);
	const char *(*name)(const vmem_t *);
};

#define SYM(field, name)                                                                          \
	do {                                                                                      \
		*(void **)&a->field = dlvsym(a->h, name, VER);                                    \
		if (a->field == NULL) {                                                           \
			report("dlvsym(%s, %s): %s", name, VER, dlerror());                       \
			ok = false;                                                               \
		}                                                                                 \
	} while (0)

static bool api_open(struct api *a)
{
	memset(a, 0, sizeof(*a));
	a->h = dlopen(g_path, RTLD_NOW | RTLD_LOCAL);
	if (a->h == NULL) {
		report("dlopen(%s): %s", g_path, dlerror());
		return false;
	}
	bool ok = true;
	SYM(create, "vmem_create");
	SYM(destroy, "vmem_destroy");
	SYM(alloc, "vmem_alloc");
	SYM(free, "vmem_free");
	SYM(xalloc, "vmem_xalloc");
	SYM(xfree, "vmem_xfree");
	SYM(add, "vmem_add");
	SYM(set_source, "vmem_set_source");
	SYM(get_stats, "vmem_get_stats");
	SYM(reap, "vmem_reap");
	SYM(version, "vmem_version");
	SYM(name, "vmem_name");
	if (!ok) {
		dlclose(a->h);
		a->h = NULL;
	}
	return ok;
}

static void api_close(struct api *a)
{
	if (a->h != NULL && dlclose(a->h) != 0)
		report("dlclose: %s", dlerror());
	a->h = NULL;
}

/* Create, use, check and destroy arenas through one loaded copy. */
static bool api_exercise(const struct api *a, uint64_t seed)
{
	if (strcmp(a->version(), "1.0.0") != 0) {
		report("vmem_version() = \"%s\"", a->version());
		return false;
	}
	vmem_t *p = a->create("dl-parent", 0x1000, 1 << 20, 16, seed % 2 ? 64 : 0, 0);
	vmem_t *c = a->create("dl-child", 0, 0, 16, 0, 0);
	if (p == NULL || c == NULL || a->set_source(c, p, 256) != 0) {
		report("create/set_source through dlopen failed");
		a->destroy(c);
		a->destroy(p);
		return false;
	}
	if (strcmp(a->name(p), "dl-parent") != 0)
		report("vmem_name through dlopen");
	if (a->add(p, 1ull << 40, 1 << 16, 0) != 0)
		report("vmem_add through dlopen");
	vmem_addr_t v[48];
	vmem_size_t sz[48];
	uint64_t s = seed;
	for (int i = 0; i < 48; i++) {
		sz[i] = 16 * (1 + rand_next(&s) % 12);
		vmem_t *vm = i % 3 == 0 ? c : p;
		int rc = i % 4 == 1 ? a->xalloc(vm, sz[i], 64, 16, 0, 0, VMEM_ADDR_MAX, VM_BESTFIT, &v[i])
				    : a->alloc(vm, sz[i], i % 2 ? VM_FIRSTFIT : VM_NOSLEEP, &v[i]);
		if (rc != 0) {
			report("allocation %d through dlopen returned %d", i, rc);
			return false;
		}
		if (i % 4 == 1 && v[i] % 64 != 16)
			report("xalloc through dlopen broke its alignment");
	}
	for (int i = 0; i < 48; i += 2) {
		vmem_t *vm = i % 3 == 0 ? c : p;
		int rc = i % 4 == 1 ? a->xfree(vm, v[i], sz[i]) : a->free(vm, v[i], sz[i]);
		if (rc != 0)
			report("free %d through dlopen returned %d", i, rc);
	}
	vmem_stats_t st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	if (a->get_stats(c, &st) != 0 || st.span_total != st.alloc_total + st.free_total ||
	    st.imports == 0)
		report("child statistics through dlopen");
	a->reap(p);
	/* destroy with allocations outstanding: everything must still go */
	a->destroy(c);
	a->destroy(p);
	return !reported();
}

/* ---- process size ------------------------------------------------------------ */

struct psize {
	long vm_kb, rss_kb, maps;
};

static void psize_take(struct psize *p)
{
	memset(p, 0, sizeof(*p));
	FILE *f = fopen("/proc/self/status", "r");
	if (f != NULL) {
		char line[256];
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "VmSize: %ld kB", &p->vm_kb);
			sscanf(line, "VmRSS: %ld kB", &p->rss_kb);
		}
		fclose(f);
	}
	f = fopen("/proc/self/maps", "r");
	if (f != NULL) {
		int ch, last = '\n';
		while ((ch = fgetc(f)) != EOF) {
			if (ch == '\n')
				p->maps++;
			last = ch;
		}
		(void)last;
		fclose(f);
	}
}

static bool under_valgrind(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return false;
	char line[512];
	bool vg = false;
	while (!vg && fgets(line, sizeof(line), f))
		vg = strstr(line, "vgpreload") != NULL;
	fclose(f);
	return vg;
}

/* ---- helpers running meanwhile --------------------------------------------------- */

static atomic_int g_stop;

static void *dl_thread(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg, n = 0;
	while (!atomic_load(&g_stop) && !reported()) {
		struct api a;
		if (!api_open(&a))
			break;
		api_exercise(&a, seed + n++);
		api_close(&a);
	}
	return (void *)(uintptr_t)n;
}

static void *static_thread(void *arg)
{
	/* the copy linked into this test, working all the while */
	vmem_t *vm = vmem_create("static", 0, 1 << 20, 1, 16, 0);
	if (vm == NULL) {
		report("static vmem_create failed");
		return NULL;
	}
	uint64_t s = (uint64_t)(uintptr_t)arg, n = 0;
	vmem_addr_t live[64];
	vmem_size_t sz[64];
	int k = 0;
	while (!atomic_load(&g_stop)) {
		uint64_t r = rand_next(&s);
		if (k == 64 || (k > 0 && (r & 1))) {
			k--;
			if (vmem_free(vm, live[k], sz[k]) != 0)
				report("static free failed");
		} else {
			sz[k] = 1 + r % 32;
			if (vmem_alloc(vm, sz[k], VM_NOSLEEP, &live[k]) == 0)
				k++;
		}
		n++;
	}
	while (k > 0) {
		k--;
		if (vmem_free(vm, live[k], sz[k]) != 0)
			report("static free failed");
	}
	char why[600];
	if (!arena_check(vm, why, sizeof(why)))
		report("static arena: %s", why);
	vmem_destroy(vm);
	return (void *)(uintptr_t)n;
}

static uint64_t g_cycles;

TEST(test_cycles)
{
	report_reset();
	atomic_store(&g_stop, 0);
	uint64_t seed = test_seed(0xd1);
	uint64_t cycles = test_scale(test_sanitized() ? 300 : 2000);
	uint64_t warm = cycles / 10;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, i < 2 ? dl_thread : static_thread,
						(void *)(uintptr_t)(seed + 1000 * (uint64_t)i)),
				 0);
	struct psize p0 = {0}, p1;
	for (uint64_t i = 0; i < cycles && !reported(); i++) {
		if (i == warm)
			psize_take(&p0);
		struct api a;
		if (!api_open(&a))
			break;
		api_exercise(&a, seed + i);
		api_close(&a);
	}
	psize_take(&p1);
	atomic_store(&g_stop, 1);
	uint64_t other = 0, stat_ops = 0;
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		if (i < 2)
			other += (uint64_t)(uintptr_t)r;
		else
			stat_ops += (uint64_t)(uintptr_t)r;
	}
	report_check();
	print_message("# %" PRIu64 " dlopen cycles here, %" PRIu64 " in two other threads, %" PRIu64
		      " operations on the static copy\n",
		      cycles, other, stat_ops);
	print_message("# process after the warm-up: %ld kB virtual, %ld kB RSS, %ld mappings; at the "
		      "end %ld kB, %ld kB, %ld\n",
		      p0.vm_kb, p0.rss_kb, p0.maps, p1.vm_kb, p1.rss_kb, p1.maps);
	/* a cycle that leaked its mappings or arenas would add up over the run;
	 * under valgrind or a sanitizer the process also holds their records of
	 * every load, so only the mapping count says something there */
	uint64_t n = cycles - warm;
	if (under_valgrind() || SANITIZER_BUILD) {
		p1.vm_kb = p0.vm_kb;
		p1.rss_kb = p0.rss_kb;
	}
	if (p1.vm_kb - p0.vm_kb > 8192)
		fail_msg("virtual size grew by %ld kB over %" PRIu64 " cycles", p1.vm_kb - p0.vm_kb, n);
	if (p1.maps - p0.maps > 16)
		fail_msg("%ld more mappings after %" PRIu64 " cycles", p1.maps - p0.maps, n);
	if (p1.rss_kb - p0.rss_kb > 8192)
		fail_msg("RSS grew by %ld kB over %" PRIu64 " cycles", p1.rss_kb - p0.rss_kb, n);
	g_cycles += cycles + other;
}

/* Whether a file named like the library is mapped into this process. */
static bool lib_mapped(void)
{
	const char *base = strrchr(g_path, '/');
	base = base ? base + 1 : g_path;
	char real[PATH_MAX];
	const char *want = realpath(g_path, real) ? strrchr(real, '/') + 1 : base;
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return false;
	char line[PATH_MAX + 128];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *slash = strrchr(line, '/');
		if (slash == NULL)
			continue;
		slash[strcspn(slash, "\n")] = '\0';
		found = strcmp(slash + 1, want) == 0 || strcmp(slash + 1, base) == 0;
	}
	fclose(f);
	return found;
}

TEST(test_exports)
{
	report_reset();
	struct api a;
	assert_true(api_open(&a));
	static const char *internal[] = {"vmem_check", "os_map", "os_fault_after", "os_mapped_bytes",
					 "tagslab_get", "hash_insert", "seg_carve", "fit",
					 "import_span", "arena_wakeup"};
	for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
		if (dlsym(a.h, internal[i]) != NULL)
			fail_msg("internal symbol %s is exported", internal[i]);
	/* the default version is VMEM_1.0 */
	assert_ptr_equal(dlsym(a.h, "vmem_create"), dlvsym(a.h, "vmem_create", VER));
	assert_null(dlvsym(a.h, "vmem_create", "VMEM_0.9"));
	assert_null(dlvsym(a.h, "vmem_create", "LIBVMEM_1.0")); /* not PMDK's libvmem */
	assert_true(lib_mapped());
	api_close(&a);
	/* with no other handle open, dlclose really unloads it (or the cycles
	 * below would prove nothing) */
	if (lib_mapped())
		fail_msg("%s is still mapped after its last dlclose", g_path);
}

/* A thread uses the library, the library is closed, then the thread exits. */
struct late {
	struct api *a;
	vmem_t *vm;
	pthread_mutex_t m;
	pthread_cond_t cv;
	int ready, stage;
};

static void *late_thread(void *arg)
{
	struct late *l = arg;
	vmem_addr_t v[32];
	for (int i = 0; i < 32; i++)
		if (l->a->alloc(l->vm, 1 + i % 8, VM_NOSLEEP, &v[i]) != 0)
			report("late thread: allocation failed");
	for (int i = 0; i < 32; i++)
		if (l->a->free(l->vm, v[i], 1 + i % 8) != 0) /* into the caches */
			report("late thread: free failed");
	pthread_mutex_lock(&l->m);
	l->ready++;
	pthread_cond_broadcast(&l->cv);
	while (l->stage != 2)
		pthread_cond_wait(&l->cv, &l->m);
	pthread_mutex_unlock(&l->m);
	return NULL; /* thread exit with the library gone */
}

TEST(test_thread_exit_after_dlclose)
{
	report_reset();
	for (int round = 0; round < 20; round++) {
		struct api a;
		assert_true(api_open(&a));
		struct late l = {.a = &a, .stage = 0};
		pthread_mutex_init(&l.m, NULL);
		pthread_cond_init(&l.cv, NULL);
		l.vm = a.create("late", 0, 1 << 16, 1, 16, 0);
		assert_non_null(l.vm);
		pthread_t t[3];
		for (int k = 0; k < 3; k++)
			assert_int_equal(pthread_create(&t[k], NULL, late_thread, &l), 0);
		/* all three are past their frees and wait */
		pthread_mutex_lock(&l.m);
		while (l.ready != 3)
			pthread_cond_wait(&l.cv, &l.m);
		pthread_mutex_unlock(&l.m);
		a.reap(l.vm);
		a.destroy(l.vm);
		api_close(&a);
		pthread_mutex_lock(&l.m);
		l.stage = 2;
		pthread_cond_broadcast(&l.cv);
		pthread_mutex_unlock(&l.m);
		for (int k = 0; k < 3; k++)
			pthread_join(t[k], NULL);
		pthread_mutex_destroy(&l.m);
		pthread_cond_destroy(&l.cv);
	}
	report_check();
}

TEST(test_fork_after_dlclose)
{
	report_reset();
	for (int round = 0; round < 10; round++) {
		struct api a;
		assert_true(api_open(&a));
		vmem_t *vm = a.create("forked", 0, 1 << 16, 1, 0, 0);
		assert_non_null(vm);
		vmem_addr_t x;
		assert_int_equal(a.alloc(vm, 10, VM_NOSLEEP, &x), 0);
		/* fork with the library loaded: the child uses the arena */
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		if (pid == 0) {
			vmem_addr_t y;
			int ok = a.alloc(vm, 10, VM_NOSLEEP, &y) == 0 && a.free(vm, y, 10) == 0 &&
				 a.free(vm, x, 10) == 0;
			a.destroy(vm);
			_exit(ok ? 0 : 1);
		}
		int status;
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		a.destroy(vm);
		api_close(&a);
		/* and without it: no handler of the unloaded copy may run */
		pid = fork();
		if (pid == 0)
			_exit(0);
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("fork after dlclose: status %#x", status);
	}
}

TEST(test_figures)
{
	printf("# figure: dlopen cycles %" PRIu64 "\n", g_cycles);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *env = getenv("VMEM_LIBRARY");
	if (argc > 1) {
		snprintf(g_path, sizeof(g_path), "%s", argv[1]);
	} else if (env != NULL && *env != '\0') {
		snprintf(g_path, sizeof(g_path), "%s", env);
	} else {
		/* the build tree: tests/test_dlopen next to lib/libvmem.so.1 */
		static char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0) {
			fprintf(stderr, "test_dlopen: cannot find the library; pass its path\n");
			return 1;
		}
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL)
			*slash = '\0';
		snprintf(g_path, sizeof(g_path), "%s/../lib/libvmem.so.1", self);
	}
	if (access(g_path, R_OK) != 0) {
		fprintf(stderr, "test_dlopen: %s: %s\n", g_path, strerror(errno));
		return 1;
	}
	fprintf(stderr, "# library: %s\n", g_path);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exports),
		cmocka_unit_test(test_cycles),
		cmocka_unit_test(test_thread_exit_after_dlclose),
		cmocka_unit_test(test_fork_after_dlclose),
		cmocka_unit_test(test_figures),
	};
	return cmocka_run_group_tests_name("dlopen", tests, NULL, NULL);
}
