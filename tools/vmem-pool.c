/*
 * vmem-pool - create, inspect, release and destroy cluster pools in etcd.
 *
 *   vmem-pool [--endpoints URLS] [--prefix P] [--cacert F --cert F --key F]
 *             [--user U:P] COMMAND
 *     create POOL --base B --size S --block K
 *     show [--json] POOL
 *     release POOL --owner NAME
 *     destroy POOL
 *
 * Exit status: 0 success, 1 an error from etcd or the pool (the message
 * names it), 2 a usage error.  Numbers are decimal or 0x hexadecimal.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_impl.h"

static const char usage_text[] =
	"usage: vmem-pool [--endpoints URLS] [--prefix P] [--cacert F --cert F --key F]\n"
	"                 [--user U:P] [--timeout MS] COMMAND\n"
	"  create POOL --base B --size S --block K   create a pool (idempotent)\n"
	"  show [--json] POOL                        config, blocks held per owner, free blocks\n"
	"  release POOL --owner NAME                 hand back every block NAME holds\n"
	"  destroy POOL                              remove a pool that holds no block\n"
	"Numbers are decimal or 0x hexadecimal.  URLS defaults to $VMEM_ETCD_ENDPOINTS,\n"
	"else http://127.0.0.1:2379; P to /vmem/.\n"
	"Exit status: 0 done, 1 error from etcd or the pool, 2 usage error.\n";

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "vmem-pool: %s\n", why);
	fputs(usage_text, stderr);
	return 2;
}

static int fail(const char *what, const char *pool, int err)
{
	const char *why;
	switch (err) {
	case ENOENT:
		why = "no such pool";
		break;
	case EEXIST:
		why = "the pool exists with other parameters";
		break;
	case EBUSY:
		why = "blocks are still held";
		break;
	case EPROTO:
		why = "an answer or stored value does not parse";
		break;
	case EACCES:
		why = "TLS or authentication refused";
		break;
	case ETIMEDOUT:
		why = "etcd did not answer in time";
		break;
	case ECONNREFUSED:
		why = "no etcd endpoint answers";
		break;
	default:
		why = strerror(err);
		break;
	}
	fprintf(stderr, "vmem-pool: %s %s: %s (%s)\n", what, pool, why, strerror(err));
	return 1;
}

/* Decimal or 0x hexadecimal, the whole uint64 range, nothing else. */
static bool parse_u64(const char *s, uint64_t *out)
{
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (*s == '\0')
		return false;
	uint64_t v = 0;
	for (; *s; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return false;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return false;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	*out = v;
	return true;
}

/* ---- show ---------------------------------------------------------------- */

/* 64-bit quantities as decimal strings, as in the pool's config (JSON
 * numbers lose precision past 2^53). */
static json_t *u64_json(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

struct owner_count {
	char *owner;
	int64_t lease;
	uint64_t blocks;
};

static int show(struct etcd_client *c, const char *prefix, const char *pool, bool as_json)
{
	struct pool_conf pc;
	int err = pool_config_read(c, prefix, pool, &pc, NULL);
	if (err)
		return fail("show", pool, err);
	char *first = pool_blocks_prefix(prefix, pool), *end = pool_blocks_end(prefix, pool);
	struct etcd_kvs kvs = {0};
	err = first && end ? etcd_range(c, first, end, &kvs) : ENOMEM;
	struct owner_count *owners = calloc(kvs.n + 1, sizeof(*owners));
	size_t nowners = 0;
	uint64_t held = 0;
	for (size_t i = 0; !err && i < kvs.n; i++) {
		char *who;
		uint64_t idx;
		if (!pool_block_index(kvs.kv[i].key, strlen(first), &idx))
			continue;
		err = owner_parse(kvs.kv[i].value, kvs.kv[i].value_len, &who);
		if (err) {
			fprintf(stderr, "vmem-pool: key %s: value does not parse\n", kvs.kv[i].key);
			break;
		}
		held++;
		size_t j = 0;
		while (j < nowners && strcmp(owners[j].owner, who) != 0)
			j++;
		if (j == nowners) {
			owners[nowners++] = (struct owner_count){who, kvs.kv[i].lease, 0};
		} else {
			free(who);
		}
		owners[j].blocks++;
	}
	etcd_kvs_free(&kvs);
	free(first);
	free(end);
	if (!err) {
		uint64_t free_blocks = pc.nblocks - held;
		if (as_json) {
			json_t *list = json_array();
			for (size_t j = 0; j < nowners; j++)
				json_array_append_new(list, json_pack("{s:s, s:o, s:o}", "owner",
								       owners[j].owner, "blocks",
								       u64_json(owners[j].blocks), "lease",
								       u64_json((uint64_t)owners[j].lease)));
			json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "pool", pool,
					      "base", u64_json(pc.base), "size", u64_json(pc.size),
					      "block", u64_json(pc.block), "blocks", u64_json(pc.nblocks),
					      "held", u64_json(held), "free", u64_json(free_blocks),
					      "owners", list);
			char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			puts(text ? text : "{}");
			free(text);
			json_decref(j);
		} else {
			printf("pool %s\n", pool);
			printf("  base   %" PRIu64 " (0x%" PRIx64 ")\n", pc.base, pc.base);
			printf("  size   %" PRIu64 " (0x%" PRIx64 ")\n", pc.size, pc.size);
			printf("  block  %" PRIu64 " (0x%" PRIx64 ")\n", pc.block, pc.block);
			printf("  blocks %" PRIu64 ": %" PRIu64 " held, %" PRIu64 " free\n", pc.nblocks,
			       held, free_blocks);
			for (size_t j = 0; j < nowners; j++)
				printf("  owner %s: %" PRIu64 " blocks%s\n", owners[j].owner,
				       owners[j].blocks, owners[j].lease ? " (leased)" : "");
		}
	}
	for (size_t j = 0; j < nowners; j++)
		free(owners[j].owner);
	free(owners);
	return err ? fail("show", pool, err) : 0;
}

/* ---- main ------------------------------------------------------------------ */

/* The options: first those whose argument is kept as it is, then those that
 * take a number, then those without an argument; getopt_long gives each
 * its place in the list plus OPT_FIRST. */
enum { OPT_FIRST = 256, NSTRING_OPTS = 7, NNUMBER_OPTS = 4, NOPTS = 13 };
static const char *const option_names[] = {
	"endpoints", "prefix", "cacert", "cert", "key", "user", "owner",
	"timeout", "base", "size", "block",
	"json", "help",
};
_Static_assert(sizeof(option_names) / sizeof(option_names[0]) == NOPTS, "one name an option");
enum { OPT_TIMEOUT = OPT_FIRST + NSTRING_OPTS, OPT_JSON = OPT_TIMEOUT + NNUMBER_OPTS, OPT_HELP };
static const char *const number_errors[NNUMBER_OPTS] = {
	"--timeout: not a number of milliseconds", "--base: not a number", "--size: not a number",
	"--block: not a number",
};

int main(int argc, char **argv)
{
	vmem_etcd_opts_t o = {.size = sizeof(o)};
	const char *user = NULL, *owner = NULL;
	const char **strings[NSTRING_OPTS] = {&o.endpoints, &o.prefix,    &o.ca_file, &o.cert_file,
					      &o.key_file,  &user, &owner};
	uint64_t numbers[NNUMBER_OPTS] = {0}; /* timeout, base, size, block */
	bool given[NNUMBER_OPTS] = {false}, as_json = false;
	const char *positional[3];
	int npos = 0;
	struct option options[NOPTS + 1] = {{NULL, 0, NULL, 0}};
	for (int i = 0; i < NOPTS; i++)
		options[i] = (struct option){option_names[i],
					     i < OPT_JSON - OPT_FIRST ? required_argument : no_argument,
					     NULL, OPT_FIRST + i};

	/* options may come before or after the command and the pool */
	opterr = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, "+h", options, NULL);
		if (ch == -1) {
			if (optind >= argc)
				break;
			if (npos == 3)
				return usage("too many arguments");
			positional[npos++] = argv[optind++];
		} else if (ch >= OPT_FIRST && ch < OPT_TIMEOUT) {
			*strings[ch - OPT_FIRST] = optarg;
		} else if (ch >= OPT_TIMEOUT && ch < OPT_JSON) {
			int k = ch - OPT_TIMEOUT;
			given[k] = parse_u64(optarg, &numbers[k]);
			if (!given[k] || (ch == OPT_TIMEOUT && (numbers[k] == 0 || numbers[k] > UINT32_MAX)))
				return usage(number_errors[k]);
		} else if (ch == OPT_JSON) {
			as_json = true;
		} else if (ch == 'h' || ch == OPT_HELP) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			return usage("unknown option or missing argument");
		}
	}
	o.timeout_ms = (uint32_t)numbers[0];
	uint64_t base = numbers[1], size = numbers[2], block = numbers[3];
	bool have_base = given[1], have_size = given[2], have_block = given[3];
	if (npos < 2)
		return usage(npos == 0 ? "no command" : "no pool");
	if (npos > 2)
		return usage("too many arguments");
	const char *cmd = positional[0], *pool = positional[1];
	if (!pool_name_ok(pool))
		return usage("a pool name is 1 to 64 characters of [A-Za-z0-9._-]");
	if ((o.cert_file == NULL) != (o.key_file == NULL))
		return usage("--cert and --key go together");
	if (user != NULL) {
		char *colon = strchr(user, ':'); /* in argv, which may be written */
		if (colon == NULL || colon == user)
			return usage("--user takes USER:PASSWORD");
		*colon = '\0';
		o.username = user;
		o.password = colon + 1;
	}
	bool is_create = strcmp(cmd, "create") == 0;
	if (!is_create && (have_base || have_size || have_block))
		return usage("--base, --size and --block belong to create");
	if ((owner != NULL) != (strcmp(cmd, "release") == 0))
		return usage("release takes --owner NAME, and only release does");
	if (as_json && strcmp(cmd, "show") != 0)
		return usage("--json belongs to show");

	if (is_create) {
		if (!have_base || !have_size || !have_block)
			return usage("create needs --base, --size and --block");
		int err = vmem_etcd_pool_create(&o, pool, base, size, block);
		if (err == EINVAL)
			return usage("block 0, size 0 or not a multiple of block, or a range past 2^64");
		if (err)
			return fail("create", pool, err);
		return 0;
	}
	if (strcmp(cmd, "destroy") == 0) {
		int err = vmem_etcd_pool_destroy(&o, pool);
		return err ? fail("destroy", pool, err) : 0;
	}
	bool is_show = strcmp(cmd, "show") == 0;
	if (!is_show && strcmp(cmd, "release") != 0)
		return usage("unknown command");

	struct etcd_conf conf;
	struct etcd_client *c = NULL;
	int err = conf_load(&o, &conf);
	if (!err)
		err = etcd_client_new(&conf, &c);
	if (err) {
		conf_free(&conf);
		return err == EINVAL ? usage("bad endpoint list") : fail(cmd, pool, err);
	}
	int status;
	if (is_show) {
		status = show(c, conf.prefix, pool, as_json);
	} else {
		uint64_t released = 0;
		struct pool_conf pc;
		err = pool_config_read(c, conf.prefix, pool, &pc, NULL);
		if (!err)
			err = pool_release_owner(c, conf.prefix, pool, owner, &released);
		if (err) {
			status = fail("release", pool, err);
		} else {
			printf("released %" PRIu64 " blocks of %s\n", released, owner);
			status = 0;
		}
	}
	etcd_client_free(c);
	conf_free(&conf);
	return status;
}
