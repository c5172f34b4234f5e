/*
 * etcd-consumer.c - autopkgtest: a program built with `pkg-config --cflags
 * --libs vmem-etcd` against the installed libvmem-etcd-dev.  Without any
 * etcd it checks what the library must answer by itself: bad arguments are
 * EINVAL and change nothing, an endpoint where nothing listens is
 * ECONNREFUSED, an endpoint that never answers is ETIMEDOUT, and closing
 * NULL is 0.
 *
 * Copyright (c) 2026 the libvmem authors.  SPDX-License-Identifier: BSD-2-Clause
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vmem.h>
#include <vmem_etcd.h>

static int failures;

#define EXPECT(call, want)                                                               \
	do {                                                                             \
		int got_ = (call);                                                       \
		if (got_ != (want)) {                                                    \
			fprintf(stderr, "FAIL line %d: %s: %s, expected %s\n", __LINE__, \
				#call, strerror(got_), strerror(want));                  \
			failures++;                                                      \
		}                                                                        \
	} while (0)

/* A socket on a free port of 127.0.0.1: listening (it accepts connections
 * and never answers) or not (the port is closed again: refused). */
static int socket_on_free_port(int listening, char *url, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 || (listening && listen(fd, 8) != 0))
		return -1;
	snprintf(url, len, "http://127.0.0.1:%d", ntohs(sa.sin_port));
	if (!listening) {
		close(fd);
		return 0;
	}
	return fd;
}

int main(void)
{
	char closed[64], silent[64];
	int lfd;
	if (socket_on_free_port(0, closed, sizeof(closed)) != 0 ||
	    (lfd = socket_on_free_port(1, silent, sizeof(silent))) < 0) {
		perror("socket");
		return 1;
	}
	vmem_etcd_opts_t o = {.size = sizeof(o), .endpoints = closed, .timeout_ms = 500};
	vmem_etcd_t *src = NULL;

	/* bad arguments: EINVAL before any request */
	EXPECT(vmem_etcd_pool_create(&o, "p", 0, 100, 0), EINVAL);
	EXPECT(vmem_etcd_pool_create(&o, "p", 0, 100, 30), EINVAL);
	EXPECT(vmem_etcd_pool_create(&o, "p", ~(vmem_addr_t)0, 2, 1), EINVAL);
	EXPECT(vmem_etcd_pool_create(&o, "no/slashes", 0, 100, 10), EINVAL);
	EXPECT(vmem_etcd_open(&o, "", &src), EINVAL);
	EXPECT(vmem_etcd_open(&o, "p", NULL), EINVAL);
	vmem_etcd_opts_t small = o;
	small.size = 8;
	EXPECT(vmem_etcd_open(&small, "p", &src), EINVAL);
	vmem_etcd_opts_t half_tls = o;
	half_tls.cert_file = "/nonexistent.pem";
	EXPECT(vmem_etcd_open(&half_tls, "p", &src), EINVAL);
	vmem_etcd_opts_t bad_url = o;
	bad_url.endpoints = "ftp://127.0.0.1:1";
	EXPECT(vmem_etcd_open(&bad_url, "p", &src), EINVAL);
	vmem_etcd_stats_t st = {.size = sizeof(st)};
	EXPECT(vmem_etcd_get_stats(NULL, &st), EINVAL);
	EXPECT(vmem_etcd_attach(NULL, NULL), EINVAL);
	EXPECT(vmem_etcd_close(NULL), 0);

	/* nothing listens: refused; something listens and never answers: timed out */
	EXPECT(vmem_etcd_pool_create(&o, "p", 0, 100, 10), ECONNREFUSED);
	EXPECT(vmem_etcd_open(&o, "p", &src), ECONNREFUSED);
	o.endpoints = silent;
	EXPECT(vmem_etcd_open(&o, "p", &src), ETIMEDOUT);
	/* the list is tried in full: the silent endpoint first, then the closed one */
	char both[160];
	snprintf(both, sizeof(both), "%s,%s", silent, closed);
	o.endpoints = both;
	EXPECT(vmem_etcd_pool_destroy(&o, "p"), ETIMEDOUT);
	close(lfd);

	if (failures == 0)
		printf("libvmem-etcd (libvmem %s): every answer as documented\n", vmem_version());
	return failures != 0;
}
