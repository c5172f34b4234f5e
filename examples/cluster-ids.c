/*
 * cluster-ids - several processes take IDs from one cluster pool in etcd,
 * and none is handed out twice.
 *
 *   cluster-ids [PROCESSES [IDS_EACH]]
 *
 * Needs a running etcd: the endpoints come from $VMEM_ETCD_ENDPOINTS (else
 * http://127.0.0.1:2379).  The pool "cluster-ids-demo" holds the IDs
 * [1000, 1000 + 4096) in blocks of 64; each process opens its own
 * connection, attaches an arena to it and allocates, freeing some IDs as
 * it goes.  Every ID a process holds is marked in a bitmap shared by all of
 * them with an atomic test-and-set: a mark already set is a duplicate.
 * Exit status 0 when there was none.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vmem.h>
#include <vmem_etcd.h>

#define POOL "cluster-ids-demo"
#define BASE 1000
#define SIZE 4096
#define BLOCK 64

static atomic_uchar *held; /* shared: 1 while some process holds the ID */

static int worker(int me, int ids)
{
	vmem_etcd_t *src;
	vmem_etcd_opts_t o = {.size = sizeof(o), .ttl_s = 10, .prefetch = 1};
	int err = vmem_etcd_open(&o, POOL, &src);
	if (err) {
		fprintf(stderr, "process %d: vmem_etcd_open: %s\n", me, strerror(err));
		return 1;
	}
	vmem_t *vm = vmem_create("ids", 0, 0, 1, 0, VM_SLEEP);
	if (vm == NULL || (err = vmem_etcd_attach(src, vm)) != 0) {
		fprintf(stderr, "process %d: attach: %s\n", me, strerror(vm ? err : errno));
		return 1;
	}
	vmem_addr_t *mine = calloc((size_t)ids, sizeof(*mine));
	int n = 0, dups = 0;
	for (int i = 0; i < ids; i++) {
		vmem_addr_t id;
		if (vmem_alloc(vm, 1, VM_SLEEP, &id) != 0)
			break;
		if (atomic_exchange(&held[id - BASE], 1) != 0) {
			fprintf(stderr, "process %d: ID %llu handed out twice\n", me,
				(unsigned long long)id);
			dups++;
		}
		mine[n++] = id;
		if (i % 3 == 2) { /* give one back now and then */
			vmem_addr_t back = mine[--n];
			atomic_store(&held[back - BASE], 0);
			vmem_free(vm, back, 1);
		}
	}
	printf("process %d: %d IDs held, first %llu\n", me, n,
	       n ? (unsigned long long)mine[0] : 0ull);
	for (int i = 0; i < n; i++) {
		atomic_store(&held[mine[i] - BASE], 0);
		vmem_free(vm, mine[i], 1);
	}
	free(mine);
	vmem_destroy(vm);
	err = vmem_etcd_close(src);
	if (err)
		fprintf(stderr, "process %d: close: %s\n", me, strerror(err));
	return dups || err ? 1 : 0;
}

int main(int argc, char **argv)
{
	int procs = argc > 1 ? atoi(argv[1]) : 4;
	int ids = argc > 2 ? atoi(argv[2]) : 500;
	if (procs < 1 || ids < 1 || (long)procs * ids > SIZE) {
		fprintf(stderr, "usage: cluster-ids [PROCESSES [IDS_EACH]] (at most %d IDs in all)\n",
			SIZE);
		return 2;
	}
	int err = vmem_etcd_pool_create(NULL, POOL, BASE, SIZE, BLOCK);
	if (err) {
		fprintf(stderr, "vmem_etcd_pool_create: %s (is etcd running?)\n", strerror(err));
		return 1;
	}
	fflush(stdout); /* not twice, through the children's copies */
	held = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (held == MAP_FAILED)
		return 1;
	for (int p = 0; p < procs; p++) {
		pid_t pid = fork();
		if (pid == 0) {
			int rc = worker(p, ids);
			fflush(stdout);
			_exit(rc);
		}
		if (pid < 0)
			return 1;
	}
	int bad = 0, status;
	while (wait(&status) > 0)
		bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	printf("%d processes, %s\n", procs, bad ? "FAILED" : "no ID handed out twice");
	/* every connection closed: the pool holds no block, so it can go */
	err = vmem_etcd_pool_destroy(NULL, POOL);
	if (err)
		fprintf(stderr, "vmem_etcd_pool_destroy: %s\n", strerror(err));
	return bad || err ? 1 : 0;
}
