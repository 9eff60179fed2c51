/*
 * http_route_test.c - http.route: the id heuristic and configured patterns.
 *
 * The one idea: tables of path -> expected route, so a change in the
 * heuristic shows up as one readable line that no longer holds.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_route.h"

static void assert_route(const char *path, const char *want)
{
	char out[HTTP_ROUTE_MAX];
	size_t n = http_route_guess(path, strlen(path), out, sizeof(out));

	ck_assert_msg(!strcmp(out, want), "%s -> %s, want %s", path, out, want);
	ck_assert_uint_eq(n, strlen(want));
}

START_TEST(heuristic_table)
{
	static const char *const t[][2] = {
		{ "/users/42", "/users/*" },
		{ "/users/77", "/users/*" },
		{ "/api/v1/items", "/api/v1/items" },
		{ "/api/v2/users/123/orders/456", "/api/v2/users/*/orders/*" },
		{ "/auth/2fa/setup", "/auth/2fa/setup" },
		{ "/", "/" },
		{ "", "/" },
		{ "*", "/" },
		{ "/users/", "/users/" },
		{ "/a//b", "/a//b" },
		{ "/users/42?expand=true", "/users/*" },
		{ "/users/42#frag", "/users/*" },
		{ "/search?q=/users/1", "/search" },
		{ "/items/550e8400-e29b-41d4-a716-446655440000", "/items/*" },
		{ "/items/550E8400-E29B-41D4-A716-446655440000/x", "/items/*/x" },
		{ "/blob/9f86d081884c7d659a2feaa0c55ad015", "/blob/*" },
		{ "/commit/deadbeefcafebabe", "/commit/*" },
		{ "/tokens/aB3dE5fG7hJ9kL1mN3pQ", "/tokens/*" },
		{ "/orders/order12345", "/orders/*" },
		{ "/files/dGhpcyBpcyBhIHRlc3Q=", "/files/*" },
		{ "/files/YWJjZA==", "/files/*" },
		{ "/files/YWJj=", "/files/YWJj=" },
		{ "/day/2024-01-31", "/day/*" },
		{ "/u/jane.doe@example.com", "/u/*" },
		{ "/wiki/Caf%C3%A9", "/wiki/*" },
		{ "/static/app.js", "/static/app.js" },
		{ "/v1/healthz", "/v1/healthz" },
		{ "/oauth2/callback", "/oauth2/callback" },
		{ "/sha256/compute", "/sha256/compute" },
		{ "/release/1.0", "/release/1.0" },
		{ "/getUserPreferences", "/getUserPreferences" },
		{ "/very-long-slug-about-nothing", "/very-long-slug-about-nothing" },
		{ "/@types/node", "/@types/node" },
		{ "/k/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh", "/k/*" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_route(t[i][0], t[i][1]);
}
END_TEST

START_TEST(segment_classes)
{
	static const char *const ids[] = {
		"0", "42", "123456789", "550e8400-e29b-41d4-a716-446655440000",
		"0123456789abcdef", "abc12345", "x1y2z3w4v5u6t7s8", "555-0100",
	};
	static const char *const words[] = {
		"v1", "api", "users", "2fa", "me", "sha256", "h264", "utf-8", "index.html",
		"deadbeef", "v2beta1", "",
	};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		ck_assert_msg(http_route_segment_is_id(ids[i], strlen(ids[i])), "%s", ids[i]);
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		ck_assert_msg(!http_route_segment_is_id(words[i], strlen(words[i])), "%s", words[i]);
}
END_TEST

START_TEST(heuristic_bounded)
{
	char path[4096], out[HTTP_ROUTE_MAX], small[16];
	size_t o = 0, n;

	while (o + 12 < sizeof(path))
		o += (size_t)snprintf(path + o, sizeof(path) - o, "/segment%03zu", o % 1000);
	n = http_route_guess(path, o, out, sizeof(out));
	ck_assert_uint_lt(n, sizeof(out));
	ck_assert_uint_eq(strlen(out), n);
	ck_assert_str_eq(out + n - 2, "/*");
	ck_assert(!strncmp(out, path, n - 2));

	n = http_route_guess("/abc/def/ghi", 12, small, sizeof(small));
	ck_assert_str_eq(small, "/abc/def/ghi");
	n = http_route_guess("/abcdefgh/ijklmnop", 18, small, sizeof(small));
	ck_assert_str_eq(small, "/abcdefgh/*");
	ck_assert_uint_eq(n, 11);
	n = http_route_guess("/abcdefghijklmnopqrstuv", 23, small, sizeof(small));
	ck_assert_str_eq(small, "/*");
	ck_assert_uint_eq(http_route_guess("/a", 2, small, 2), 0);
	ck_assert_str_eq(small, "");
}
END_TEST

START_TEST(pattern_match)
{
	static const struct {
		const char *pat, *path;
		int want;
	} t[] = {
		{ "/users/{id}", "/users/42", 1 },
		{ "/users/{id}", "/users/42/", 1 },
		{ "/users/{id}", "/users/", 0 },
		{ "/users/{id}", "/users", 0 },
		{ "/users/{id}", "/users/42/orders", 0 },
		{ "/users/{id}/orders/{order}", "/users/7/orders/9?x=1", 1 },
		{ "/users/{id}/orders/{order}", "/users/7/items/9", 0 },
		{ "/users/*/profile", "/users/abc/profile", 1 },
		{ "/static/*", "/static/css/site.css", 1 },
		{ "/static/*", "/static", 1 },
		{ "/static/*", "/staticx/a", 0 },
		{ "/api*", "/api/v1/x", 1 },
		{ "/api*", "/apifoo", 1 },
		{ "/api*", "/ap", 0 },
		{ "/*", "/anything/at/all", 1 },
		{ "/", "/", 1 },
		{ "/", "/x", 0 },
		{ "/health", "/health", 1 },
		{ "/health", "/healthz", 0 },
		{ "/health", "/health#x", 1 },
		{ "users/{id}", "/users/1", 0 },       /* invalid: no leading '/' */
		{ "/a/{id/b", "/a/1/b", 0 },           /* invalid: unbalanced */
		{ "/a/*/b*", "/a/1/bc", 1 },
		{ "/a*/b", "/ax/b", 0 },               /* invalid: '*' not last */
		{ "/users/{id}", "", 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(http_route_match(t[i].pat, t[i].path, strlen(t[i].path)) == t[i].want,
		              "%s vs %s: want %d", t[i].pat, t[i].path, t[i].want);
}
END_TEST

START_TEST(pattern_valid)
{
	ck_assert(http_route_pattern_valid("/users/{id}"));
	ck_assert(http_route_pattern_valid("/static/*"));
	ck_assert(http_route_pattern_valid("/api*"));
	ck_assert(http_route_pattern_valid("/"));
	ck_assert(!http_route_pattern_valid(""));
	ck_assert(!http_route_pattern_valid(NULL));
	ck_assert(!http_route_pattern_valid("users"));
	ck_assert(!http_route_pattern_valid("/{}"));
	ck_assert(!http_route_pattern_valid("/x{id}"));
	ck_assert(!http_route_pattern_valid("/{a}{b}"));
	ck_assert(!http_route_pattern_valid("/a*b/c"));
}
END_TEST

START_TEST(first_pattern_wins)
{
	const char *const pats[] = { "/users/me", "/users/{id}", "/users/*", "/*" };
	const char *r;

	r = http_route_find(pats, 4, "/users/me", 9);
	ck_assert_ptr_eq(r, pats[0]);
	r = http_route_find(pats, 4, "/users/42", 9);
	ck_assert_ptr_eq(r, pats[1]);
	r = http_route_find(pats, 4, "/users/42/x", 11);
	ck_assert_ptr_eq(r, pats[2]); /* a last '*' segment takes the rest */
	r = http_route_find(pats, 4, "/orders", 7);
	ck_assert_ptr_eq(r, pats[3]);
	r = http_route_find(pats, 2, "/other", 6);
	ck_assert_ptr_null(r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http_route");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, heuristic_table);
	tcase_add_test(tc, segment_classes);
	tcase_add_test(tc, heuristic_bounded);
	tcase_add_test(tc, pattern_match);
	tcase_add_test(tc, pattern_valid);
	tcase_add_test(tc, first_pattern_wins);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
