/*
 * yaml.c - the configuration file: a libyaml document walked with small
 * tables that map each allowed key to a handler.
 *
 * The one idea: the file is loaded whole as a libyaml document (a tree of
 * nodes that remember their line). Handlers write straight into struct
 * config, so whatever was stored before an error is already owned by the
 * config: the caller runs config_free() after a failure exactly as after a
 * success. Every message goes through fail() and reads "FILE:LINE: problem".
 */
#define _GNU_SOURCE
#include "config/values.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>


struct loader {
	yaml_document_t *doc;
	const char *name;  /* file name for messages */
	char *err;
	size_t errlen;
	size_t budget;     /* node visits left (aliases can repeat subtrees) */
};

/* ---------------------------------------------------------------------- */
/* The YAML walker                                                         */

static yaml_node_t *node_at(struct loader *ld, int id)
{
	return yaml_document_get_node(ld->doc, id);
}

static int line_of(const yaml_node_t *n)
{
	return n ? (int)n->start_mark.line + 1 : 1;
}

static const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* A plain ~, null or nothing: the key is present without a value. */
static bool is_null(const yaml_node_t *n)
{
	const char *s;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = sval(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static const char *kind(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a map";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (is_null(n))
		return "empty";
	return "a single value";
}

static int vfail_line(struct loader *ld, int line, const char *fmt, va_list ap)
{
	char msg[512];

	if (!ld->err || !ld->errlen)
		return -1;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->name, line, msg);
	return -1;
}

__attribute__((format(printf, 3, 4)))
static int fail_line(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_line(ld, line, fmt, ap);
	va_end(ap);
	return -1;
}

/* Writes "NAME:LINE: message" for the line of node `at`; returns -1. */
__attribute__((format(printf, 3, 4)))
static int fail(struct loader *ld, const yaml_node_t *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_line(ld, line_of(at), fmt, ap);
	va_end(ap);
	return -1;
}

/* A reason from a parse_* helper, placed under a YAML path. */
static int fail_why(struct loader *ld, const yaml_node_t *at, const char *path, const char *why)
{
	return fail(ld, at, "%s%s%s", path, cfg_sep_for(why), why);
}

static int oom(struct loader *ld, const yaml_node_t *at)
{
	return fail(ld, at, "out of memory");
}

/* Counts one node visit; aliases can make a small file visit a subtree
 * many times, so the walk has a budget. */
static int spend(struct loader *ld, const yaml_node_t *at)
{
	if (ld->budget) {
		ld->budget--;
		return 0;
	}
	return fail(ld, at, "too many values: aliases expand this file beyond %d extra values",
		    CFG_ALIAS_BUDGET);
}

static void join_path(char *out, const char *path, const char *key)
{
	int n = snprintf(out, PATHLEN, "%s%s%s", path, *path ? "." : "", key);

	if (n >= PATHLEN) /* a path only names things in messages: cut it */
		memcpy(out + PATHLEN - 4, "...", 4);
}

/* The text of a scalar; `at` is where type errors point (the key). */
static int scalar(struct loader *ld, const yaml_node_t *at, const yaml_node_t *v, const char *path,
		  const char *what, const char **out)
{
	*out = "";
	if (v->type != YAML_SCALAR_NODE)
		return fail(ld, at, "%s must be %s, not %s", path, what, kind(v));
	if (strlen(sval(v)) != v->data.scalar.length)
		return fail(ld, v, "%s contains a NUL byte", path);
	*out = sval(v);
	return 0;
}

/* Optimal string alignment distance, for "did you mean"; short keys only. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t d[33][33];

	if (la > 32 || lb > 32)
		return 99;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t best = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

struct field {
	const char *key;
	int (*set)(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v, const char *path);
};

static int unknown_key(struct loader *ld, const yaml_node_t *k, const char *path,
		       const struct field *tab)
{
	char list[256] = "", q[QLEN + 1], hint[64] = "";
	size_t best = 3, i;

	for (i = 0; tab[i].key; i++) {
		size_t d = edit_distance(sval(k), tab[i].key);

		/* "payload" for "payload_cap": a prefix counts as close */
		if (strlen(sval(k)) >= 3 && !strncmp(tab[i].key, sval(k), strlen(sval(k))))
			d = 1;

		if (i)
			strcat(list, ", ");
		strcat(list, tab[i].key);
		if (d < best && d < strlen(tab[i].key)) {
			best = d;
			snprintf(hint, sizeof(hint), "; did you mean '%s'?", tab[i].key);
		}
	}
	return fail(ld, k, "%s%sunknown key %s (expected: %s)%s", path, *path ? ": " : "",
		    cfg_quote(q, sval(k), k->data.scalar.length, '\''), list, hint);
}

struct key_ref {
	const char *s;
	size_t len;
	int line;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->line - y->line;
}

/* Every key of a map is a string without NUL and appears once. Sorting
 * keeps this O(n log n) for maps with many arbitrary keys. */
static int check_keys(struct loader *ld, yaml_node_t *map, const char *path)
{
	yaml_node_pair_t *p, *start = map->data.mapping.pairs.start;
	size_t n = (size_t)(map->data.mapping.pairs.top - start), i;
	struct key_ref *refs;
	char q[QLEN + 1];
	int rc = -1;

	for (p = start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(ld, p->key);

		if (spend(ld, k) < 0)
			return -1;
		if (k->type != YAML_SCALAR_NODE)
			return fail(ld, k, "%s%skeys must be plain strings, not %s", path,
				    *path ? ": " : "", kind(k));
		if (strlen(sval(k)) != k->data.scalar.length)
			return fail(ld, k, "%s%sa key contains a NUL byte", path, *path ? ": " : "");
	}
	if (n < 2)
		return 0;
	refs = calloc(n, sizeof(*refs));
	if (!refs)
		return oom(ld, map);
	for (i = 0; i < n; i++) {
		yaml_node_t *k = node_at(ld, start[i].key);

		refs[i] = (struct key_ref){ sval(k), k->data.scalar.length, line_of(k) };
	}
	qsort(refs, n, sizeof(*refs), key_cmp);
	for (i = 1; i < n; i++) {
		if (refs[i].len == refs[i - 1].len && !memcmp(refs[i].s, refs[i - 1].s, refs[i].len)) {
			fail_line(ld, refs[i].line, "%s%sduplicate key %s (first at line %d)", path,
				  *path ? ": " : "", cfg_quote(q, refs[i].s, refs[i].len, '\''),
				  refs[i - 1].line);
			goto out;
		}
	}
	rc = 0;
out:
	free(refs);
	return rc;
}

/* A map whose keys come from `tab`; null counts as an empty map. */
static int walk_map(struct loader *ld, yaml_node_t *at, yaml_node_t *map, const char *path,
		    const struct field *tab, void *obj)
{
	yaml_node_pair_t *p;

	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return fail(ld, at, "%s must be a map, not %s", path, kind(map));
	if (check_keys(ld, map, path) < 0)
		return -1;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(ld, p->key), *v = node_at(ld, p->value);
		char sub[PATHLEN];
		size_t i;

		for (i = 0; tab[i].key && strcmp(tab[i].key, sval(k)); i++)
			;
		if (!tab[i].key)
			return unknown_key(ld, k, path, tab);
		join_path(sub, path, tab[i].key);
		if (tab[i].set(ld, obj, k, v, sub) < 0)
			return -1;
	}
	return 0;
}

typedef int (*item_fn)(struct loader *ld, void *obj, yaml_node_t *item, const char *path);

/* A list; with one_ok a single value stands for a one-item list. Null is
 * an empty list. */
static int walk_list(struct loader *ld, yaml_node_t *at, yaml_node_t *v, const char *path,
		     bool one_ok, item_fn fn, void *obj)
{
	yaml_node_item_t *it;

	if (is_null(v))
		return 0;
	if (v->type == YAML_SCALAR_NODE && one_ok)
		return fn(ld, obj, v, path);
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(ld, at, "%s must be a list, not %s%s", path, kind(v),
			    v->type == YAML_MAPPING_NODE ? " (start each entry with '- ')" : "");
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		yaml_node_t *item = node_at(ld, *it);

		if (spend(ld, item) < 0 || fn(ld, obj, item, path) < 0)
			return -1;
	}
	return 0;
}

/* Scalar field setters: a null value keeps the default. */

static int set_string(struct loader *ld, yaml_node_t *k, yaml_node_t *v, const char *path,
		      char **dst)
{
	const char *s;

	if (is_null(v))
		return 0;
	if (scalar(ld, k, v, path, "a string", &s) < 0)
		return -1;
	if (!*s)
		return fail(ld, v, "%s must not be empty", path);
	if (cfg_str_set(dst, s) < 0)
		return oom(ld, v);
	return 0;
}

/* 1: null (keep the default), 0: *out set, -1: error. */
static int get_uint(struct loader *ld, yaml_node_t *k, yaml_node_t *v, const char *path,
		    uint64_t min, uint64_t max, uint64_t *out)
{
	char why[WHY];
	const char *s;

	if (is_null(v))
		return 1;
	if (scalar(ld, k, v, path, "a number", &s) < 0)
		return -1;
	if (cfg_parse_uint(s, min, max, out, why, sizeof(why)) < 0)
		return fail_why(ld, v, path, why);
	return 0;
}

/* A YAML 1.2 core-schema boolean: true/false (any case). */
static int get_bool(struct loader *ld, yaml_node_t *k, yaml_node_t *v, const char *path,
		    bool *out)
{
	const char *s;

	if (is_null(v))
		return 1;
	if (scalar(ld, k, v, path, "true or false", &s) < 0)
		return -1;
	if (!strcasecmp(s, "true"))
		*out = true;
	else if (!strcasecmp(s, "false"))
		*out = false;
	else
		return fail(ld, v, "%s must be true or false (got \"%s\")", path, s);
	return 0;
}

static int set_duration(struct loader *ld, yaml_node_t *k, yaml_node_t *v, const char *path,
			uint32_t *ms)
{
	char why[WHY];
	const char *s;

	if (is_null(v))
		return 0;
	if (scalar(ld, k, v, path, "a duration", &s) < 0)
		return -1;
	if (cfg_parse_duration(s, ms, why, sizeof(why)) < 0)
		return fail_why(ld, v, path, why);
	return 0;
}

/* 1: null, 0: *out set, -1: error. */
static int get_enum(struct loader *ld, yaml_node_t *k, yaml_node_t *v, const char *path,
		    const struct name_val *t, int *out)
{
	char why[WHY];
	const char *s;

	if (is_null(v))
		return 1;
	if (scalar(ld, k, v, path, "a single value", &s) < 0)
		return -1;
	if (cfg_parse_enum(s, t, false, out, why, sizeof(why)) < 0)
		return fail_why(ld, v, path, why);
	return 0;
}

static int set_url(struct loader *ld, yaml_node_t *k, yaml_node_t *v, const char *path,
		   char **dst)
{
	char why[WHY];

	if (set_string(ld, k, v, path, dst) < 0)
		return -1;
	if (*dst && cfg_check_url(*dst, why, sizeof(why)) < 0)
		return fail_why(ld, v, path, why);
	return 0;
}

/* plugins.<name>: { key: value | [values] } */
static int settings_map(struct loader *ld, yaml_node_t *at, yaml_node_t *map, const char *path,
			struct plugin_settings *ps)
{
	size_t known = ps->n_kv;
	yaml_node_pair_t *p;

	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return fail(ld, at, "%s must be a map of settings (key: value), not %s", path,
			    kind(map));
	if (check_keys(ld, map, path) < 0)
		return -1;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(ld, p->key), *v = node_at(ld, p->value);
		yaml_node_item_t *it;
		char sub[PATHLEN];
		const char *s;
		struct kv *kv;

		join_path(sub, path, sval(k));
		if (!*sval(k))
			return fail(ld, k, "%s: a key must not be empty", path);
		kv = cfg_kv_get(&ps->kv, &ps->n_kv, known, sval(k), false);
		if (!kv)
			return oom(ld, k);
		if (is_null(v))
			continue;
		if (v->type == YAML_SCALAR_NODE) {
			if (scalar(ld, k, v, sub, "a value", &s) < 0)
				return -1;
			if (cfg_str_push(&kv->values, &kv->n_values, s, strlen(s)) < 0)
				return oom(ld, v);
			continue;
		}
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(ld, k, "%s must be a value or a list of values, not %s", sub,
				    kind(v));
		for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
			yaml_node_t *item = node_at(ld, *it);

			if (spend(ld, item) < 0)
				return -1;
			if (item->type != YAML_SCALAR_NODE)
				return fail(ld, item, "%s entries must be single values, not %s", sub,
					    kind(item));
			if (scalar(ld, item, item, sub, "a value", &s) < 0)
				return -1;
			if (cfg_str_push(&kv->values, &kv->n_values, s, strlen(s)) < 0)
				return oom(ld, item);
		}
	}
	return 0;
}

static int dir_item(struct loader *ld, void *obj, yaml_node_t *item, const char *path)
{
	struct config *c = obj;
	const char *s;

	if (scalar(ld, item, item, path, "a directory", &s) < 0)
		return -1;
	if (!*s)
		return fail(ld, item, "%s: a directory must not be empty", path);
	if (cfg_str_push(&c->plugin_dirs, &c->n_plugin_dirs, s, strlen(s)) < 0)
		return oom(ld, item);
	return 0;
}

/* plugins: { dirs: [...], <name>: {...} }; global is NULL under a service,
 * where dirs are not allowed. */
static int plugins_map(struct loader *ld, yaml_node_t *at, yaml_node_t *map, const char *path,
		       struct plugin_settings **arr, size_t *n, struct config *global)
{
	size_t known = *n;
	yaml_node_pair_t *p;
	char q[QLEN + 1];

	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return fail(ld, at, "%s must be a map of plugin names, not %s", path, kind(map));
	if (check_keys(ld, map, path) < 0)
		return -1;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(ld, p->key), *v = node_at(ld, p->value);
		struct plugin_settings *ps;
		char sub[PATHLEN];

		join_path(sub, path, sval(k));
		if (!strcmp(sval(k), "dirs")) {
			if (!global)
				return fail(ld, k, "%s: plugin directories are global: put them under "
					    "the top-level plugins.dirs", path);
			if (walk_list(ld, k, v, sub, true, dir_item, global) < 0)
				return -1;
			continue;
		}
		if (!cfg_valid_name(sval(k)))
			return fail(ld, k, "%s: %s is not a plugin name (letters, digits, '_', '-', '.')",
				    path, cfg_quote(q, sval(k), k->data.scalar.length, '\''));
		ps = cfg_settings_get(arr, n, known, sval(k));
		if (!ps)
			return oom(ld, k);
		if (settings_map(ld, k, v, sub, ps) < 0)
			return -1;
	}
	return 0;
}

/* A map of single values into a kv list (headers, resource attributes). */
static int pairs_map(struct loader *ld, yaml_node_t *at, yaml_node_t *map, const char *path,
		     struct kv **arr, size_t *n, bool headers)
{
	size_t known = *n;
	yaml_node_pair_t *p;
	char q[QLEN + 1];

	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return fail(ld, at, "%s must be a map (key: value), not %s", path, kind(map));
	if (check_keys(ld, map, path) < 0)
		return -1;
	/* Header names repeat across case (Authorization, authorization), so
	 * each is looked up among all; a sane request has few. */
	if (headers && map->data.mapping.pairs.top - map->data.mapping.pairs.start > CFG_MAX_HEADERS)
		return fail(ld, at, "%s: more than %d headers", path, CFG_MAX_HEADERS);
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(ld, p->key), *v = node_at(ld, p->value);
		char sub[PATHLEN];
		const char *s = "";

		join_path(sub, path, sval(k));
		if (!*sval(k))
			return fail(ld, k, "%s: a key must not be empty", path);
		if (headers && !cfg_valid_header_name(sval(k)))
			return fail(ld, k, "%s: %s is not a valid HTTP header name", path,
				    cfg_quote(q, sval(k), k->data.scalar.length, '\''));
		if (!is_null(v) && scalar(ld, k, v, sub, "a single value", &s) < 0)
			return -1;
		if (headers && !cfg_valid_header_value(s))
			return fail(ld, v, "%s contains a control character", sub);
		if (cfg_kv_set1(arr, n, headers ? *n : known, sval(k), s, headers) < 0)
			return oom(ld, v);
	}
	return 0;
}

/* services[i] */

static int svc_name(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		    const char *path)
{
	struct service_cfg *s = obj;

	return set_string(ld, k, v, path, &s->name);
}

static int port_item(struct loader *ld, void *obj, yaml_node_t *item, const char *path)
{
	struct service_cfg *s = obj;
	char why[WHY];
	const char *t;

	if (scalar(ld, item, item, path, "ports or ranges", &t) < 0)
		return -1;
	if (cfg_parse_ports(t, &s->ports, &s->n_ports, why, sizeof(why)) < 0)
		return fail_why(ld, item, path, why);
	return 0;
}

static int svc_ports(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		     const char *path)
{
	return walk_list(ld, k, v, path, true, port_item, obj);
}

static int svc_exe(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v, const char *path)
{
	struct service_cfg *s = obj;
	char why[WHY];

	if (set_string(ld, k, v, path, &s->exe_path) < 0)
		return -1;
	if (s->exe_path && cfg_check_regex(s->exe_path, why, sizeof(why)) < 0)
		return fail_why(ld, v, path, why);
	return 0;
}

static int pid_item(struct loader *ld, void *obj, yaml_node_t *item, const char *path)
{
	struct service_cfg *s = obj;
	char why[WHY];
	const char *t;
	uint64_t pid;
	uint32_t *p;

	if (scalar(ld, item, item, path, "process ids", &t) < 0)
		return -1;
	if (cfg_parse_uint(t, 1, CFG_PID_MAX, &pid, why, sizeof(why)) < 0)
		return fail_why(ld, item, path, why);
	p = cfg_grow(s->pids, s->n_pids, sizeof(*p));
	if (!p)
		return oom(ld, item);
	s->pids = p;
	p[s->n_pids++] = (uint32_t)pid;
	return 0;
}

static int svc_pids(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		    const char *path)
{
	return walk_list(ld, k, v, path, true, pid_item, obj);
}

static int protocol_item(struct loader *ld, void *obj, yaml_node_t *item, const char *path)
{
	struct service_cfg *s = obj;
	char q[QLEN + 1];
	const char *t;

	if (scalar(ld, item, item, path, "plugin names", &t) < 0)
		return -1;
	if (!cfg_valid_name(t))
		return fail(ld, item, "%s: %s is not a plugin name (letters, digits, '_', '-', '.')",
			    path, cfg_qs(q, t));
	if (cfg_str_push(&s->protocols, &s->n_protocols, t, strlen(t)) < 0)
		return oom(ld, item);
	return 0;
}

static int svc_protocols(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			 const char *path)
{
	return walk_list(ld, k, v, path, true, protocol_item, obj);
}

static int route_item(struct loader *ld, void *obj, yaml_node_t *item, const char *path)
{
	struct service_cfg *s = obj;
	char q[QLEN + 1];
	const char *t;

	if (scalar(ld, item, item, path, "route patterns", &t) < 0)
		return -1;
	if (t[0] != '/')
		return fail(ld, item, "%s: %s is not a route pattern (it must start with '/', like "
			    "/users/{id})", path, cfg_qs(q, t));
	if (cfg_str_push(&s->routes, &s->n_routes, t, strlen(t)) < 0)
		return oom(ld, item);
	return 0;
}

static int svc_routes(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		      const char *path)
{
	return walk_list(ld, k, v, path, true, route_item, obj);
}

static int svc_plugins(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		       const char *path)
{
	struct service_cfg *s = obj;

	return plugins_map(ld, k, v, path, &s->plugins, &s->n_plugins, NULL);
}

/* services[].inject_traceparent: W3C traceparent into outgoing HTTP/1
 * requests (opt-in; docs/architecture.md, "Trace context"). */
static int svc_inject(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		      const char *path)
{
	struct service_cfg *s = obj;
	int rc = get_bool(ld, k, v, path, &s->inject_traceparent);

	return rc < 0 ? -1 : 0;
}

static const struct field service_fields[] = {
	{ "name", svc_name },         { "open_ports", svc_ports }, { "exe_path", svc_exe },
	{ "pids", svc_pids },         { "protocols", svc_protocols },
	{ "routes", svc_routes },     { "plugins", svc_plugins },
	{ "inject_traceparent", svc_inject }, { NULL, NULL },
};

static int service_item(struct loader *ld, void *obj, yaml_node_t *item, const char *path)
{
	struct config *c = obj;
	struct service_cfg *p, *s;
	char sub[PATHLEN];

	snprintf(sub, sizeof(sub), "%s[%zu]", path, c->n_services);
	if (item->type != YAML_MAPPING_NODE)
		return fail(ld, item, "%s must be a map (name:, open_ports:, ...), not %s", sub,
			    kind(item));
	p = cfg_grow(c->services, c->n_services, sizeof(*p));
	if (!p)
		return oom(ld, item);
	c->services = p;
	s = &p[c->n_services++];
	s->line = line_of(item);
	if (walk_map(ld, item, item, sub, service_fields, s) < 0)
		return -1;
	if (!s->n_ports && !s->exe_path && !s->n_pids)
		return fail(ld, item, "%s selects no process: give it open_ports, exe_path or pids",
			    sub);
	return 0;
}

struct name_ref {
	const char *name;
	size_t idx;
	int line;
};

static int name_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Two services with one name would merge their telemetry: refuse. */
static int check_service_names(struct loader *ld, struct config *c, const yaml_node_t *at)
{
	struct name_ref *refs;
	size_t n = 0, i;
	char q[QLEN + 1];
	int rc = -1;

	if (c->n_services < 2)
		return 0;
	refs = calloc(c->n_services, sizeof(*refs));
	if (!refs)
		return oom(ld, at);
	for (i = 0; i < c->n_services; i++) {
		if (c->services[i].name)
			refs[n++] = (struct name_ref){ c->services[i].name, i, c->services[i].line };
	}
	qsort(refs, n, sizeof(*refs), name_cmp);
	for (i = 1; i < n; i++) {
		if (!strcmp(refs[i].name, refs[i - 1].name)) {
			fail_line(ld, refs[i].line,
				  "services[%zu].name: duplicate service name %s (first at line %d)",
				  refs[i].idx, cfg_qs(q, refs[i].name), refs[i - 1].line);
			goto out;
		}
	}
	rc = 0;
out:
	free(refs);
	return rc;
}

static int top_services(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			const char *path)
{
	if (walk_list(ld, k, v, path, false, service_item, obj) < 0)
		return -1;
	return check_service_names(ld, obj, k);
}

static int top_plugins(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		       const char *path)
{
	struct config *c = obj;

	return plugins_map(ld, k, v, path, &c->plugins, &c->n_plugins, c);
}

/* capture: */

static int cap_payload(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		       const char *path)
{
	struct config *c = obj;
	uint64_t n;
	int rc = get_uint(ld, k, v, path, CFG_PAYLOAD_MIN, CFG_PAYLOAD_MAX, &n);

	if (rc == 0)
		c->payload_cap = (uint32_t)n;
	return rc < 0 ? -1 : 0;
}

/* capture.shed_percent: ring fill where shedding starts (101..: never). */
static int cap_shed(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		    const char *path)
{
	struct config *c = obj;
	uint64_t n;
	int rc = get_uint(ld, k, v, path, 10, 101, &n);

	if (rc == 0)
		c->shed_percent = (uint32_t)n;
	return rc < 0 ? -1 : 0;
}

/* capture.budget_bytes: a process's share per 100 ms under pressure. */
static int cap_budget(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		      const char *path)
{
	struct config *c = obj;
	uint64_t n;
	int rc = get_uint(ld, k, v, path, 4096, CFG_RINGBUF_MAX, &n);

	if (rc == 0)
		c->budget_bytes = (uint32_t)n;
	return rc < 0 ? -1 : 0;
}

/* capture.max_connections: the kernel's connection table. */
static int cap_maxconns(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			const char *path)
{
	struct config *c = obj;
	uint64_t n;
	int rc = get_uint(ld, k, v, path, 1024, 4194304, &n);

	if (rc == 0)
		c->max_connections = (uint32_t)n;
	return rc < 0 ? -1 : 0;
}

/* capture.tls_shared_uprobes: false keeps TLS uprobes per process even for
 * processes that fork (their children are then attached by discovery). */
static int cap_tls_shared(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			  const char *path)
{
	struct config *c = obj;
	bool shared = true;
	int rc = get_bool(ld, k, v, path, &shared);

	if (rc == 0)
		c->tls_per_process = !shared;
	return rc < 0 ? -1 : 0;
}

static int cap_ringbuf(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		       const char *path)
{
	struct config *c = obj;
	uint64_t n;
	int rc = get_uint(ld, k, v, path, CFG_RINGBUF_MIN, CFG_RINGBUF_MAX, &n);

	if (rc < 0)
		return -1;
	if (rc > 0)
		return 0;
	if (n & (n - 1))
		return fail(ld, v, "%s must be a power of two (like 8388608), not %llu", path,
			    (unsigned long long)n);
	c->ringbuf_bytes = (uint32_t)n;
	return 0;
}

static const struct field capture_fields[] = {
	{ "payload_cap", cap_payload },       { "ringbuf_bytes", cap_ringbuf },
	{ "shed_percent", cap_shed },         { "budget_bytes", cap_budget },
	{ "max_connections", cap_maxconns },  { "tls_shared_uprobes", cap_tls_shared },
	{ NULL, NULL },
};

static int top_capture(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		       const char *path)
{
	return walk_map(ld, k, v, path, capture_fields, obj);
}

/* export.prometheus: */

static int prom_port(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		     const char *path)
{
	struct config *c = obj;
	uint64_t n;
	int rc = get_uint(ld, k, v, path, 0, 65535, &n);

	if (rc == 0)
		c->prom_port = (uint16_t)n;
	return rc < 0 ? -1 : 0;
}

static int prom_address(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			const char *path)
{
	struct config *c = obj;
	char q[QLEN + 1];

	if (set_string(ld, k, v, path, &c->prom_address) < 0)
		return -1;
	if (c->prom_address && strpbrk(c->prom_address, " \t/"))
		return fail(ld, v, "%s: %s is not an address (like 127.0.0.1, 0.0.0.0 or ::1)",
			    path, cfg_qs(q, c->prom_address));
	return 0;
}

static const struct field prom_fields[] = {
	{ "port", prom_port }, { "address", prom_address }, { NULL, NULL },
};

/* export.otlp: */

static int otlp_endpoint(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			 const char *path)
{
	return set_url(ld, k, v, path, &((struct otlp_cfg *)obj)->endpoint);
}

static int otlp_traces(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		       const char *path)
{
	return set_url(ld, k, v, path, &((struct otlp_cfg *)obj)->traces_endpoint);
}

static int otlp_metrics(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			const char *path)
{
	return set_url(ld, k, v, path, &((struct otlp_cfg *)obj)->metrics_endpoint);
}

static int otlp_protocol(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			 const char *path)
{
	struct otlp_cfg *o = obj;
	char why[WHY];
	const char *s;
	int val;

	if (is_null(v))
		return 0;
	if (scalar(ld, k, v, path, "a single value", &s) < 0)
		return -1;
	if (cfg_parse_protocol(s, &val, why, sizeof(why)) < 0)
		return fail_why(ld, v, path, why);
	o->protocol = (enum otlp_proto)val;
	return 0;
}

static int otlp_headers(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			const char *path)
{
	struct otlp_cfg *o = obj;

	return pairs_map(ld, k, v, path, &o->headers, &o->n_headers, true);
}

static int otlp_compression(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			    const char *path)
{
	struct otlp_cfg *o = obj;
	int val;
	int rc = get_enum(ld, k, v, path, cfg_compressions, &val);

	if (rc == 0)
		o->gzip = val;
	return rc < 0 ? -1 : 0;
}

static int otlp_interval(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			 const char *path)
{
	return set_duration(ld, k, v, path, &((struct otlp_cfg *)obj)->interval_ms);
}

static int otlp_timeout(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			const char *path)
{
	return set_duration(ld, k, v, path, &((struct otlp_cfg *)obj)->timeout_ms);
}

static int otlp_temporality(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			    const char *path)
{
	struct otlp_cfg *o = obj;
	int val;
	int rc = get_enum(ld, k, v, path, cfg_temporalities, &val);

	if (rc == 0)
		o->temporality = (enum temporality)val;
	return rc < 0 ? -1 : 0;
}

static int otlp_queue(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		      const char *path)
{
	struct otlp_cfg *o = obj;
	uint64_t n;
	int rc = get_uint(ld, k, v, path, 1, CFG_QUEUE_MAX, &n);

	if (rc == 0)
		o->queue_size = (uint32_t)n;
	return rc < 0 ? -1 : 0;
}

static const struct field otlp_fields[] = {
	{ "endpoint", otlp_endpoint },       { "traces_endpoint", otlp_traces },
	{ "metrics_endpoint", otlp_metrics }, { "protocol", otlp_protocol },
	{ "headers", otlp_headers },         { "compression", otlp_compression },
	{ "interval_ms", otlp_interval },    { "temporality", otlp_temporality },
	{ "timeout_ms", otlp_timeout },      { "queue_size", otlp_queue },
	{ NULL, NULL },
};

/* export: */

static int exp_print(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		     const char *path)
{
	struct config *c = obj;
	int val;
	int rc = get_enum(ld, k, v, path, cfg_print_modes, &val);

	if (rc == 0)
		c->print = (enum print_mode)val;
	return rc < 0 ? -1 : 0;
}

static int exp_prometheus(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			  const char *path)
{
	return walk_map(ld, k, v, path, prom_fields, obj);
}

static int exp_otlp(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		    const char *path)
{
	struct config *c = obj;

	return walk_map(ld, k, v, path, otlp_fields, &c->otlp);
}

static const struct field export_fields[] = {
	{ "print", exp_print }, { "prometheus", exp_prometheus }, { "otlp", exp_otlp },
	{ NULL, NULL },
};

static int top_export(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
		      const char *path)
{
	return walk_map(ld, k, v, path, export_fields, obj);
}

/* resource: */

static int res_attributes(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			  const char *path)
{
	struct config *c = obj;

	return pairs_map(ld, k, v, path, &c->resource_attrs, &c->n_resource_attrs, false);
}

static const struct field resource_fields[] = {
	{ "attributes", res_attributes }, { NULL, NULL },
};

static int top_resource(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			const char *path)
{
	return walk_map(ld, k, v, path, resource_fields, obj);
}

static int top_service_name(struct loader *ld, void *obj, yaml_node_t *k, yaml_node_t *v,
			    const char *path)
{
	struct config *c = obj;

	return set_string(ld, k, v, path, &c->service_name);
}

static const struct field top_fields[] = {
	{ "services", top_services }, { "plugins", top_plugins },
	{ "capture", top_capture },   { "export", top_export },
	{ "resource", top_resource }, { "service_name", top_service_name },
	{ NULL, NULL },
};

static int load_root(struct loader *ld, struct config *c, yaml_node_t *root)
{
	if (is_null(root))
		return 0;
	if (root->type != YAML_MAPPING_NODE)
		return fail(ld, root, "the top level must be a map of settings (services:, "
			    "export:, ...), not %s", kind(root));
	return walk_map(ld, root, root, "", top_fields, c);
}

/* libyaml's own message, with its line and a hint for the classic tab. */
static int syntax_error(struct loader *ld, const yaml_parser_t *p, const char *buf, size_t len)
{
	size_t off, i;
	int line = 1;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return fail_line(ld, 1, "out of memory while parsing");
	case YAML_READER_ERROR:
		off = p->problem_offset < len ? p->problem_offset : len;
		for (i = 0; i < off; i++)
			line += buf[i] == '\n';
		return fail_line(ld, line, "YAML: %s (byte %zu)",
				 p->problem ? p->problem : "cannot read the input", p->problem_offset);
	default:
		break;
	}
	off = p->problem_mark.index;
	if (p->context)
		return fail_line(ld, (int)p->problem_mark.line + 1, "YAML syntax error: %s (%s at line %d)%s",
				 p->problem ? p->problem : "unknown", p->context,
				 (int)p->context_mark.line + 1,
				 off < len && buf[off] == '\t'
					 ? "; tabs are not allowed for indentation, use spaces" : "");
	return fail_line(ld, (int)p->problem_mark.line + 1, "YAML syntax error: %s%s",
			 p->problem ? p->problem : "unknown",
			 off < len && buf[off] == '\t'
				 ? "; tabs are not allowed for indentation, use spaces" : "");
}

/* libyaml's scanner slows down quadratically with flow nesting depth (a
 * line of 200000 '[' takes minutes) and its loader builds whatever it is
 * given, so a first pass over the events refuses deep nesting, and reports
 * syntax errors, before any document is built. */
static int precheck(struct loader *ld, const char *yaml, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int depth = 0, rc = -1;

	if (!yaml_parser_initialize(&p))
		return fail_line(ld, 1, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	for (;;) {
		yaml_event_type_t type;
		int line;

		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(ld, &p, yaml, len);
			break;
		}
		type = ev.type;
		line = (int)ev.start_mark.line + 1;
		yaml_event_delete(&ev);
		if (type == YAML_STREAM_END_EVENT) {
			rc = 0;
			break;
		}
		if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT)
			depth--;
		if (type != YAML_SEQUENCE_START_EVENT && type != YAML_MAPPING_START_EVENT)
			continue;
		if (++depth > CFG_MAX_DEPTH) {
			fail_line(ld, line, "nesting deeper than %d levels", CFG_MAX_DEPTH);
			break;
		}
	}
	yaml_parser_delete(&p);
	return rc;
}

/* Borrows yaml and name. On error c holds what was parsed so far; the caller
 * still owns it and releases it with config_free(). */
int config_load_string(struct config *c, const char *yaml, size_t len, const char *name,
		       char *err, size_t errlen)
{
	struct loader ld = { .name = name ? name : "<config>", .err = err, .errlen = errlen };
	yaml_document_t doc, extra;
	bool have_doc = false;
	yaml_parser_t parser;
	yaml_node_t *root;
	int rc = -1;

	if (err && errlen)
		err[0] = '\0';
	if (!yaml) {
		yaml = "";
		len = 0;
	}
	if (precheck(&ld, yaml, len) < 0)
		return -1;
	if (!yaml_parser_initialize(&parser))
		return fail_line(&ld, 1, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(&ld, &parser, yaml, len);
		goto out;
	}
	have_doc = true;
	/* A second document is refused rather than silently ignored, and its
	 * syntax errors are reported before any schema error. */
	if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(&ld, &parser, yaml, len);
		goto out;
	}
	ld.doc = &extra;
	root = yaml_document_get_root_node(&extra);
	if (root && !is_null(root)) {
		fail(&ld, root, "only one YAML document is allowed (a second one starts here)");
		yaml_document_delete(&extra);
		goto out;
	}
	yaml_document_delete(&extra);
	ld.doc = &doc;
	ld.budget = (size_t)(doc.nodes.top - doc.nodes.start) + CFG_ALIAS_BUDGET;
	root = yaml_document_get_root_node(&doc);
	if (root && load_root(&ld, c, root) < 0)
		goto out;
	rc = 0;
out:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

/* Reads the whole file (at most CFG_MAX_FILE bytes) into a new buffer. */
static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	size_t cap = 4096, n = 0;
	char *b = NULL, *p;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t r;

		if (!b || n == cap) {
			cap = b ? cap * 2 : cap;
			p = realloc(b, cap);
			if (!p) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto out;
			}
			b = p;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CFG_MAX_FILE) {
			snprintf(err, errlen, "%s: larger than %u MiB, not a configuration file",
				 path, CFG_MAX_FILE >> 20);
			goto out;
		}
	}
	*buf = b;
	*len = n;
	b = NULL;
	rc = 0;
out:
	free(b);
	close(fd);
	return rc;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	char dummy[1];
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (read_file(path, &buf, &len, err, errlen) < 0)
		return -1;
	rc = config_load_string(c, buf, len, path, err, errlen);
	free(buf);
	return rc;
}

