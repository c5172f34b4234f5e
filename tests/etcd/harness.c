/*
 * harness.c - starts and stops real etcd members for the tests; see
 * harness.h.
 */
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- registered children ------------------------------------------------- */

#define MAX_CHILDREN 64
static volatile pid_t children[MAX_CHILDREN];

static void child_add(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == 0) {
			children[i] = pid;
			return;
		}
}

static void child_forget(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static void kill_all_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		pid_t pid = children[i];
		if (pid > 0) {
			kill(pid, SIGCONT);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			children[i] = 0;
		}
	}
}

static void on_fatal_signal(int sig)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static pid_t harness_pid;

static void at_exit_kill(void)
{
	if (getpid() == harness_pid)
		kill_all_children();
}

static void install_backstops(void)
{
	if (harness_pid != 0)
		return;
	harness_pid = getpid();
	atexit(at_exit_kill);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGINT, on_fatal_signal);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* In a new child: die with the parent (the forking thread), even if the
 * parent died before this line ran. */
static void child_backstop(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
}

pid_t h_fork(int (*fn)(void *), void *arg)
{
	install_backstops();
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		child_backstop(parent);
		for (int i = 0; i < MAX_CHILDREN; i++)
			children[i] = 0; /* not ours to kill */
		harness_pid = 0;
		int rc = fn(arg);
		fflush(NULL);
		_exit(rc);
	}
	if (pid > 0)
		child_add(pid);
	return pid;
}

int h_wait(pid_t pid)
{
	int status;
	pid_t r;
	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	child_forget(pid);
	if (r != pid)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* ---- time ----------------------------------------------------------------- */

uint64_t h_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void h_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- processes ----------------------------------------------------------- */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Run argv to completion, output to log; its exit status. */
static int run(char *const argv[], const char *log)
{
	install_backstops();
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		child_backstop(parent);
		int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	child_add(pid);
	return h_wait(pid);
}

static void member_argv_start(struct h_cluster *cl, int i)
{
	struct h_member *m = &cl->m[i];
	char cluster[512] = "", log[256];
	for (int k = 0; k < cl->n; k++) {
		size_t len = strlen(cluster);
		snprintf(cluster + len, sizeof(cluster) - len, "%s%s=%s", k ? "," : "", cl->m[k].name,
			 cl->m[k].peer_url);
	}
	snprintf(log, sizeof(log), "%s.log", m->dir);
	char srv_cert[240], srv_key[240];
	snprintf(srv_cert, sizeof(srv_cert), "%s/server.crt", cl->tmp);
	snprintf(srv_key, sizeof(srv_key), "%s/server.key", cl->tmp);
	const char *argv[40] = {
		"etcd", "--name", m->name, "--data-dir", m->dir,
		"--listen-client-urls", m->url, "--advertise-client-urls", m->url,
		"--listen-peer-urls", m->peer_url, "--initial-advertise-peer-urls", m->peer_url,
		"--initial-cluster", cluster, "--initial-cluster-state", "new",
		/* quicker elections after a member dies; etcd's minimum lease TTL stays 1 s */
		"--heartbeat-interval", "50", "--election-timeout", "500",
	};
	const char *const tls_argv[] = {
		"--cert-file", srv_cert, "--key-file", srv_key,
		"--client-cert-auth", "--trusted-ca-file", cl->ca,
	};
	size_t a = 0;
	while (argv[a] != NULL)
		a++;
	for (size_t k = 0; (cl->flags & H_TLS) && k < sizeof(tls_argv) / sizeof(tls_argv[0]); k++)
		argv[a++] = tls_argv[k];
	argv[a] = NULL;

	install_backstops();
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		child_backstop(parent);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp("etcd", (char *const *)argv);
		_exit(127);
	}
	if (pid > 0) {
		m->pid = pid;
		child_add(pid);
	}
}

static bool member_serves(const struct h_cluster *cl, int i)
{
	json_t *j = h_post(cl, i, "/v3/kv/range", "{\"key\":\"AA==\"}");
	bool ok = j != NULL && json_object_get(j, "header") != NULL;
	json_decref(j);
	return ok;
}

static bool member_alive(struct h_member *m)
{
	return m->pid > 0 && waitpid(m->pid, NULL, WNOHANG) == 0;
}

/* openssl: a CA, a server certificate for 127.0.0.1, a client certificate,
 * and a self-signed client certificate from no trusted CA. */
static int make_certs(struct h_cluster *cl)
{
	char log[256], ext[256];
	snprintf(log, sizeof(log), "%s/openssl.log", cl->tmp);
	snprintf(ext, sizeof(ext), "%s/san.ext", cl->tmp);
	FILE *f = fopen(ext, "w");
	if (f == NULL)
		return -1;
	fputs("subjectAltName=IP:127.0.0.1\n", f);
	fclose(f);
	char cmd[6][4096];
	const char *t = cl->tmp;
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	snprintf(cmd[0], sizeof(cmd[0]),
		 "openssl req -x509 %s -keyout %s/ca.key -out %s/ca.crt -days 2 -subj /CN=vmem-test-ca",
		 ec, t, t);
	snprintf(cmd[1], sizeof(cmd[1]),
		 "openssl req %s -keyout %s/server.key -out %s/server.csr -subj /CN=127.0.0.1", ec, t,
		 t);
	snprintf(cmd[2], sizeof(cmd[2]),
		 "openssl x509 -req -in %s/server.csr -CA %s/ca.crt -CAkey %s/ca.key -CAcreateserial "
		 "-out %s/server.crt -days 2 -extfile %s",
		 t, t, t, t, ext);
	snprintf(cmd[3], sizeof(cmd[3]),
		 "openssl req %s -keyout %s/client.key -out %s/client.csr -subj /CN=client", ec, t, t);
	snprintf(cmd[4], sizeof(cmd[4]),
		 "openssl x509 -req -in %s/client.csr -CA %s/ca.crt -CAkey %s/ca.key -CAcreateserial "
		 "-out %s/client.crt -days 2",
		 t, t, t, t);
	snprintf(cmd[5], sizeof(cmd[5]),
		 "openssl req -x509 %s -keyout %s/other.key -out %s/other.crt -days 2 -subj /CN=other",
		 ec, t, t);
	for (int i = 0; i < 6; i++) {
		char *argv[] = {"sh", "-c", cmd[i], NULL};
		if (run(argv, log) != 0) {
			fprintf(stderr, "harness: failed: %s\n", cmd[i]);
			return -1;
		}
	}
	snprintf(cl->ca, sizeof(cl->ca), "%s/ca.crt", t);
	snprintf(cl->cert, sizeof(cl->cert), "%s/client.crt", t);
	snprintf(cl->key, sizeof(cl->key), "%s/client.key", t);
	snprintf(cl->other_cert, sizeof(cl->other_cert), "%s/other.crt", t);
	snprintf(cl->other_key, sizeof(cl->other_key), "%s/other.key", t);
	return 0;
}

/* root with a password, then auth on: straight through the gateway */
static int enable_auth(struct h_cluster *cl)
{
	json_t *r = h_post(cl, 0, "/v3/auth/user/add",
			   "{\"name\":\"" H_USER "\",\"password\":\"" H_PASSWORD "\"}");
	json_t *g = h_post(cl, 0, "/v3/auth/user/grant",
			   "{\"user\":\"" H_USER "\",\"role\":\"root\"}");
	json_t *e = r && g ? h_post(cl, 0, "/v3/auth/enable", "{}") : NULL;
	int ok = r && g && e ? 0 : -1;
	json_decref(r);
	json_decref(g);
	json_decref(e);
	if (ok != 0)
		fprintf(stderr, "harness: could not enable authentication\n");
	return ok;
}

/* The last lines of a member's log (DIR.log) on stderr. */
static void print_tail(const char *dir)
{
	char log[256], line[512], ring[8][512];
	snprintf(log, sizeof(log), "%s.log", dir);
	FILE *f = fopen(log, "r");
	if (f == NULL)
		return;
	int n = 0;
	while (fgets(line, sizeof(line), f))
		memcpy(ring[n++ % 8], line, sizeof(line));
	fclose(f);
	for (int i = n > 8 ? n - 8 : 0; i < n; i++)
		fprintf(stderr, "  %s: %s", log, ring[i % 8]);
}

int h_start(struct h_cluster *cl, int n, unsigned flags)
{
	memset(cl, 0, sizeof(*cl));
	install_backstops();
	cl->n = n;
	cl->flags = flags;
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(cl->tmp, sizeof(cl->tmp), "%s/vmem-etcd-test.XXXXXX", base);
	if (mkdtemp(cl->tmp) == NULL)
		return -1;
	if ((flags & H_TLS) && make_certs(cl) != 0) {
		h_stop(cl);
		return -1;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		const char *scheme = flags & H_TLS ? "https" : "http";
		cl->endpoints[0] = '\0';
		for (int i = 0; i < n; i++) {
			struct h_member *m = &cl->m[i];
			m->client_port = free_port();
			m->peer_port = free_port();
			snprintf(m->name, sizeof(m->name), "m%d", i);
			snprintf(m->dir, sizeof(m->dir), "%s/m%d-%d", cl->tmp, i, attempt);
			snprintf(m->url, sizeof(m->url), "%s://127.0.0.1:%d", scheme, m->client_port);
			snprintf(m->peer_url, sizeof(m->peer_url), "http://127.0.0.1:%d", m->peer_port);
			size_t len = strlen(cl->endpoints);
			snprintf(cl->endpoints + len, sizeof(cl->endpoints) - len, "%s%s", i ? "," : "",
				 m->url);
		}
		for (int i = 0; i < n; i++)
			member_argv_start(cl, i);
		bool up = false;
		uint64_t until = h_now_ms() + 30000;
		while (h_now_ms() < until) {
			bool all = true, dead = false;
			for (int i = 0; i < n; i++) {
				dead |= !member_alive(&cl->m[i]);
				all = all && member_serves(cl, i);
			}
			if (all) {
				up = true;
				break;
			}
			if (dead)
				break; /* a port was taken after all: new ports */
			h_sleep_ms(50);
		}
		if (up && (!(flags & H_AUTH) || enable_auth(cl) == 0))
			return 0;
		for (int i = 0; i < n; i++)
			h_kill_member(cl, i);
	}
	fprintf(stderr, "harness: etcd did not start; the end of its logs:\n");
	for (int i = 0; i < n; i++)
		print_tail(cl->m[i].dir);
	h_stop(cl);
	return -1;
}

void h_kill_member(struct h_cluster *cl, int i)
{
	struct h_member *m = &cl->m[i];
	if (m->pid > 0) {
		kill(m->pid, SIGCONT);
		kill(m->pid, SIGKILL);
		h_wait(m->pid);
		m->pid = 0;
	}
}

int h_restart_member(struct h_cluster *cl, int i)
{
	h_kill_member(cl, i);
	member_argv_start(cl, i);
	/* a lone member of three cannot serve: only wait for a single one */
	if (cl->n == 1 && !H_WAIT_FOR(member_serves(cl, i), 30000))
		return -1;
	return cl->m[i].pid > 0 ? 0 : -1;
}

void h_pause_member(struct h_cluster *cl, int i)
{
	if (cl->m[i].pid > 0)
		kill(cl->m[i].pid, SIGSTOP);
}

void h_resume_member(struct h_cluster *cl, int i)
{
	if (cl->m[i].pid > 0)
		kill(cl->m[i].pid, SIGCONT);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

void h_stop(struct h_cluster *cl)
{
	for (int i = 0; i < cl->n; i++)
		h_kill_member(cl, i);
	kill_all_children();
	if (cl->tmp[0] != '\0' && getenv("VMEM_TEST_KEEP") == NULL)
		nftw(cl->tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	cl->tmp[0] = '\0';
}

struct h_cluster h_main;

int h_setup_one(void **state)
{
	(void)state;
	return h_start(&h_main, 1, 0);
}

int h_setup_three(void **state)
{
	(void)state;
	return h_start(&h_main, 3, 0);
}

int h_teardown_main(void **state)
{
	(void)state;
	h_stop(&h_main);
	return 0;
}

vmem_etcd_opts_t h_opts(const struct h_cluster *cl)
{
	/* generous: the tests share two cores with everything else; those that
	 * stop etcd set a short timeout of their own */
	vmem_etcd_opts_t o = {.size = sizeof(o), .endpoints = cl->endpoints, .timeout_ms = 5000};
	if (cl->flags & H_TLS) {
		o.ca_file = cl->ca;
		o.cert_file = cl->cert;
		o.key_file = cl->key;
	}
	if (cl->flags & H_AUTH) {
		o.username = H_USER;
		o.password = H_PASSWORD;
	}
	return o;
}

vmem_etcd_opts_t h_opts_owner(const struct h_cluster *cl, const char *owner, uint32_t ttl_s)
{
	vmem_etcd_opts_t o = h_opts(cl);
	o.owner = owner;
	o.ttl_s = ttl_s;
	return o;
}

/* ---- connections with an arena ---------------------------------------------- */

int h_open_arena(const vmem_etcd_opts_t *o, const char *pool, vmem_etcd_t **src, vmem_t **vm)
{
	int err = vmem_etcd_open(o, pool, src);
	if (err != 0)
		return err;
	*vm = vmem_create(pool, 0, 0, 1, 0, 0);
	err = *vm == NULL ? ENOMEM : vmem_etcd_attach(*src, *vm);
	if (err != 0) {
		if (*vm != NULL)
			vmem_destroy(*vm);
		vmem_etcd_close(*src);
	}
	return err;
}

int h_close_arena(vmem_etcd_t *src, vmem_t *vm)
{
	vmem_destroy(vm);
	return vmem_etcd_close(src);
}

void *h_share(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, size);
	return p;
}

void h_unshare(void *p, size_t size)
{
	munmap(p, size);
}

/* ---- the raw gateway -------------------------------------------------------- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *h_b64(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n / 3 * 4 + 8), *o = out;
	unsigned bits = 0;
	int nbits = 0;
	for (size_t i = 0; i < n; i++) {
		bits = bits << 8 | (unsigned char)s[i];
		nbits += 8;
		while (nbits >= 6) {
			nbits -= 6;
			*o++ = b64_chars[(bits >> nbits) & 63];
		}
	}
	if (nbits > 0)
		*o++ = b64_chars[(bits << (6 - nbits)) & 63];
	while ((o - out) % 4 != 0)
		*o++ = '=';
	*o = '\0';
	return out;
}

char *h_unb64(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	unsigned bits = 0;
	int nbits = 0;
	for (; *s && *s != '='; s++) {
		const char *p = strchr(b64_chars, *s);
		if (p == NULL) {
			free(out);
			return NULL;
		}
		bits = bits << 6 | (unsigned)(p - b64_chars);
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			*o++ = (char)((bits >> nbits) & 255);
		}
	}
	*o = '\0';
	return out;
}

struct sink {
	char *data;
	size_t len;
};

static size_t sink_write(char *p, size_t sz, size_t nm, void *arg)
{
	struct sink *s = arg;
	char *d = realloc(s->data, s->len + sz * nm + 1);
	if (d == NULL)
		return 0;
	memcpy(d + s->len, p, sz * nm);
	s->data = d;
	s->len += sz * nm;
	d[s->len] = '\0';
	return sz * nm;
}

json_t *h_post(const struct h_cluster *cl, int i, const char *path, const char *body)
{
	char url[256];
	snprintf(url, sizeof(url), "%s%s", cl->m[i].url, path);
	CURL *c = curl_easy_init();
	struct sink s = {0};
	struct curl_slist *hdr = NULL;
	char *token = NULL;
	if (cl->flags & H_AUTH) {
		/* a token of our own, straight from the gateway */
		char auth[256];
		snprintf(auth, sizeof(auth), "{\"name\":\"%s\",\"password\":\"%s\"}", H_USER,
			 H_PASSWORD);
		struct h_cluster plain = *cl;
		plain.flags &= ~(unsigned)H_AUTH;
		json_t *t = h_post(&plain, i, "/v3/auth/authenticate", auth);
		json_t *tok = json_object_get(t, "token");
		if (json_is_string(tok)) {
			token = malloc(strlen(json_string_value(tok)) + 32);
			sprintf(token, "Authorization: %s", json_string_value(tok));
			hdr = curl_slist_append(hdr, token);
		}
		json_decref(t);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	if (hdr)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	if (cl->flags & H_TLS) {
		curl_easy_setopt(c, CURLOPT_CAINFO, cl->ca);
		curl_easy_setopt(c, CURLOPT_SSLCERT, cl->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, cl->key);
	}
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	free(token);
	json_t *j = NULL;
	if (rc == CURLE_OK && status == 200 && s.data) {
		json_error_t e;
		j = json_loads(s.data, 0, &e);
	}
	free(s.data);
	return j;
}

/* The first member that serves. */
static json_t *post_any(const struct h_cluster *cl, const char *path, const char *body)
{
	for (int i = 0; i < cl->n; i++) {
		if (cl->m[i].pid <= 0)
			continue;
		json_t *j = h_post(cl, i, path, body);
		if (j)
			return j;
	}
	return NULL;
}

static char *prefix_end(const char *prefix)
{
	char *end = strdup(prefix);
	end[strlen(end) - 1]++;
	return end;
}

json_t *h_keys(const struct h_cluster *cl, const char *prefix)
{
	char *k = h_b64(prefix), *e0 = prefix_end(prefix), *e = h_b64(e0);
	char body[1024];
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\"}", k, e);
	free(k);
	free(e0);
	free(e);
	json_t *r = post_any(cl, "/v3/kv/range", body);
	if (r == NULL)
		return NULL;
	json_t *out = json_array(), *kvs = json_object_get(r, "kvs"), *kv;
	size_t i;
	json_array_foreach(kvs, i, kv)
	{
		char *key = h_unb64(json_string_value(json_object_get(kv, "key")));
		json_t *v = json_object_get(kv, "value");
		char *value = h_unb64(v ? json_string_value(v) : "");
		json_t *lease = json_object_get(kv, "lease");
		json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "key", key, "value", value,
						     "lease", lease ? json_string_value(lease) : "0"));
		free(key);
		free(value);
	}
	json_decref(r);
	return out;
}

long h_count(const struct h_cluster *cl, const char *prefix)
{
	json_t *k = h_keys(cl, prefix);
	long n = k ? (long)json_array_size(k) : -1;
	json_decref(k);
	return n;
}

long h_count_owned(const struct h_cluster *cl, const char *pool, const char *owner)
{
	char prefix[128], value[128];
	snprintf(prefix, sizeof(prefix), "/vmem/%s/blocks/", pool);
	snprintf(value, sizeof(value), "{\"owner\":\"%s\"}", owner);
	json_t *keys = h_keys(cl, prefix), *kv;
	if (keys == NULL)
		return -1;
	long n = 0;
	size_t i;
	json_array_foreach(keys, i, kv)
	{
		n += strcmp(json_string_value(json_object_get(kv, "value")), value) == 0;
	}
	json_decref(keys);
	return n;
}

int h_put(const struct h_cluster *cl, const char *key, const char *value)
{
	char *k = h_b64(key), *v = h_b64(value);
	size_t n = strlen(k) + strlen(v) + 64;
	char *body = malloc(n);
	snprintf(body, n, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
	json_t *r = post_any(cl, "/v3/kv/put", body);
	free(k);
	free(v);
	free(body);
	int ok = r ? 0 : -1;
	json_decref(r);
	return ok;
}

int h_tool(const struct h_cluster *cl, char *out, size_t outlen, const char *fmt, ...)
{
	char args[1024], cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	const char *exe = getenv("VMEM_POOL");
	if (exe == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s --endpoints %s %s 2>&1", exe, cl->endpoints, args);
	FILE *p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	size_t n = out ? fread(out, 1, outlen - 1, p) : 0;
	char sink[4096];
	while (fread(sink, 1, sizeof(sink), p) > 0)
		;
	if (out)
		out[n] = '\0';
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
