/*
 * span_test.c - attribute lists, resource and span refcounts, hex_encode.
 * Leaks and double frees are caught by the sanitizer build (ASan/LSan).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "telemetry/intern.h"
#include "telemetry/span.h"

/* A literal (read-only segment) is trusted by pointer; a writable buffer
 * reused at the same address with other text gets the other key; after the
 * mappings change, cached pointers are looked at again. */
START_TEST(intern_literals_and_reused_buffers)
{
	static char buf[32];
	const char *a, *b, *lit = "sonde.test.literal";

	a = intern(lit);
	ck_assert_ptr_eq(intern(lit), a);
	ck_assert_ptr_eq(intern("sonde.test.literal"), a);
	strcpy(buf, "sonde.test.one");
	a = intern(buf);
	ck_assert_ptr_eq(intern(buf), a);
	strcpy(buf, "sonde.test.two");
	b = intern(buf);
	ck_assert_ptr_ne(a, b);
	ck_assert_str_eq(b, "sonde.test.two");
	strcpy(buf, "sonde.test.one");
	ck_assert_ptr_eq(intern(buf), a);
	intern_mappings_changed();
	ck_assert_ptr_eq(intern(buf), a);
	ck_assert_str_eq(intern(lit), "sonde.test.literal");
	/* A literal is trusted without a compare, a buffer never. */
	ck_assert(intern_is_readonly(lit));
	ck_assert(!intern_is_readonly(buf));
}
END_TEST

/* Span structs come back from the free list zeroed, whatever they held. */
START_TEST(span_reused_is_clean)
{
	struct span *s = span_new();

	span_set_name(s, "first");
	ck_assert_int_eq(attr_set_str(&s->attrs, "k", "v", 1), 0);
	s->status = 2;
	span_unref(s);
	for (int i = 0; i < 4; i++) {
		s = span_new();
		ck_assert_int_eq(s->refs, 1);
		ck_assert_str_eq(s->name, "");
		ck_assert_uint_eq(s->attrs.n, 0);
		ck_assert_int_eq(s->status, 0);
		ck_assert_ptr_null(s->links);
		span_unref(s);
	}
}
END_TEST

START_TEST(attr_types_and_find)
{
	struct attr_list l = { 0 };
	const struct attr *a;

	ck_assert_int_eq(attr_set_str(&l, "http.request.method", "GET", 3), 0);
	ck_assert_int_eq(attr_set_int(&l, "http.response.status_code", 200), 0);
	ck_assert_int_eq(attr_set_double(&l, "x.ratio", 0.25), 0);
	ck_assert_int_eq(attr_set_bool(&l, "x.flag", true), 0);
	ck_assert_uint_eq(l.n, 4);

	a = attr_find(&l, "http.request.method");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->type, ATTR_STR);
	ck_assert_str_eq(a->v.s, "GET");
	a = attr_find(&l, "http.response.status_code");
	ck_assert_int_eq(a->type, ATTR_INT);
	ck_assert_int_eq(a->v.i, 200);
	a = attr_find(&l, "x.ratio");
	ck_assert_int_eq(a->type, ATTR_DOUBLE);
	ck_assert_double_eq(a->v.d, 0.25);
	a = attr_find(&l, "x.flag");
	ck_assert_int_eq(a->type, ATTR_BOOL);
	ck_assert(a->v.b);
	ck_assert_ptr_null(attr_find(&l, "absent"));
	ck_assert_ptr_null(attr_find(&l, "http.request"));
	attr_list_free(&l);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_ptr_null(l.a);
}
END_TEST

START_TEST(attr_last_value_wins_in_place)
{
	struct attr_list l = { 0 };
	const struct attr *a;

	attr_set_str(&l, "a", "one", 3);
	attr_set_str(&l, "b", "two", 3);
	attr_set_str(&l, "a", "three", 5);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.a[0].key, "a"); /* first insertion keeps its place */
	ck_assert_str_eq(l.a[0].v.s, "three");

	/* Type change: the old string must be freed (LSan), the new type kept. */
	attr_set_int(&l, "a", 7);
	a = attr_find(&l, "a");
	ck_assert_int_eq(a->type, ATTR_INT);
	ck_assert_int_eq(a->v.i, 7);
	attr_set_str(&l, "a", "back", 4);
	a = attr_find(&l, "a");
	ck_assert_int_eq(a->type, ATTR_STR);
	ck_assert_str_eq(a->v.s, "back");
	ck_assert_uint_eq(l.n, 2);
	attr_list_free(&l);
}
END_TEST

START_TEST(attr_copies_and_lengths)
{
	struct attr_list l = { 0 };
	char key[8] = "k", val[16] = "abcdef";

	/* Only len bytes are taken; the source needs no terminator. */
	ck_assert_int_eq(attr_set_str(&l, key, val, 3), 0);
	key[0] = 'z';
	val[0] = 'Z';
	ck_assert_ptr_null(attr_find(&l, "z"));
	ck_assert_str_eq(attr_find(&l, "k")->v.s, "abc");

	ck_assert_int_eq(attr_set_str(&l, "empty", NULL, 0), 0);
	ck_assert_str_eq(attr_find(&l, "empty")->v.s, "");
	ck_assert_int_eq(attr_set_str(&l, "bad", NULL, 4), -EINVAL);
	ck_assert_int_eq(attr_set_str(&l, NULL, "x", 1), -EINVAL);
	ck_assert_int_eq(attr_set_int(NULL, "x", 1), -EINVAL);
	ck_assert_ptr_null(attr_find(&l, "bad"));
	ck_assert_uint_eq(l.n, 2);
	attr_list_free(&l);
	attr_list_free(&l); /* idempotent */
	attr_list_free(NULL);
}
END_TEST

START_TEST(attr_many_grow)
{
	struct attr_list l = { 0 };
	char key[16];

	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_int_eq(attr_set_int(&l, key, i), 0);
	}
	ck_assert_uint_eq(l.n, 100);
	ck_assert_int_eq(attr_find(&l, "k57")->v.i, 57);
	attr_list_free(&l);
}
END_TEST

START_TEST(hex)
{
	uint8_t in[] = { 0x00, 0x01, 0xab, 0xff, 0x7e };
	char out[2 * sizeof(in) + 1];

	memset(out, 'x', sizeof(out));
	hex_encode(in, sizeof(in), out);
	ck_assert_str_eq(out, "0001abff7e");
	hex_encode(in, 0, out);
	ck_assert_str_eq(out, "");
}
END_TEST

static struct resource *make_resource(const char *svc, uint32_t pid)
{
	struct resource *r = calloc(1, sizeof(*r));

	r->refs = 1;
	r->pid = pid;
	r->service_name = strdup(svc);
	attr_set_str(&r->attrs, "service.name", svc, strlen(svc));
	attr_set_int(&r->attrs, "process.pid", pid);
	return r;
}

START_TEST(span_holds_resource)
{
	struct resource *r = make_resource("checkout", 42);
	struct span *s = span_new();

	s->refs = 1;
	span_set_name(s, "GET /");
	span_set_status_msg(s, "boom");
	attr_set_str(&s->attrs, "url.path", "/", 1);
	s->res = resource_ref(r);
	ck_assert_int_eq(r->refs, 2);

	ck_assert_ptr_eq(span_ref(s), s);
	ck_assert_int_eq(s->refs, 2);
	span_unref(s);
	ck_assert_int_eq(s->refs, 1);
	ck_assert_int_eq(r->refs, 2);
	span_unref(s); /* frees the span and drops its resource reference */
	ck_assert_int_eq(r->refs, 1);
	ck_assert_str_eq(r->service_name, "checkout");
	resource_unref(r); /* frees the resource; LSan checks nothing leaks */

	ck_assert_ptr_null(span_ref(NULL));
	span_unref(NULL);
	ck_assert_ptr_null(resource_ref(NULL));
	resource_unref(NULL);
}
END_TEST

#define REF_THREADS 4
#define REF_ROUNDS 20000

static void *ref_worker(void *arg)
{
	struct span *s = arg;

	for (int i = 0; i < REF_ROUNDS; i++) {
		span_ref(s);
		resource_ref(s->res);
		resource_unref(s->res);
		span_unref(s);
	}
	return NULL;
}

START_TEST(refcounts_are_atomic)
{
	struct span *s = span_new();
	pthread_t t[REF_THREADS];

	s->refs = 1;
	s->res = make_resource("svc", 1);
	for (int i = 0; i < REF_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, ref_worker, s), 0);
	for (int i = 0; i < REF_THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(s->refs, 1);
	ck_assert_int_eq(s->res->refs, 1);
	span_unref(s);
}
END_TEST

static Suite *span_suite(void)
{
	Suite *s = suite_create("span");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, attr_types_and_find);
	tcase_add_test(tc, attr_last_value_wins_in_place);
	tcase_add_test(tc, attr_copies_and_lengths);
	tcase_add_test(tc, attr_many_grow);
	tcase_add_test(tc, hex);
	tcase_add_test(tc, span_holds_resource);
	tcase_add_test(tc, refcounts_are_atomic);
	tcase_add_test(tc, intern_literals_and_reused_buffers);
	tcase_add_test(tc, span_reused_is_clean);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(span_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
