/*
 * span.c - attribute lists, refcounted resources and spans.
 *
 * The one idea: a finished span is immutable and shared. Sinks on other
 * threads (the OTLP exporter) keep it alive with span_ref/span_unref, whose
 * counters are atomic; the last unref frees the span, its arena and
 * attributes, and drops the span's reference on its resource.
 *
 * Span structs are recycled through a small free list (a span is about 1 KB:
 * every malloc/free of one went through the allocator's slow path when
 * spans are freed in bursts by the exporter thread).
 *
 * An attr_list is a small vector searched linearly (spans carry a dozen
 * attributes, so a hash table would cost more than it saves), with interned
 * keys compared by pointer. Its first ATTR_INLINE entries and
 * ATTR_INLINE_BYTES of string bytes live inside the list; beyond that it
 * grows on the heap in chunks that never move, so a value pointer stays
 * valid for the list's life. Setting a key that is already present replaces
 * its value in place, so the first insertion decides the order (a replaced
 * string's old bytes stay in the arena until the list is freed).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/intern.h"
#include "telemetry/span.h"

#define CHUNK_MIN 1024

struct attr_chunk {
	struct attr_chunk *next;
	uint32_t used, size;
	char data[];
};

char *attr_list_strdup(struct attr_list *l, const char *s, size_t len)
{
	struct attr_chunk *c = l->chunks;
	char *p;

	if (len >= UINT32_MAX / 2)
		return NULL;
	if (l->inl_used + len + 1 <= ATTR_INLINE_BYTES) {
		p = l->inl_bytes + l->inl_used;
		l->inl_used += (uint32_t)len + 1;
	} else {
		if (!c || c->used + len + 1 > c->size) {
			size_t size = len + 1 > CHUNK_MIN ? len + 1 : CHUNK_MIN;

			c = malloc(sizeof(*c) + size);
			if (!c)
				return NULL;
			c->used = 0;
			c->size = (uint32_t)size;
			c->next = l->chunks;
			l->chunks = c;
		}
		p = c->data + c->used;
		c->used += (uint32_t)len + 1;
	}
	if (len)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static struct attr *attr_slot(struct attr_list *l, const char *key)
{
	const char *ik = intern(key);
	struct attr *a;

	if (!ik)
		return NULL;
	for (uint32_t i = 0; i < l->n; i++)
		if (l->a[i].key == ik)
			return &l->a[i];
	if (!l->a) {
		l->a = l->inl;
		l->cap = ATTR_INLINE;
	}
	if (l->n == l->cap) {
		uint32_t ncap = l->cap * 2;

		if (l->a == l->inl) {
			a = malloc(ncap * sizeof(*a));
			if (a)
				memcpy(a, l->inl, l->n * sizeof(*a));
		} else {
			a = realloc(l->a, ncap * sizeof(*a));
		}
		if (!a)
			return NULL;
		l->a = a;
		l->cap = ncap;
	}
	a = &l->a[l->n++];
	memset(a, 0, sizeof(*a));
	a->key = ik;
	return a;
}

/* Copies the first len bytes of val (val need not be terminated); the key
 * is interned. Returns 0, -EINVAL or -ENOMEM; on error the list is
 * unchanged (except for arena bytes). */
int attr_set_str(struct attr_list *l, const char *key, const char *val, size_t len)
{
	struct attr *a;
	char *copy;

	if (!l || !key || (!val && len))
		return -EINVAL;
	copy = attr_list_strdup(l, val ? val : "", len);
	if (!copy)
		return -ENOMEM;
	a = attr_slot(l, key);
	if (!a)
		return -ENOMEM;
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

const struct attr *attr_find_interned(const struct attr_list *l, const char *ikey)
{
	if (!l || !ikey)
		return NULL;
	for (uint32_t i = 0; i < l->n; i++)
		if (l->a[i].key == ikey)
			return &l->a[i];
	return NULL;
}

/* Borrowed pointer, valid until the list changes. NULL if absent. */
const struct attr *attr_find(const struct attr_list *l, const char *key)
{
	if (!l || !key)
		return NULL;
	for (uint32_t i = 0; i < l->n; i++)
		if (l->a[i].key == key || strcmp(l->a[i].key, key) == 0)
			return &l->a[i];
	return NULL;
}

/* Frees the arena and the array; the list is empty and reusable afterwards. */
void attr_list_free(struct attr_list *l)
{
	struct attr_chunk *c, *n;

	if (!l)
		return;
	for (c = l->chunks; c; c = n) {
		n = c->next;
		free(c);
	}
	if (l->a != l->inl)
		free(l->a);
	l->a = NULL;
	l->n = l->cap = 0;
	l->chunks = NULL;
	l->inl_used = 0;
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

/* Freed spans kept for reuse: a few per thread, without a lock (the
 * pipeline thread makes spans and, without an exporter thread, frees them
 * too), then at most POOL_MAX shared under a mutex (spans are made on the
 * pipeline thread and may be freed on an exporter's). A thread's own spans
 * go to the shared pool when it exits. */
#define POOL_MAX 1024
#define LOCAL_MAX 64
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct span *pool[POOL_MAX];
static size_t pool_n;

struct local_pool {
	struct span *s[LOCAL_MAX];
	size_t n;
	bool keyed;
};
static __thread struct local_pool local;
static pthread_key_t local_key;
static pthread_once_t local_once = PTHREAD_ONCE_INIT;
static bool local_key_ok;

static void pool_give_shared(struct span *s)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_n < POOL_MAX) {
		pool[pool_n++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	free(s);
}

static void local_flush(void *arg)
{
	struct local_pool *lp = arg;

	while (lp->n)
		pool_give_shared(lp->s[--lp->n]);
}

static void local_key_make(void)
{
	local_key_ok = pthread_key_create(&local_key, local_flush) == 0;
}

static struct span *pool_take(void)
{
	struct span *s = NULL;

	if (local.n) {
		s = local.s[--local.n];
	} else {
		pthread_mutex_lock(&pool_lock);
		if (pool_n)
			s = pool[--pool_n];
		pthread_mutex_unlock(&pool_lock);
	}
	if (s)
		memset(s, 0, sizeof(*s));
	return s;
}

static void pool_give(struct span *s)
{
	if (!local.keyed) {
		/* The exit hook needs a non-NULL value to run. */
		pthread_once(&local_once, local_key_make);
		if (!local_key_ok || pthread_setspecific(local_key, &local)) {
			pool_give_shared(s);
			return;
		}
		local.keyed = true;
	}
	if (local.n < LOCAL_MAX) {
		local.s[local.n++] = s;
		return;
	}
	pool_give_shared(s);
}

struct span *span_new(void)
{
	struct span *s = pool_take();

	if (!s)
		s = calloc(1, sizeof(*s));
	if (s) {
		s->refs = 1;
		s->name = "";
	}
	return s;
}

void span_set_name(struct span *s, const char *name)
{
	const char *n = attr_list_strdup(&s->attrs, name ? name : "", name ? strlen(name) : 0);

	if (n)
		s->name = n;
}

void span_set_status_msg(struct span *s, const char *msg)
{
	s->status_msg = msg ? attr_list_strdup(&s->attrs, msg, strlen(msg)) : NULL;
}

struct span *span_ref(struct span *s)
{
	if (s)
		__atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

/* The last unref frees the arena (name, status, values), drops one
 * reference on res, and frees the struct. */
void span_unref(struct span *s)
{
	if (!s)
		return;
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	attr_list_free(&s->attrs);
	resource_unref(s->res);
	free(s->links);
	pool_give(s);
}

int span_add_link(struct span *s, const struct span_link *l)
{
	struct span_link *n;

	if (s->n_links >= 128)
		return -ENOSPC;
	n = realloc(s->links, (s->n_links + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	n[s->n_links++] = *l;
	s->links = n;
	return 0;
}
