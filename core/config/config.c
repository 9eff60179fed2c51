/*
 * config.c - the parts of struct config every front end shares: port lists
 * and plugin-setting lookup. Loading is in yaml.c (file), env.c
 * (environment) and flags.c (command line); config_resolve() in flags.c
 * applies them in the one order of precedence.
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


/* Appends to *out (caller frees with free()); on error *out is unchanged. */
int config_parse_ports(const char *s, struct port_range **out, size_t *n)
{
	char why[WHY];

	if (!s || !out || !n)
		return -1;
	return cfg_parse_ports(s, out, n, why, sizeof(why));
}

/* The returned kv is borrowed from c or svc. */
const struct kv *config_plugin_get(const struct config *c, const struct service_cfg *svc,
				   const char *plugin, const char *key)
{
	const struct plugin_settings *ps;
	size_t i, j;

	if (!plugin || !key)
		return NULL;
	if (svc) {
		i = cfg_settings_index(svc->plugins, svc->n_plugins, plugin);
		ps = i < svc->n_plugins ? &svc->plugins[i] : NULL;
		j = ps ? cfg_kv_index(ps->kv, ps->n_kv, key, false) : 0;
		if (ps && j < ps->n_kv)
			return &ps->kv[j];
	}
	if (!c)
		return NULL;
	i = cfg_settings_index(c->plugins, c->n_plugins, plugin);
	if (i == c->n_plugins)
		return NULL;
	ps = &c->plugins[i];
	j = cfg_kv_index(ps->kv, ps->n_kv, key, false);
	return j < ps->n_kv ? &ps->kv[j] : NULL;
}

int config_plugin_set(struct config *c, struct service_cfg *svc, const char *plugin,
                      const char *key, const char *const *vals, size_t n)
{
	struct plugin_settings *ps;
	struct kv *kv;

	if (!plugin || !key || (n && !vals))
		return -1;
	if (svc)
		ps = cfg_settings_get(&svc->plugins, &svc->n_plugins, svc->n_plugins, plugin);
	else
		ps = cfg_settings_get(&c->plugins, &c->n_plugins, c->n_plugins, plugin);
	if (!ps)
		return -1;
	kv = cfg_kv_get(&ps->kv, &ps->n_kv, ps->n_kv, key, false);
	if (!kv)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (cfg_str_push(&kv->values, &kv->n_values, vals[i], strlen(vals[i])))
			return -1;
	return 0;
}

void config_service_free(struct service_cfg *s)
{
	cfg_service_free(s);
}

/* A regex token: a literal character, or anything else. */
struct re_tok {
	char c;
	bool literal;
	bool alternation; /* '|' outside parentheses and brackets */
};

static size_t re_tokens(const char *re, struct re_tok *t, size_t max)
{
	size_t n = 0;
	int depth = 0;

	for (const char *p = re; *p && n < max; p++) {
		struct re_tok k = {.c = *p};

		if (*p == '\\' && p[1]) {
			p++;
			k.c = *p;
			/* \. \+ ... are literals; \w \d ... are classes */
			k.literal = !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			              (*p >= '0' && *p <= '9'));
		} else if (*p == '[') {
			const char *q = p + 1;
			if (*q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q && *q != ']')
				q++;
			if (!*q)
				return 0;
			p = q;
			k.c = ']';
		} else if (*p == '(') {
			depth++;
		} else if (*p == ')') {
			depth--;
		} else if (*p == '|') {
			k.alternation = depth == 0;
		} else if (!strchr(".*+?{}^$", *p)) {
			k.literal = true;
		}
		t[n++] = k;
	}
	return n;
}

int config_exe_suffix(const char *re, char *out, size_t outlen)
{
	struct re_tok t[1100];
	size_t n, i, start, len;

	out[0] = 0;
	if (!re || strlen(re) > 1024)
		return 0;
	n = re_tokens(re, t, sizeof(t) / sizeof(t[0]));
	if (n < 2 || t[n - 1].literal || t[n - 1].c != '$')
		return 0;
	for (i = 0; i < n; i++)
		if (t[i].alternation)
			return 0;
	start = n - 1;
	while (start > 0 && t[start - 1].literal)
		start--;
	len = n - 1 - start;
	if (!len)
		return 0;
	/* Keep the end: a shorter ending is still necessary for a match. */
	if (len > outlen - 1) {
		start += len - (outlen - 1);
		len = outlen - 1;
	}
	for (i = 0; i < len; i++)
		out[i] = t[start + i].c;
	out[len] = 0;
	return 1;
}
