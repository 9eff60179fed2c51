/*
 * go_plugin_test.c - the Go runtime plugin through the real host (the test
 * host): loading, refusal on a host without the runtime-plugin calls.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>
#include "testhost.h"
#include "go_plugin.h"

const struct sonde_plugin *sonde_plugin_entry(void);

START_TEST(loads_or_refuses_with_one_line)
{
	struct th_host *h = th_new();
	const struct sonde_host_api *api = th_api(h);
	int rc = th_load(h, sonde_plugin_entry(), NULL);

	if (!api->conn_lookup || !api->bpf_load) {
		ck_assert_int_eq(rc, SONDE_ERR_UNSUPPORTED);
		ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 1);
	} else {
		ck_assert_int_eq(rc, SONDE_OK);
	}
	th_free(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("go_plugin");
	TCase *tc = tcase_create("plugin");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, loads_or_refuses_with_one_line);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
