/*
 * pidalloc.c - a PID allocator on libvmem, the way an OS kernel hands out
 * process IDs: the arena "pids" covers [300, 4194304) with quantum 1, and
 * VM_NEXTFIT makes IDs go round like PIDs do (an ID is not reused until
 * the arena has cycled).
 *
 * Several threads allocate and free for about two seconds.  Each keeps a
 * window of live PIDs and frees the oldest when the window is full.  A
 * shadow bitmap (one atomic byte per PID) catches any PID handed out twice.
 * At the end it prints the throughput and a short picture of the arena.
 *
 *	usage: pidalloc [threads] [seconds]
 *
 * Only the public API is used.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vmem.h>

#define PID_MIN 300
#define PID_MAX 4194304 /* exclusive, as on Linux with pid_max at its largest */
#define WINDOW 1024

static vmem_t *pids;
static atomic_uchar *inuse; /* shadow bitmap, indexed by PID */
static atomic_int stop;
static atomic_int errors;

struct worker {
	pthread_t tid;
	uint64_t ops;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	vmem_addr_t window[WINDOW];
	size_t head = 0, count = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (count == WINDOW) {
			/* free the oldest */
			vmem_addr_t pid = window[head];
			head = (head + 1) % WINDOW;
			count--;
			atomic_store(&inuse[pid], 0);
			if (vmem_free(pids, pid, 1) != 0) {
				fprintf(stderr, "pidalloc: vmem_free(%" PRIu64 ") failed\n", pid);
				atomic_fetch_add(&errors, 1);
			}
		}
		vmem_addr_t pid;
		int rc = vmem_alloc(pids, 1, VM_NEXTFIT | VM_NOSLEEP, &pid);
		if (rc != 0) {
			fprintf(stderr, "pidalloc: vmem_alloc: %s\n", strerror(rc));
			atomic_fetch_add(&errors, 1);
			break;
		}
		if (pid < PID_MIN || pid >= PID_MAX) {
			fprintf(stderr, "pidalloc: PID %" PRIu64 " out of range\n", pid);
			atomic_fetch_add(&errors, 1);
			break;
		}
		if (atomic_exchange(&inuse[pid], 1) != 0) {
			fprintf(stderr, "pidalloc: PID %" PRIu64 " handed out twice\n", pid);
			atomic_fetch_add(&errors, 1);
		}
		window[(head + count) % WINDOW] = pid;
		count++;
		w->ops += 1;
	}
	while (count > 0) {
		vmem_addr_t pid = window[head];
		head = (head + 1) % WINDOW;
		count--;
		atomic_store(&inuse[pid], 0);
		if (vmem_free(pids, pid, 1) != 0)
			atomic_fetch_add(&errors, 1);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Print the first few lines of vmem_dump. */
static void dump_head(vmem_t *vm, int lines)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	if (fp == NULL)
		return;
	int rc = vmem_dump(vm, fp);
	fclose(fp);
	if (rc == 0) {
		char *p = text;
		for (int i = 0; i < lines && p != NULL && *p != '\0'; i++) {
			char *nl = strchr(p, '\n');
			int n = nl ? (int)(nl - p) : (int)strlen(p);
			printf("  | %.*s\n", n, p);
			p = nl ? nl + 1 : NULL;
		}
	}
	free(text);
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 4;
	double seconds = argc > 2 ? atof(argv[2]) : 1.5;
	if (nthreads < 1 || nthreads > 256 || seconds <= 0) {
		fprintf(stderr, "usage: %s [threads 1..256] [seconds]\n", argv[0]);
		return 2;
	}

	pids = vmem_create("pids", PID_MIN, PID_MAX - PID_MIN, 1, 0, 0);
	if (pids == NULL) {
		fprintf(stderr, "pidalloc: vmem_create: %s\n", strerror(errno));
		return 1;
	}
	inuse = calloc(PID_MAX, sizeof(*inuse));
	struct worker *w = calloc((size_t)nthreads, sizeof(*w));
	if (inuse == NULL || w == NULL) {
		fprintf(stderr, "pidalloc: out of memory\n");
		return 1;
	}

	double t0 = now();
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&w[i].tid, NULL, worker, &w[i]) != 0) {
			fprintf(stderr, "pidalloc: pthread_create failed\n");
			return 1;
		}
	struct timespec nap = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
	nanosleep(&nap, NULL);

	/* a look at the arena while it is busy */
	vmem_stats_t st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	vmem_get_stats(pids, &st);

	atomic_store(&stop, 1);
	uint64_t ops = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].tid, NULL);
		ops += w[i].ops;
	}
	double dt = now() - t0;

	printf("pidalloc: %d threads, %.2f s, %" PRIu64 " PIDs allocated and freed, %.0f ops/s\n",
	       nthreads, dt, ops, (double)ops / dt);
	printf("while busy: %" PRIu64 " of %" PRIu64 " PIDs in use in %" PRIu64
	       " segments, %" PRIu64 " free segments, %" PRIu64 " bytes of tags\n",
	       st.alloc_total, st.span_total, st.nalloc, st.nfree, st.tag_bytes);
	printf("IDs went round the arena about %.2f times\n",
	       (double)ops / (double)(PID_MAX - PID_MIN));

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	vmem_get_stats(pids, &st);
	printf("after: allocs %" PRIu64 ", frees %" PRIu64 ", fails %" PRIu64
	       ", in use %" PRIu64 "\n",
	       st.allocs, st.frees, st.fails, st.alloc_total);
	dump_head(pids, 8);

	int bad = atomic_load(&errors) != 0 || st.alloc_total != 0 || st.allocs != st.frees;
	vmem_destroy(pids);
	free(inuse);
	free(w);
	if (bad) {
		fprintf(stderr, "pidalloc: FAILED\n");
		return 1;
	}
	printf("pidalloc: no PID was handed out twice\n");
	return 0;
}
