/*
 * test_example - examples/cluster-ids against one real etcd member:
 *   cluster_ids_runs  6 processes of 300 IDs each: exit status 0, the
 *                     example's own verdict printed, its pool gone after
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"

static void cluster_ids_runs(void **state)
{
	(void)state;
	const char *exe = getenv("VMEM_CLUSTER_IDS");
	assert_non_null(exe);
	setenv("VMEM_ETCD_ENDPOINTS", h_main.endpoints, 1);
	char cmd[1024], out[8192];
	snprintf(cmd, sizeof(cmd), "%s 6 300 2>&1", exe);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	int status = pclose(p);
	print_message("%s", out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(out, "6 processes, no ID handed out twice"));
	assert_int_equal(h_count(&h_main, "/vmem/cluster-ids-demo/"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cluster_ids_runs),
	};
	return cmocka_run_group_tests_name("etcd_example", tests, h_setup_one, h_teardown_main);
}
