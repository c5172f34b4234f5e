/*
 * harness.h - real etcd for the cluster-pool tests: one member or three,
 * on free ports of 127.0.0.1, in a temporary directory, optionally with TLS
 * (certificates made here with openssl) or with username/password auth.
 *
 * Every process the harness starts (etcd members, forked helpers) is
 * registered; h_stop kills each by its PID and reaps it, pass or fail, and
 * removes the directory.  PR_SET_PDEATHSIG in every child is the backstop
 * if the test process itself dies; a SIGTERM/SIGINT handler (meson's
 * timeout) kills the registered PIDs too.
 */
#ifndef VMEM_ETCD_HARNESS_H
#define VMEM_ETCD_HARNESS_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmem_etcd.h"

#define H_MAX_MEMBERS 3

enum { H_TLS = 1, H_AUTH = 2 };

struct h_member {
	pid_t pid; /* 0 while stopped */
	int client_port, peer_port;
	char name[16], dir[240], url[64], peer_url[64];
};

struct h_cluster {
	int n;
	unsigned flags;
	struct h_member m[H_MAX_MEMBERS];
	char tmp[200];
	char endpoints[256];
	/* H_TLS: the CA, a client certificate it signed, and one it did not */
	char ca[240], cert[240], key[240], other_cert[240], other_key[240];
};

#define H_USER "root"
#define H_PASSWORD "s3cret"

/* The cluster of most tests, and cmocka group setups/teardown for it. */
extern struct h_cluster h_main;
int h_setup_one(void **state);   /* one member */
int h_setup_three(void **state); /* three members */
int h_teardown_main(void **state);

/* Start n members (1 or 3) and wait until they serve; 0 or -1. */
int h_start(struct h_cluster *cl, int n, unsigned flags);
/* Kill every process started by the harness, reap them, remove the directory
 * (kept when VMEM_TEST_KEEP is set, to read the members' logs). */
void h_stop(struct h_cluster *cl);
void h_kill_member(struct h_cluster *cl, int i); /* SIGKILL + waitpid */
int h_restart_member(struct h_cluster *cl, int i);
void h_pause_member(struct h_cluster *cl, int i); /* SIGSTOP */
void h_resume_member(struct h_cluster *cl, int i);

/* Options pointing at the cluster (TLS files and credentials set when the
 * cluster has them); h_opts_owner sets the owner (NULL: the default) and
 * the lease TTL (0: none) too. */
vmem_etcd_opts_t h_opts(const struct h_cluster *cl);
vmem_etcd_opts_t h_opts_owner(const struct h_cluster *cl, const char *owner, uint32_t ttl_s);

/* Open pool with o and attach a new arena of quantum 1 (named after the pool)
 * to it: 0, or the error of the step that failed (ENOMEM: no arena), with
 * nothing left open.  h_close_arena destroys the arena, then closes the
 * connection: vmem_etcd_close's result. */
int h_open_arena(const vmem_etcd_opts_t *o, const char *pool, vmem_etcd_t **src, vmem_t **vm);
int h_close_arena(vmem_etcd_t *src, vmem_t *vm);

/* The stats of src, in a test: the call failing fails the test (cmocka's
 * assert_int_equal, which the test file includes). */
#define H_STATS(src)                                                                           \
	({                                                                                     \
		vmem_etcd_stats_t h_st_ = {.size = sizeof(h_st_)};                             \
		assert_int_equal(vmem_etcd_get_stats((src), &h_st_), 0);                       \
		h_st_;                                                                         \
	})

/* Zeroed memory shared with the helpers forked after it (MAP_SHARED), or
 * NULL; h_unshare gives it back. */
void *h_share(size_t size);
void h_unshare(void *p, size_t size);

/* fork() a helper that runs fn(arg) and exits with its result; registered
 * for h_stop.  h_wait reaps one and returns its exit status (or 128+signal). */
pid_t h_fork(int (*fn)(void *), void *arg);
int h_wait(pid_t pid);

/* Raw access through the gateway, independent of the library: a POST of a
 * JSON text to member i, answered JSON (or NULL). */
json_t *h_post(const struct h_cluster *cl, int i, const char *path, const char *body);
/* Base64 of a string; decoded string (caller frees). */
char *h_b64(const char *s);
char *h_unb64(const char *s);
/* Every key with the prefix, decoded, as a JSON array of
 * {"key","value","lease"} (lease "0" when none); NULL on failure. */
json_t *h_keys(const struct h_cluster *cl, const char *prefix);
/* Keys with the prefix; -1 on failure.  h_count_owned: block keys of pool
 * (default prefix) whose value names owner. */
long h_count(const struct h_cluster *cl, const char *prefix);
long h_count_owned(const struct h_cluster *cl, const char *pool, const char *owner);
int h_put(const struct h_cluster *cl, const char *key, const char *value);

/* Run $VMEM_POOL with --endpoints of the cluster and the arguments given
 * (a printf format); its exit status (-1: could not run it), its output
 * (stdout and stderr) in out when out is not NULL. */
int h_tool(const struct h_cluster *cl, char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Milliseconds on CLOCK_MONOTONIC; a sleep. */
uint64_t h_now_ms(void);
void h_sleep_ms(unsigned ms);
/* Poll cond until it holds or ms pass; returns whether it held. */
#define H_WAIT_FOR(cond, ms)                                                                   \
	({                                                                                     \
		uint64_t h_until_ = h_now_ms() + (ms);                                         \
		bool h_ok_;                                                                    \
		while (!(h_ok_ = (cond)) && h_now_ms() < h_until_)                             \
			h_sleep_ms(20);                                                        \
		h_ok_;                                                                         \
	})

#endif
