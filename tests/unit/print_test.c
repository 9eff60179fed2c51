/*
 * print_test.c - the span printer. JSON lines are parsed back with jansson
 * and every key is checked for presence, type and value; text lines are
 * checked field by field.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sonde/plugin.h>

#include "export/print.h"
#include "telemetry/span.h"

static struct span *mkspan(bool root)
{
	struct span *s = span_new();
	struct resource *r = calloc(1, sizeof(*r));

	r->refs = 1;
	r->pid = 4242;
	r->service_name = strdup("checkout");
	attr_set_str(&r->attrs, "service.name", "checkout", 8);
	attr_set_int(&r->attrs, "process.pid", 4242);
	attr_set_str(&r->attrs, "host.name", "box", 3);

	s->refs = 1;
	for (int i = 0; i < 16; i++)
		s->trace_id[i] = (uint8_t)(0xa0 + i);
	for (int i = 0; i < 8; i++)
		s->span_id[i] = (uint8_t)(0x10 + i);
	if (!root)
		for (int i = 0; i < 8; i++)
			s->parent_span_id[i] = (uint8_t)(0xf0 + i);
	span_set_name(s, "GET /users/{id}");
	s->kind = SONDE_SPAN_SERVER;
	s->start_unix_ns = 1700000000123456789ull;
	s->end_unix_ns = s->start_unix_ns + 1234000; /* 1.234 ms */
	attr_set_str(&s->attrs, "http.request.method", "GET", 3);
	attr_set_int(&s->attrs, "http.response.status_code", 200);
	attr_set_double(&s->attrs, "x.ratio", 0.5);
	attr_set_bool(&s->attrs, "x.flag", true);
	attr_set_str(&s->attrs, "network.peer.address", "10.0.0.7", 8);
	attr_set_int(&s->attrs, "network.peer.port", 51234);
	s->res = r;
	snprintf(s->scope, sizeof(s->scope), "http");
	return s;
}

static json_t *parse_line(const char *line)
{
	json_error_t e;
	size_t n = strlen(line);
	json_t *j;

	ck_assert_uint_gt(n, 1);
	ck_assert_int_eq(line[n - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', n - 1)); /* exactly one line */
	j = json_loads(line, 0, &e);
	ck_assert_msg(j != NULL, "bad JSON: %s: %s", e.text, line);
	return j;
}

static json_t *get(json_t *o, const char *key, json_type type)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(v != NULL, "missing key %s", key);
	ck_assert_msg(json_typeof(v) == type, "key %s: type %d, want %d", key, json_typeof(v),
	              type);
	return v;
}

START_TEST(json_every_key)
{
	struct span *s = mkspan(false);
	char *line;
	json_t *j, *st, *at, *rs;

	s->status = SONDE_STATUS_ERROR;
	span_set_status_msg(s, "upstream reset");
	line = print_format(s, PRINT_JSON);
	j = parse_line(line);

	ck_assert_uint_eq(json_object_size(j), 11);
	ck_assert_str_eq(json_string_value(get(j, "trace_id", JSON_STRING)),
	                 "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
	ck_assert_str_eq(json_string_value(get(j, "span_id", JSON_STRING)), "1011121314151617");
	ck_assert_str_eq(json_string_value(get(j, "parent_span_id", JSON_STRING)),
	                 "f0f1f2f3f4f5f6f7");
	ck_assert_str_eq(json_string_value(get(j, "name", JSON_STRING)), "GET /users/{id}");
	ck_assert_str_eq(json_string_value(get(j, "kind", JSON_STRING)), "SERVER");
	ck_assert_int_eq(json_integer_value(get(j, "start_time_unix_nano", JSON_INTEGER)),
	                 1700000000123456789ll);
	ck_assert_int_eq(json_integer_value(get(j, "end_time_unix_nano", JSON_INTEGER)),
	                 1700000000124690789ll);
	ck_assert_str_eq(json_string_value(get(j, "scope", JSON_STRING)), "http");

	st = get(j, "status", JSON_OBJECT);
	ck_assert_uint_eq(json_object_size(st), 2);
	ck_assert_str_eq(json_string_value(get(st, "code", JSON_STRING)), "ERROR");
	ck_assert_str_eq(json_string_value(get(st, "message", JSON_STRING)), "upstream reset");

	at = get(j, "attributes", JSON_OBJECT);
	ck_assert_uint_eq(json_object_size(at), 6);
	ck_assert_str_eq(json_string_value(get(at, "http.request.method", JSON_STRING)), "GET");
	ck_assert_int_eq(json_integer_value(get(at, "http.response.status_code", JSON_INTEGER)),
	                 200);
	ck_assert_double_eq(json_real_value(get(at, "x.ratio", JSON_REAL)), 0.5);
	get(at, "x.flag", JSON_TRUE);
	ck_assert_int_eq(json_integer_value(get(at, "network.peer.port", JSON_INTEGER)), 51234);

	rs = get(j, "resource", JSON_OBJECT);
	ck_assert_uint_eq(json_object_size(rs), 3);
	ck_assert_str_eq(json_string_value(get(rs, "service.name", JSON_STRING)), "checkout");
	ck_assert_int_eq(json_integer_value(get(rs, "process.pid", JSON_INTEGER)), 4242);
	ck_assert_str_eq(json_string_value(get(rs, "host.name", JSON_STRING)), "box");

	json_decref(j);
	free(line);
	span_unref(s);
}
END_TEST

START_TEST(json_root_unset_kinds)
{
	static const struct {
		int kind;
		const char *name;
	} kinds[] = {
		{ SONDE_SPAN_SERVER, "SERVER" },     { SONDE_SPAN_CLIENT, "CLIENT" },
		{ SONDE_SPAN_INTERNAL, "INTERNAL" }, { SONDE_SPAN_PRODUCER, "PRODUCER" },
		{ SONDE_SPAN_CONSUMER, "CONSUMER" },
	};
	struct span *s = mkspan(true);
	json_t *j, *st;
	char *line;

	line = print_format(s, PRINT_JSON);
	j = parse_line(line);
	ck_assert_str_eq(json_string_value(get(j, "parent_span_id", JSON_STRING)), "");
	st = get(j, "status", JSON_OBJECT);
	ck_assert_uint_eq(json_object_size(st), 1); /* no message when none is set */
	ck_assert_str_eq(json_string_value(get(st, "code", JSON_STRING)), "UNSET");
	json_decref(j);
	free(line);

	s->status = SONDE_STATUS_OK;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		s->kind = kinds[i].kind;
		line = print_format(s, PRINT_JSON);
		j = parse_line(line);
		ck_assert_str_eq(json_string_value(get(j, "kind", JSON_STRING)), kinds[i].name);
		ck_assert_str_eq(json_string_value(get(get(j, "status", JSON_OBJECT), "code",
		                                       JSON_STRING)), "OK");
		json_decref(j);
		free(line);
	}
	span_unref(s);
}
END_TEST

START_TEST(json_hostile_values)
{
	struct span *s = mkspan(true);
	json_t *j, *at;
	char *line;

	span_set_name(s, "GET /\xff\xfe\n\"x\"");
	attr_set_str(&s->attrs, "url.path", "/a\xc3\x28", 4); /* bad UTF-8 */
	attr_set_str(&s->attrs, "bad\xffkey", "v", 1);
	attr_set_double(&s->attrs, "x.nan", NAN);
	attr_set_double(&s->attrs, "x.inf", -INFINITY);
	attr_set_int(&s->attrs, "x.big", INT64_MIN);
	memset(s->scope, 'p', sizeof(s->scope)); /* no terminator */
	line = print_format(s, PRINT_JSON);
	j = parse_line(line);
	ck_assert_str_eq(json_string_value(get(j, "name", JSON_STRING)),
	                 "GET /\xef\xbf\xbd\xef\xbf\xbd\n\"x\"");
	at = get(j, "attributes", JSON_OBJECT);
	ck_assert_str_eq(json_string_value(get(at, "url.path", JSON_STRING)),
	                 "/a\xef\xbf\xbd(");
	ck_assert_str_eq(json_string_value(get(at, "bad\xef\xbf\xbdkey", JSON_STRING)), "v");
	ck_assert_str_eq(json_string_value(get(at, "x.nan", JSON_STRING)), "NaN");
	ck_assert_str_eq(json_string_value(get(at, "x.inf", JSON_STRING)), "-Infinity");
	ck_assert(json_integer_value(get(at, "x.big", JSON_INTEGER)) == INT64_MIN);
	ck_assert_uint_eq(strlen(json_string_value(get(j, "scope", JSON_STRING))), 32);
	json_decref(j);
	free(line);

	/* No resource: an empty object, not a crash. */
	resource_unref(s->res);
	s->res = NULL;
	line = print_format(s, PRINT_JSON);
	j = parse_line(line);
	ck_assert_uint_eq(json_object_size(get(j, "resource", JSON_OBJECT)), 0);
	json_decref(j);
	free(line);
	span_unref(s);
}
END_TEST

/* The printer writes JSON itself: its line is byte for byte what jansson's
 * compact dump of the same document gives (escapes, number forms, order). */
START_TEST(json_is_what_jansson_would_write)
{
	static const double ds[] = {0.25, 3.0, -0.0, 1e20, 1e-5, 123456789.123, 2.5e-300, 1e300};
	struct span *s = mkspan(false);
	char ctl[40], key[16], *line, *dump;
	json_t *j;
	size_t n = 0;

	for (int c = 1; c < 0x20; c++)
		ctl[n++] = (char)c;
	ctl[n++] = '"';
	ctl[n++] = '\\';
	ctl[n++] = '/';
	ctl[n++] = 0x7f;
	ctl[n] = '\0';
	attr_set_str(&s->attrs, "x.ctl", ctl, n);
	attr_set_str(&s->attrs, "x.utf8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
	for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
		snprintf(key, sizeof(key), "x.d%zu", i);
		attr_set_double(&s->attrs, key, ds[i]);
	}
	attr_set_bool(&s->attrs, "x.t", true);
	attr_set_bool(&s->attrs, "x.f", false);
	attr_set_int(&s->attrs, "x.min", INT64_MIN);
	s->status = SONDE_STATUS_ERROR;
	span_set_status_msg(s, "bad \"thing\"\n");
	line = print_format(s, PRINT_JSON);
	ck_assert_ptr_nonnull(line);
	n = strlen(line);
	ck_assert_int_eq(line[n - 1], '\n');
	line[n - 1] = '\0';
	j = json_loads(line, 0, NULL);
	ck_assert_ptr_nonnull(j);
	dump = json_dumps(j, JSON_COMPACT);
	ck_assert_str_eq(line, dump);
	free(dump);
	json_decref(j);
	free(line);
	span_unref(s);
}
END_TEST

/* A reader that does not read: emit never waits for it. Spans beyond the
 * buffer are dropped and counted, and every span is either printed whole
 * or counted once the reader catches up. */
struct slow_reader {
	int fd;
	size_t lines;
};

/* A JSON sink over a fresh pipe: *w is its write end, fds[0] the read end. */
static struct span_sink *pipe_sink(int fds[2], FILE **w, bool wait_when_full)
{
	ck_assert_int_eq(pipe(fds), 0);
	*w = fdopen(fds[1], "w");
	ck_assert_ptr_nonnull(*w);
	return print_sink_new_opts(*w, PRINT_JSON, 16384, wait_when_full);
}

static void *read_all(void *arg)
{
	struct slow_reader *r = arg;
	char b[4096];
	ssize_t n;

	while ((n = read(r->fd, b, sizeof(b))) > 0)
		for (ssize_t i = 0; i < n; i++)
			r->lines += b[i] == '\n';
	return NULL;
}

START_TEST(sink_never_waits_for_a_slow_reader)
{
	struct span *s = mkspan(true);
	int fds[2];
	FILE *w;
	struct span_sink *sink;
	struct slow_reader r = {0};
	pthread_t t;
	const int n = 5000;

	/* 16 KiB of buffer; the pipe holds 64 KiB; 5000 lines are ~2 MB. If
	 * emit waited on the pipe, this loop would never end (the test's
	 * timeout fails it): nobody reads until it is done. */
	sink = pipe_sink(fds, &w, false);
	ck_assert_ptr_nonnull(sink);
	for (int i = 0; i < n; i++) {
		sink->emit(sink->ctx, s);
		if (i % 64 == 0)
			sink->flush(sink->ctx);
	}
	ck_assert_uint_gt(print_sink_dropped(sink), 0);
	r.fd = fds[0];
	ck_assert_int_eq(pthread_create(&t, NULL, read_all, &r), 0);
	uint64_t dropped = print_sink_dropped(sink);
	print_sink_free(sink);
	fclose(w);
	pthread_join(t, NULL);
	close(fds[0]);
	ck_assert_uint_gt(r.lines, 0);
	ck_assert_uint_eq(r.lines + dropped, (uint64_t)n);
	span_unref(s);
}
END_TEST

/* A replay's printer loses nothing: emit waits for the reader instead. */
START_TEST(sink_waits_in_replay_mode)
{
	struct span *s = mkspan(false);
	int fds[2];
	FILE *w;
	struct span_sink *sink;
	struct slow_reader r = {0};
	pthread_t t;
	const int n = 5000;

	sink = pipe_sink(fds, &w, true);
	r.fd = fds[0];
	ck_assert_int_eq(pthread_create(&t, NULL, read_all, &r), 0);
	ck_assert_ptr_nonnull(sink);
	for (int i = 0; i < n; i++)
		sink->emit(sink->ctx, s); /* no flush: the buffer's fill wakes the writer */
	ck_assert_uint_eq(print_sink_dropped(sink), 0);
	print_sink_free(sink);
	fclose(w);
	pthread_join(t, NULL);
	close(fds[0]);
	ck_assert_uint_eq(r.lines, (uint64_t)n);
	span_unref(s);
}
END_TEST

START_TEST(sink_writes_lines)
{
	struct span *a = mkspan(true), *b = mkspan(false);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct span_sink *sink = print_sink_new(f, PRINT_JSON);
	char *nl;
	json_t *j;

	ck_assert_ptr_nonnull(sink);
	ck_assert_ptr_nonnull(sink->emit);
	sink->emit(sink->ctx, a);
	sink->flush(sink->ctx); /* the agent flushes after each drained slice */
	sink->emit(sink->ctx, b);
	sink->flush(sink->ctx);
	print_sink_free(sink); /* writes what is still waiting */
	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(buf[len - 1], '\n'); /* whole lines only */
	fclose(f);

	nl = strchr(buf, '\n');
	ck_assert_ptr_nonnull(nl);
	*nl = '\0';
	j = json_loads(buf, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "parent_span_id")), "");
	json_decref(j);
	j = parse_line(nl + 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "parent_span_id")),
	                 "f0f1f2f3f4f5f6f7");
	json_decref(j);
	free(buf);
	/* The sink took no references. */
	ck_assert_int_eq(a->refs, 1);
	span_unref(a);
	span_unref(b);

	ck_assert_ptr_null(print_sink_new(stdout, PRINT_NONE));
	ck_assert_ptr_null(print_sink_new(NULL, PRINT_JSON));
	print_sink_free(NULL);
}
END_TEST

START_TEST(text_line)
{
	struct span *s = mkspan(false);
	char *line;

	line = print_format(s, PRINT_TEXT);
	ck_assert_str_eq(line,
	                 "2023-11-14T22:13:20.123Z SERVER   http GET /users/{id} 200 1.234ms "
	                 "checkout[4242] peer=10.0.0.7:51234 "
	                 "trace=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf span=1011121314151617 "
	                 "parent=f0f1f2f3f4f5f6f7\n");
	free(line);
	span_unref(s);
}
END_TEST

START_TEST(text_client_error_and_hostile)
{
	struct span *s = mkspan(true);
	struct attr_list clean = { 0 };
	char *line;

	s->kind = SONDE_SPAN_CLIENT;
	attr_list_free(&s->attrs);
	s->attrs = clean;
	span_set_name(s, "GET\x1b[31m\n/\xff");
	attr_set_str(&s->attrs, "server.address", "db.local", 8);
	attr_set_int(&s->attrs, "server.port", 5432);
	s->status = SONDE_STATUS_ERROR;
	span_set_status_msg(s, "timeout\r");
	s->end_unix_ns = s->start_unix_ns + 2500000000ull;
	line = print_format(s, PRINT_TEXT);
	ck_assert_str_eq(line,
	                 "2023-11-14T22:13:20.123Z CLIENT   http GET?[31m?/? ERROR 2.500s "
	                 "checkout[4242] peer=db.local:5432 "
	                 "trace=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf span=1011121314151617 "
	                 "parent=- error=\"timeout?\"\n");
	free(line);

	/* A protocol status code plus an error status shows both. */
	attr_set_int(&s->attrs, "http.response.status_code", 503);
	line = print_format(s, PRINT_TEXT);
	ck_assert_ptr_nonnull(strstr(line, " 503 ERROR 2.500s "));
	free(line);
	span_unref(s);
}
END_TEST

static Suite *print_suite(void)
{
	Suite *s = suite_create("print");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, json_every_key);
	tcase_add_test(tc, json_root_unset_kinds);
	tcase_add_test(tc, json_hostile_values);
	tcase_add_test(tc, json_is_what_jansson_would_write);
	tcase_add_test(tc, sink_writes_lines);
	tcase_add_test(tc, sink_never_waits_for_a_slow_reader);
	tcase_add_test(tc, sink_waits_in_replay_mode);
	tcase_add_test(tc, text_line);
	tcase_add_test(tc, text_client_error_and_hostile);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(print_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
