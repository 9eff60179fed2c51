/*
 * span.h - finished spans and the resources they belong to, as the core's
 * exporters see them.
 *
 * A span is built through the SDK's host API (core/host.c), then frozen
 * into a struct span and handed to every sink (printer, OTLP queue). A sink
 * that keeps a span takes a reference (span_ref) and drops it with
 * span_unref. Resources are shared per watched process and refcounted.
 */
#ifndef SONDE_SPAN_H
#define SONDE_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum attr_type { ATTR_STR = 1, ATTR_INT, ATTR_DOUBLE, ATTR_BOOL };

struct attr {
	char *key;
	enum attr_type type;
	union {
		char *s;
		int64_t i;
		double d;
		bool b;
	} v;
};

struct attr_list {
	struct attr *a;
	size_t n, cap;
};

int attr_set_str(struct attr_list *l, const char *key, const char *val, size_t len);
int attr_set_int(struct attr_list *l, const char *key, int64_t v);
int attr_set_double(struct attr_list *l, const char *key, double v);
int attr_set_bool(struct attr_list *l, const char *key, bool v);
const struct attr *attr_find(const struct attr_list *l, const char *key);
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

struct span {
	int refs;
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t parent_span_id[8]; /* all zero: root span */
	bool remote_parent;        /* parent came from an incoming traceparent */
	uint8_t trace_flags;
	char *name;
	int kind;                  /* enum sonde_span_kind */
	uint64_t start_unix_ns;
	uint64_t end_unix_ns;
	int status;                /* enum sonde_status */
	char *status_msg;
	struct attr_list attrs;
	struct resource *res;
	char scope[32];            /* instrumentation scope: plugin name */
	uint32_t tid;              /* thread that read or wrote the request */
};

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
