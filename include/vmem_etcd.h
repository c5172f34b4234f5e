/*
 * vmem_etcd.h - cluster pools: vmem arenas that import blocks from a pool
 * kept in etcd, so that IDs are unique across processes and machines.
 *
 * A pool is a range [base, base + size) cut into blocks of `block` units.
 * Each connection (vmem_etcd_t) claims whole blocks through etcd
 * transactions and hands them to the arenas attached to it as imported
 * spans; the arenas allocate single IDs locally.  etcd is touched once per
 * block, not once per ID.  Library: libvmem-etcd.so.1 (pkg-config module
 * vmem-etcd); it speaks etcd's v3 JSON gateway (etcd 3.4 or later).
 *
 * Keys in etcd (PREFIX is used verbatim, POOL is 1 to 64 characters of
 * [A-Za-z0-9._-]):
 *   PREFIX POOL /config             {"base":"B","size":"S","block":"K"}
 *   PREFIX POOL /blocks/IIIIIIIIIIIIIIII   {"owner":"NAME"}  (16 lowercase hex
 *                                   digits; exists exactly while held)
 *
 * Errors: every int function returns 0 or a positive errno value, never -1.
 * Answers from etcd map as follows: no answer within timeout_ms from any
 * endpoint tried ETIMEDOUT; otherwise no endpoint answering (an etcd error
 * such as "no leader" counts as no answer) ECONNREFUSED; TLS or
 * authentication refused EACCES; an answer or stored value that does not
 * parse EPROTO.  Every endpoint of the list is tried before giving up.
 *
 * Threads: every function may be called from any thread.  A connection
 * runs a background thread (prefetch and pending releases) and, with a
 * lease, a keepalive thread.  A connection does not survive fork(): a child
 * opens its own.
 *
 * Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef VMEM_ETCD_H
#define VMEM_ETCD_H

#include <stdint.h>

#include <vmem.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmem_etcd vmem_etcd_t; /* opaque: one connection to one pool */

typedef struct vmem_etcd_opts {
	uint32_t size;         /* in: sizeof(vmem_etcd_opts_t) as the caller was built */
	uint32_t ttl_s;        /* 0: claims have no lease and stay until released;
	                          else the lease's TTL in seconds, kept alive by a thread */
	const char *endpoints; /* comma-separated URLs; NULL: $VMEM_ETCD_ENDPOINTS,
	                          else "http://127.0.0.1:2379" */
	const char *prefix;    /* NULL: "/vmem/" */
	const char *owner;     /* unique per connection; NULL: "<hostname>:<pid>:<n>", where n
	                          counts the connections this process has opened, from 1 */
	uint32_t timeout_ms;   /* per request; 0: 2000 */
	uint32_t prefetch;     /* blocks kept claimed ahead of need (0: none) */
	const char *ca_file, *cert_file, *key_file; /* TLS; NULL: not used */
	const char *username, *password;            /* etcd authentication; NULL: none */
	void (*lease_lost)(void *arg); /* called once, from the keepalive thread, if the lease is lost
	                                  (it must not call vmem_etcd_close) */
	void *lease_lost_arg;
	/* later versions append fields here */
} vmem_etcd_opts_t;

/*
 * Create pool `pool` as [base, base + size) in blocks of `block` units:
 * write its config key if it is absent.  The same parameters again: 0.
 * Other parameters for an existing pool: EEXIST.  block 0, size 0 or not a
 * multiple of block, a range that wraps past 2^64 (base + size == 2^64 is
 * fine), or a bad pool name: EINVAL.  An existing config that does not
 * parse: EPROTO.  o may be NULL (every default); o->size too small: EINVAL.
 */
int vmem_etcd_pool_create(const vmem_etcd_opts_t *o, const char *pool, vmem_addr_t base,
			  vmem_size_t size, vmem_size_t block);

/*
 * Remove the pool's config key.  EBUSY while any block is held, ENOENT if
 * there is no such pool.  Destroy and claims cannot interleave: a claim
 * made by a connection opened before the destroy fails.
 */
int vmem_etcd_pool_destroy(const vmem_etcd_opts_t *o, const char *pool);

/*
 * Connect to the pool: read its config and, with ttl_s > 0, grant the
 * lease.  ENOENT: no such pool.  With prefetch > 0 the background thread
 * starts claiming spares at once.  The options' strings are copied.
 */
int vmem_etcd_open(const vmem_etcd_opts_t *o, const char *pool, vmem_etcd_t **srcp);

/*
 * Make vm import from the pool: vmem_set_import with the pool's block as
 * the import quantum.  Returns what that returns (EBUSY once vm has
 * allocated), or EINVAL if vm's quantum does not divide the block (or the
 * pool's base).  Several arenas may attach to one connection.
 *
 * An import of n units claims ceil(n / block) consecutive free blocks in one
 * transaction (at most 127, the most one etcd transaction can hold), or
 * hands out a spare with no request when n <= block.  Pool exhausted:
 * ENOMEM under VM_NOSLEEP; under VM_SLEEP the import waits (a watch on the
 * pool's block keys) until some owner releases a block.  Other failures
 * return at once; while etcd is unreachable, imports fail without a request
 * until the backoff (exponential, at most one attempt a second) allows the
 * next.  After a lost lease every import fails with ENOLINK (the arena's
 * caller sees ENOMEM).  A span that becomes wholly free is released by the
 * background thread, never on the caller's path; releases etcd does not
 * take are kept and retried until it does.
 */
int vmem_etcd_attach(vmem_etcd_t *src, vmem_t *vm);

/*
 * Close a connection, after every arena attached to it is destroyed:
 * release what it still holds (spares included), wait up to timeout_ms for
 * pending releases, revoke the lease, free everything.  0, or ETIMEDOUT if
 * some releases were still pending: those blocks stay claimed under this
 * owner until the lease expires or, without a lease, until
 * `vmem-pool release POOL --owner NAME`.  NULL: 0.
 */
int vmem_etcd_close(vmem_etcd_t *src);

typedef struct vmem_etcd_stats {
	uint32_t size;             /* in: sizeof(vmem_etcd_stats_t) as the caller was built */
	uint32_t lease_lost;       /* 1 once the lease was lost */
	uint64_t blocks_held;      /* blocks this connection holds now, spares included */
	uint64_t spares;           /* of which claimed ahead by prefetch */
	uint64_t claims, releases; /* successful etcd transactions */
	uint64_t conflicts;        /* claim transactions lost to another owner and retried */
	uint64_t errors;           /* requests that failed (unreachable, timeout, refused) */
	uint64_t pending_releases; /* releases not yet accepted by etcd */
	int last_error;            /* errno of the last failed request, 0 if none */
	/* later versions append fields here */
} vmem_etcd_stats_t;

/* Fill *st up to st->size bytes.  EINVAL if src is NULL or st->size is
 * smaller than the version-1 structure. */
int vmem_etcd_get_stats(vmem_etcd_t *src, vmem_etcd_stats_t *st);

#ifdef __cplusplus
}
#endif

#endif /* VMEM_ETCD_H */
