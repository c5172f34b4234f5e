/*
 * replay.c - runs fuzz inputs without libFuzzer, with any compiler: each
 * argument is a file or a directory of files, and every file goes through
 * LLVMFuzzerTestOneInput once.  The committed corpus and the regression
 * inputs (fuzz/regressions/) run this way as ordinary tests; a failing
 * input aborts with the fuzz target's report.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <dirent.h>
#include <signal.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_totals(uint64_t *runs, uint64_t *ops, uint64_t *checks);

static const char *g_current;

/* A failing input aborts: say which one it was. */
static void on_abort(int sig)
{
	(void)sig;
	if (g_current != NULL) {
		static const char msg[] = "\nreplay: the failing input is ";
		write(2, msg, sizeof(msg) - 1);
		write(2, g_current, strlen(g_current));
		write(2, "\n", 1);
	}
	signal(SIGABRT, SIG_DFL);
	raise(SIGABRT);
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return 1;
	}
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* a copy of exactly n bytes, so ASan sees reads past the end */
	uint8_t *data = malloc(n ? n : 1);
	if (data == NULL)
		return 1;
	memcpy(data, buf, n);
	g_current = path;
	LLVMFuzzerTestOneInput(data, n);
	free(data);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, unsigned long *nfiles)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		perror(path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		++*nfiles;
		return run_file(path);
	}
	DIR *d = opendir(path);
	if (d == NULL) {
		perror(path);
		return 1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = realloc(names, cap * sizeof(*names));
			if (names == NULL)
				return 1;
		}
		size_t len = strlen(path) + strlen(e->d_name) + 2;
		names[n] = malloc(len);
		if (names[n] == NULL)
			return 1;
		snprintf(names[n], len, "%s/%s", path, e->d_name);
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		rc |= run_path(names[i], nfiles);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned long nfiles = 0;
	int rc = 0;
	signal(SIGABRT, on_abort);
	for (int i = 1; i < argc; i++)
		rc |= run_path(argv[i], &nfiles);
	uint64_t runs, ops, checks;
	fuzz_totals(&runs, &ops, &checks);
	printf("# replayed %lu inputs: %" PRIu64 " operations, %" PRIu64 " model checks\n", nfiles,
	       ops, checks);
	return rc;
}
