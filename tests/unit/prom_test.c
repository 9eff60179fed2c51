/*
 * prom_test.c - the /metrics endpoint over real sockets on loopback:
 * content, headers, 404/405, the collect hook, IPv6, and the error for a
 * port that is already taken. Ports come from 19000-19999, chosen from the
 * pid so parallel runs rarely collide; a taken port is skipped.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "export/prom.h"
#include "export/prom_text.h"
#include "telemetry/metrics.h"

struct reply {
	long code;
	char *body;
	size_t len;
	char ctype[128];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct reply *r = ctx;
	char *nb = realloc(r->body, r->len + sz * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + r->len, p, sz * n);
	r->body = nb;
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

/* GET (or `method`) url; returns 0 when the transfer worked. */
static int fetch(const char *url, const char *method, struct reply *r)
{
	CURL *c = curl_easy_init();
	char *ct = NULL;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
		snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
	}
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}

/* Start on the first free port of a pid-derived window in 19000-19999. */
static struct prom *start_somewhere(struct metrics *m, const char *addr, uint16_t *port)
{
	char err[256];

	for (int i = 0; i < 50; i++) {
		uint16_t p = 19000 + (uint16_t)((getpid() * 7 + i * 13) % 1000);
		struct prom *pr = prom_start(m, addr, p, err, sizeof(err));

		if (pr) {
			*port = p;
			ck_assert_uint_eq(prom_port(pr), p);
			return pr;
		}
		ck_assert_msg(strstr(err, "Address already in use"), "unexpected error: %s", err);
	}
	ck_abort_msg("no free port in 19000-19999");
	return NULL;
}

static int hook_calls;

static void hook(void *ctx)
{
	struct metrics *m = ctx;

	hook_calls++;
	metrics_counter_set(m, "sonde_scrapes_total", "Scrapes served.", (uint64_t)hook_calls);
}

START_TEST(serves_metrics)
{
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "http.server.request.duration", "s", "d",
	                                     METRICS_DURATION_BUCKETS,
	                                     METRICS_DURATION_BUCKETS_N, NULL, 0);
	struct prom *p;
	struct reply r;
	uint16_t port;
	char url[128];

	metrics_hist_record(h, NULL, 0.2, NULL);
	p = start_somewhere(m, NULL, &port);
	prom_set_collect_hook(p, hook, m);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
	ck_assert_int_eq(fetch(url, NULL, &r), 0);
	ck_assert_int_eq(r.code, 200);
	ck_assert_str_eq(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
	ck_assert_ptr_nonnull(strstr(r.body, "# TYPE http_server_request_duration_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "http_server_request_duration_seconds_bucket{le=\"0.25\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "sonde_scrapes_total 1\n"));
	free(r.body);

	/* The hook runs before every render. */
	ck_assert_int_eq(fetch(url, NULL, &r), 0);
	ck_assert_ptr_nonnull(strstr(r.body, "sonde_scrapes_total 2\n"));
	free(r.body);

	prom_set_collect_hook(p, NULL, NULL);
	ck_assert_int_eq(fetch(url, NULL, &r), 0);
	ck_assert_ptr_nonnull(strstr(r.body, "sonde_scrapes_total 2\n"));
	free(r.body);
	ck_assert_int_eq(hook_calls, 2);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
	ck_assert_int_eq(fetch(url, NULL, &r), 0);
	ck_assert_int_eq(r.code, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "/metrics"));
	free(r.body);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/nope", port);
	ck_assert_int_eq(fetch(url, NULL, &r), 0);
	ck_assert_int_eq(r.code, 404);
	free(r.body);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics/extra", port);
	ck_assert_int_eq(fetch(url, NULL, &r), 0);
	ck_assert_int_eq(r.code, 404);
	free(r.body);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
	ck_assert_int_eq(fetch(url, "DELETE", &r), 0);
	ck_assert_int_eq(r.code, 405);
	free(r.body);

	prom_stop(p);
	metrics_free(m);
}
END_TEST

START_TEST(port_in_use)
{
	struct metrics *m = metrics_new();
	struct prom *p, *q;
	uint16_t port;
	char err[256], want[64];

	p = start_somewhere(m, "127.0.0.1", &port);
	q = prom_start(m, "127.0.0.1", port, err, sizeof(err));
	ck_assert_ptr_null(q);
	snprintf(want, sizeof(want), "127.0.0.1:%u: Address already in use", port);
	ck_assert_str_eq(err, want);
	prom_stop(p);

	/* prom_stop released the socket: the port can be bound again. */
	q = prom_start(m, "127.0.0.1", port, err, sizeof(err));
	ck_assert_msg(q != NULL, "restart failed: %s", err);
	prom_stop(q);
	metrics_free(m);
}
END_TEST

START_TEST(port_taken_by_other_socket)
{
	struct metrics *m = metrics_new();
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char err[256], want[64];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	ck_assert_ptr_null(prom_start(m, "127.0.0.1", ntohs(a.sin_port), err, sizeof(err)));
	snprintf(want, sizeof(want), "127.0.0.1:%u: Address already in use", ntohs(a.sin_port));
	ck_assert_str_eq(err, want);
	close(fd);
	metrics_free(m);
}
END_TEST

START_TEST(bad_addresses)
{
	struct metrics *m = metrics_new();
	char err[256];

	ck_assert_ptr_null(prom_start(m, "localhost", 19999, err, sizeof(err)));
	ck_assert_str_eq(err, "prometheus address 'localhost': not an IPv4 or IPv6 literal");
	ck_assert_ptr_null(prom_start(m, "1.2.3", 19999, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "not an IPv4 or IPv6 literal"));
	ck_assert_ptr_null(prom_start(m, "[::1", 19999, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "not an IPv4 or IPv6 literal"));
	/* An address this host does not have. */
	ck_assert_ptr_null(prom_start(m, "192.0.2.1", 19999, err, sizeof(err)));
	ck_assert_str_eq(err, "192.0.2.1:19999: Cannot assign requested address");
	ck_assert_ptr_null(prom_start(NULL, NULL, 19999, err, sizeof(err)));
	metrics_free(m);
}
END_TEST

START_TEST(ipv6_loopback)
{
	struct metrics *m = metrics_new();
	struct reply r;
	struct prom *p;
	uint16_t port;
	char url[128], err[256];
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

	if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "ipv6_loopback: no ::1 on this host, skipped\n");
		if (probe >= 0)
			close(probe);
		metrics_free(m);
		return;
	}
	close(probe);
	metrics_gauge_set(m, "sonde_up", NULL, 1);
	p = start_somewhere(m, "[::1]", &port);
	snprintf(url, sizeof(url), "http://[::1]:%u/metrics", port);
	ck_assert_int_eq(fetch(url, NULL, &r), 0);
	ck_assert_int_eq(r.code, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "sonde_up 1\n"));
	free(r.body);
	ck_assert_ptr_null(prom_start(m, "::1", port, err, sizeof(err)));
	snprintf(url, sizeof(url), "[::1]:%u: Address already in use", port);
	ck_assert_str_eq(err, url);
	prom_stop(p);
	metrics_free(m);
}
END_TEST

START_TEST(port_zero_picks_one)
{
	struct metrics *m = metrics_new();
	char err[256];
	struct prom *p = prom_start(m, "127.0.0.1", 0, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_uint_ne(prom_port(p), 0);
	prom_stop(p);
	prom_stop(NULL);
	metrics_free(m);
}
END_TEST

static Suite *prom_suite(void)
{
	Suite *s = suite_create("prom");
	TCase *tc = tcase_create("endpoint");

	tcase_add_test(tc, serves_metrics);
	tcase_add_test(tc, port_in_use);
	tcase_add_test(tc, port_taken_by_other_socket);
	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, ipv6_loopback);
	tcase_add_test(tc, port_zero_picks_one);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	sr = srunner_create(prom_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
