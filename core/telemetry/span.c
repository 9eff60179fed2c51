/*
 * span.c - attribute lists, refcounted resources and spans, hex helpers.
 *
 * The one idea: a finished span is immutable and shared. Sinks on other
 * threads (the OTLP exporter) keep it alive with span_ref/span_unref, whose
 * counters are atomic; the last unref frees the span, its strings and
 * attributes, and drops the span's reference on its resource.
 *
 * An attr_list is a small vector searched linearly: spans carry a dozen
 * attributes, so a hash table would cost more than it saves. Setting a key
 * that is already present replaces its value in place, so the first
 * insertion decides the order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/span.h"

static struct attr *attr_slot(struct attr_list *l, const char *key)
{
	struct attr *a;
	size_t ncap;

	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->a[i].key, key) == 0) {
			a = &l->a[i];
			if (a->type == ATTR_STR) {
				free(a->v.s);
				a->v.s = NULL;
			}
			return a;
		}
	}
	if (l->n == l->cap) {
		ncap = l->cap ? l->cap * 2 : 8;
		a = realloc(l->a, ncap * sizeof(*a));
		if (!a)
			return NULL;
		l->a = a;
		l->cap = ncap;
	}
	a = &l->a[l->n];
	memset(a, 0, sizeof(*a));
	a->key = strdup(key);
	if (!a->key)
		return NULL;
	l->n++;
	return a;
}

/* Copies key and the first len bytes of val (val need not be terminated).
 * Returns 0, -EINVAL or -ENOMEM; on error the list is unchanged. */
int attr_set_str(struct attr_list *l, const char *key, const char *val, size_t len)
{
	struct attr *a;
	char *copy;

	if (!l || !key || (!val && len))
		return -EINVAL;
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, val, len);
	copy[len] = '\0';
	a = attr_slot(l, key);
	if (!a) {
		free(copy);
		return -ENOMEM;
	}
	a->type = ATTR_STR;
	a->v.s = copy;
	return 0;
}

int attr_set_int(struct attr_list *l, const char *key, int64_t v)
{
	struct attr *a;

	if (!l || !key)
		return -EINVAL;
	a = attr_slot(l, key);
	if (!a)
		return -ENOMEM;
	a->type = ATTR_INT;
	a->v.i = v;
	return 0;
}

int attr_set_double(struct attr_list *l, const char *key, double v)
{
	struct attr *a;

	if (!l || !key)
		return -EINVAL;
	a = attr_slot(l, key);
	if (!a)
		return -ENOMEM;
	a->type = ATTR_DOUBLE;
	a->v.d = v;
	return 0;
}

int attr_set_bool(struct attr_list *l, const char *key, bool v)
{
	struct attr *a;

	if (!l || !key)
		return -EINVAL;
	a = attr_slot(l, key);
	if (!a)
		return -ENOMEM;
	a->type = ATTR_BOOL;
	a->v.b = v;
	return 0;
}

/* Borrowed pointer, valid until the list changes. NULL if absent. */
const struct attr *attr_find(const struct attr_list *l, const char *key)
{
	if (!l || !key)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->a[i].key, key) == 0)
			return &l->a[i];
	}
	return NULL;
}

/* Frees every key and value; the list is empty and reusable afterwards. */
void attr_list_free(struct attr_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->a[i].key);
		if (l->a[i].type == ATTR_STR)
			free(l->a[i].v.s);
	}
	free(l->a);
	l->a = NULL;
	l->n = l->cap = 0;
}

struct resource *resource_ref(struct resource *r)
{
	if (r)
		__atomic_fetch_add(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

/* The resource must come from malloc/calloc: the last unref frees the
 * struct itself along with service_name and attrs. */
void resource_unref(struct resource *r)
{
	if (!r)
		return;
	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free(r->service_name);
	attr_list_free(&r->attrs);
	free(r);
}

struct span *span_ref(struct span *s)
{
	if (s)
		__atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

/* The span must come from malloc/calloc: the last unref frees name,
 * status_msg, attrs, drops one reference on res, and frees the struct. */
void span_unref(struct span *s)
{
	if (!s)
		return;
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free(s->name);
	free(s->status_msg);
	attr_list_free(&s->attrs);
	resource_unref(s->res);
	free(s);
}


