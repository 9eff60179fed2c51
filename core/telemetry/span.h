/*
 * span.h - finished spans and the resources they belong to, as the core's
 * exporters see them.
 *
 * A span is built through the SDK's host API (core/host/tracer.c), then
 * handed to every sink (printer, OTLP queue). A sink that keeps a span takes
 * a reference (span_ref) and drops it with span_unref. Resources are shared
 * per watched process and refcounted.
 *
 * The one idea for speed: building a span should cost one allocation. Keys
 * are interned (compared by pointer), values and the span's own strings
 * live in the list's arena (inline bytes first, then chunks), and up to
 * ATTR_INLINE attributes live inside the list. So an attr_list must never
 * be copied by value: keep it where it was created.
 */
#ifndef SONDE_SPAN_H
#define SONDE_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum attr_type { ATTR_STR = 1, ATTR_INT, ATTR_DOUBLE, ATTR_BOOL };

struct attr {
	const char *key;          /* interned (telemetry/intern.h) */
	enum attr_type type;
	union {
		const char *s;    /* NUL-terminated, in the list's arena */
		int64_t i;
		double d;
		bool b;
	} v;
};

#define ATTR_INLINE 16        /* attributes held without a separate allocation */
#define ATTR_INLINE_BYTES 384 /* string bytes likewise */

struct attr_chunk;

/* Zero-initialised = empty. Not to be copied by value (points into itself). */
struct attr_list {
	struct attr *a;           /* NULL, inl, or a heap array */
	uint32_t n, cap;
	struct attr_chunk *chunks;/* string bytes beyond inl_bytes */
	uint32_t inl_used;
	char inl_bytes[ATTR_INLINE_BYTES];
	struct attr inl[ATTR_INLINE];
};

int attr_set_str(struct attr_list *l, const char *key, const char *val, size_t len);
int attr_set_int(struct attr_list *l, const char *key, int64_t v);
int attr_set_double(struct attr_list *l, const char *key, double v);
int attr_set_bool(struct attr_list *l, const char *key, bool v);
const struct attr *attr_find(const struct attr_list *l, const char *key);
/* Same, with a key already interned: a pointer compare per attribute. */
const struct attr *attr_find_interned(const struct attr_list *l, const char *ikey);
/* A copy of s[0..len) + NUL in the list's arena (freed with the list). */
char *attr_list_strdup(struct attr_list *l, const char *s, size_t len);
void attr_list_free(struct attr_list *l);

/* The entity that produced telemetry: one per watched process. */
struct resource {
	int refs;
	uint32_t pid;
	char *service_name;
	struct attr_list attrs; /* service.name, process.pid, host.name, ... */
};

struct resource *resource_ref(struct resource *r);
void resource_unref(struct resource *r);

/* A link to another span (batch receive, fan-in, a trace continued across
 * an asynchronous hop). */
struct span_link {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t trace_flags;
	bool remote;
};

struct span {
	int refs;
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t parent_span_id[8]; /* all zero: root span */
	bool remote_parent;        /* parent came from an incoming traceparent */
	uint8_t trace_flags;
	const char *name;          /* in attrs' arena (span_set_name) */
	int kind;                  /* enum sonde_span_kind */
	uint64_t start_unix_ns;
	uint64_t end_unix_ns;
	int status;                /* enum sonde_status */
	const char *status_msg;    /* in attrs' arena, or NULL */
	struct attr_list attrs;
	struct resource *res;
	char scope[32];            /* instrumentation scope: plugin name */
	uint32_t tid;              /* thread that read or wrote the request */
	struct span_link *links;   /* n_links entries, heap (freed with the span) */
	uint32_t n_links;
};

/* Append a link (copied). 0 or -ENOMEM; at most 128 per span (-ENOSPC). */
int span_add_link(struct span *s, const struct span_link *l);

/* A new span (refs 1, everything else zero). */
struct span *span_new(void);
/* Name and status message are copied into the span's arena. */
void span_set_name(struct span *s, const char *name);
void span_set_status_msg(struct span *s, const char *msg);
struct span *span_ref(struct span *s);
void span_unref(struct span *s);


/* A sink receives every finished span. emit must not block. */
struct span_sink {
	const char *name;
	void (*emit)(void *ctx, struct span *s);
	void (*flush)(void *ctx);
	void *ctx;
};

#endif
