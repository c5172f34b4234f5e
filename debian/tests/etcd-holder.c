/*
 * etcd-holder.c - autopkgtest helper: open a connection to pool POOL
 * without a lease under owner NAME, take N blocks (one allocation of a
 * whole block each) and exit without releasing them, as a process that
 * crashes does.  Usage: etcd-holder POOL NAME N
 *
 * Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vmem.h>
#include <vmem_etcd.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	const char *pool = argv[1];
	vmem_etcd_opts_t o = {.size = sizeof(o), .owner = argv[2]};
	int n = atoi(argv[3]);
	vmem_etcd_t *src;
	vmem_etcd_stats_t st = {.size = sizeof(st)};
	vmem_t *vm = vmem_create("holder", 0, 0, 1, 0, 0);
	int err = vm ? vmem_etcd_open(&o, pool, &src) : 1;
	if (err == 0)
		err = vmem_etcd_attach(src, vm);
	for (int i = 0; i < n && err == 0; i++) {
		vmem_addr_t id;
		/* a whole block: the pool's block is 64 */
		err = vmem_alloc(vm, 64, VM_NOSLEEP, &id);
	}
	if (err == 0)
		err = vmem_etcd_get_stats(src, &st);
	if (err != 0) {
		fprintf(stderr, "etcd-holder: %s\n", strerror(err));
		return 1;
	}
	printf("etcd-holder: %s holds %llu blocks of %s\n", argv[2],
	       (unsigned long long)st.blocks_held, pool);
	fflush(stdout);
	_exit(0); /* no release, no close: the blocks stay claimed */
}
