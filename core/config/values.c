/*
 * values.c - see values.h: value checks (numbers, durations, enums, URLs,
 * regexes, port lists, k=v lists), quoting for messages, and the arrays,
 * strings and key/value lists struct config is made of.
 */
#define _GNU_SOURCE
#include "base/hex.h"
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


const struct name_val cfg_print_modes[] = {
	{ "json", PRINT_JSON }, { "text", PRINT_TEXT }, { "none", PRINT_NONE }, { NULL, 0 },
};
const struct name_val cfg_otlp_protos[] = {
	{ "http/protobuf", OTLP_PROTOBUF }, { "http/json", OTLP_JSON }, { NULL, 0 },
};
/* lowmemory (OTel SDK spec) is delta for counters and histograms, which is
 * all sonde exports, so it maps to delta. */
const struct name_val cfg_temporalities[] = {
	{ "cumulative", TEMP_CUMULATIVE }, { "delta", TEMP_DELTA },
	{ "lowmemory", TEMP_DELTA }, { NULL, 0 },
};
const struct name_val cfg_compressions[] = {
	{ "gzip", 1 }, { "none", 0 }, { NULL, 0 },
};

/* ---------------------------------------------------------------------- */
/* Small helpers: quoting for messages, arrays, strings, kv lists          */

/* Writes s[0..len) into buf (QLEN + 1 bytes) between q characters, with
 * control bytes escaped and long values cut; returns buf. */
const char *cfg_quote(char *buf, const char *s, size_t len, char q)
{
	size_t o = 0, i;

	buf[o++] = q;
	for (i = 0; i < len && o < QLEN - 8; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == (unsigned char)q || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(buf + o, QLEN - o, "\\x%02x", ch);
		} else {
			buf[o++] = (char)ch;
		}
	}
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = q;
	buf[o] = '\0';
	return buf;
}

const char *cfg_qs(char *buf, const char *s)
{
	return cfg_quote(buf, s, strlen(s), '"');
}

/* Messages that start with "must" read as "PATH must ...", others as
 * "PATH: ...". */
const char *cfg_sep_for(const char *why)
{
	return strncmp(why, "must ", 5) ? ": " : " ";
}

/* Returns arr with room for n + extra elements of `size` bytes, the extra
 * ones zeroed, or NULL when out of memory (arr is then unchanged). The
 * capacity is read back from the allocator, so arrays that other code grows
 * with exact reallocs stay safe, and appending one by one is amortised O(1)
 * (a 1 MB list would otherwise be copied quadratically). */
void *cfg_reserve(void *arr, size_t n, size_t extra, size_t size)
{
	size_t need, cap;
	char *p = arr;

	if (extra > SIZE_MAX / size - n)
		return NULL;
	need = (n + extra) * size;
	if (!p || malloc_usable_size(p) < need) {
		cap = need < 64 ? 64 : need;
		if (n <= SIZE_MAX / size / 2 && cap < 2 * n * size)
			cap = 2 * n * size;
		p = realloc(arr, cap);
		if (!p)
			return NULL;
	}
	memset(p + n * size, 0, extra * size);
	return p;
}

void *cfg_grow(void *arr, size_t n, size_t size)
{
	return cfg_reserve(arr, n, 1, size);
}

int cfg_str_push(char ***arr, size_t *n, const char *s, size_t len)
{
	char **p = cfg_grow(*arr, *n, sizeof(**arr));

	if (!p)
		return -1;
	*arr = p;
	p[*n] = strndup(s, len);
	if (!p[*n])
		return -1;
	(*n)++;
	return 0;
}

void cfg_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Replaces *dst with a copy of s; -1 when out of memory (*dst kept). */
int cfg_str_set(char **dst, const char *s)
{
	char *d = strdup(s);

	if (!d)
		return -1;
	free(*dst);
	*dst = d;
	return 0;
}

void cfg_kv_clear_values(struct kv *kv)
{
	cfg_strv_free(kv->values, kv->n_values);
	kv->values = NULL;
	kv->n_values = 0;
}

void cfg_kv_free(struct kv *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(a[i].key);
		cfg_kv_clear_values(&a[i]);
	}
	free(a);
}

/* Index of key in a[0..n), or n when absent. */
size_t cfg_kv_index(const struct kv *a, size_t n, const char *key, bool icase)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (icase ? !strcasecmp(a[i].key, key) : !strcmp(a[i].key, key))
			break;
	}
	return i;
}

/* Finds key among the first `known` entries or appends it with no values;
 * existing values are dropped, so a later source replaces an earlier one.
 * A YAML map walk passes the count from before the map (its own keys are
 * unique), which keeps big maps linear. NULL when out of memory. */
struct kv *cfg_kv_get(struct kv **a, size_t *n, size_t known, const char *key, bool icase)
{
	size_t i = cfg_kv_index(*a, known, key, icase);
	struct kv *p;

	if (i < known) {
		cfg_kv_clear_values(&(*a)[i]);
		return &(*a)[i];
	}
	p = cfg_grow(*a, *n, sizeof(**a));
	if (!p)
		return NULL;
	*a = p;
	p[*n].key = strdup(key);
	if (!p[*n].key)
		return NULL;
	return &p[(*n)++];
}

/* key = value, exactly one value. */
int cfg_kv_set1(struct kv **a, size_t *n, size_t known, const char *key, const char *val,
		   bool icase)
{
	struct kv *kv = cfg_kv_get(a, n, known, key, icase);

	if (!kv)
		return -1;
	return cfg_str_push(&kv->values, &kv->n_values, val, strlen(val));
}

void cfg_settings_free(struct plugin_settings *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(a[i].plugin);
		cfg_kv_free(a[i].kv, a[i].n_kv);
	}
	free(a);
}

/* Index of plugin in a[0..n), or n when absent. */
size_t cfg_settings_index(const struct plugin_settings *a, size_t n, const char *plugin)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!strcmp(a[i].plugin, plugin))
			break;
	}
	return i;
}

/* Finds or appends the settings of `plugin`; NULL when out of memory. */
/* Finds plugin among the first `known` entries (as cfg_kv_get) or appends it. */
struct plugin_settings *cfg_settings_get(struct plugin_settings **a, size_t *n, size_t known,
					    const char *plugin)
{
	size_t i = cfg_settings_index(*a, known, plugin);
	struct plugin_settings *p;

	if (i < known)
		return &(*a)[i];
	p = cfg_grow(*a, *n, sizeof(**a));
	if (!p)
		return NULL;
	*a = p;
	p[*n].plugin = strdup(plugin);
	if (!p[*n].plugin)
		return NULL;
	return &p[(*n)++];
}

void cfg_service_free(struct service_cfg *s)
{
	free(s->name);
	free(s->ports);
	free(s->exe_path);
	free(s->pids);
	cfg_strv_free(s->protocols, s->n_protocols);
	cfg_strv_free(s->routes, s->n_routes);
	cfg_settings_free(s->plugins, s->n_plugins);
}

/* Plugin, protocol names: letters, digits, '_', '-', '.'. */
bool cfg_valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && !strchr("_-.", *s))
			return false;
	}
	return true;
}

/* RFC 9110 token characters, the alphabet of HTTP header names. */
bool cfg_valid_header_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	}
	return true;
}

/* Header values must not carry CR, LF or other control bytes (a header
 * injected through the config would be sent on every export). */
bool cfg_valid_header_value(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------------- */
/* Value parsers shared by the file and the environment                    */

static bool all_digits(const char *s, size_t len)
{
	size_t i;

	if (!len)
		return false;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* Decimal digits s[0..len) into *out; false when it is not a number or above
 * UINT64_MAX / 16. */
static bool digits_value(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!all_digits(s, len))
		return false;
	for (i = 0; i < len; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT64_MAX / 16)
			return false;
	}
	*out = v;
	return true;
}

int cfg_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
		      size_t wn)
{
	char q[QLEN + 1];
	size_t len = strlen(s);
	uint64_t v;

	if (s[0] == '-' && all_digits(s + 1, len - 1)) {
		snprintf(why, wn, "must not be negative (got %s)", cfg_qs(q, s));
		return -1;
	}
	if (!all_digits(s, len)) {
		snprintf(why, wn, "%s is not a number", cfg_qs(q, s));
		return -1;
	}
	if (!digits_value(s, len, &v) || v < min || v > max) {
		snprintf(why, wn, "must be between %llu and %llu (got %s)", (unsigned long long)min,
			 (unsigned long long)max, cfg_qs(q, s));
		return -1;
	}
	*out = v;
	return 0;
}

/* "500", "500ms", "30s", "1m", "1h" -> milliseconds, 1 .. UINT32_MAX. */
int cfg_parse_duration(const char *s, uint32_t *ms, char *why, size_t wn)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	char q[QLEN + 1];
	size_t n = strspn(s, "0123456789");
	const char *u = s + n;
	uint64_t v;
	size_t i;

	while (*u == ' ')
		u++;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcmp(u, units[i].unit))
			break;
	}
	if (i == sizeof(units) / sizeof(units[0]) || !n) {
		snprintf(why, wn, "%s is not a duration (milliseconds, or like 500ms, 30s, 1m)",
			 cfg_qs(q, s));
		return -1;
	}
	if (!digits_value(s, n, &v) || v > UINT32_MAX / units[i].mult) {
		snprintf(why, wn, "%s is too long (at most 49 days)", cfg_qs(q, s));
		return -1;
	}
	if (!v) {
		snprintf(why, wn, "must be longer than 0 (got %s)", cfg_qs(q, s));
		return -1;
	}
	*ms = (uint32_t)(v * units[i].mult);
	return 0;
}

int cfg_parse_enum(const char *s, const struct name_val *t, bool icase, int *out, char *why,
		      size_t wn)
{
	char list[128] = "", q[QLEN + 1];
	size_t i;

	for (i = 0; t[i].name; i++) {
		if (icase ? !strcasecmp(s, t[i].name) : !strcmp(s, t[i].name)) {
			*out = t[i].val;
			return 0;
		}
	}
	for (i = 0; t[i].name; i++) {
		if (i)
			strcat(list, ", ");
		strcat(list, t[i].name);
	}
	snprintf(why, wn, "must be one of %s (got %s)", list, cfg_qs(q, s));
	return -1;
}

int cfg_parse_protocol(const char *s, int *out, char *why, size_t wn)
{
	char q[QLEN + 1];

	if (!strcasecmp(s, "grpc")) {
		/* sonde's exporter speaks OTLP/HTTP only */
		snprintf(why, wn, "%s is not supported (use http/protobuf or http/json)",
			 cfg_qs(q, s));
		return -1;
	}
	return cfg_parse_enum(s, cfg_otlp_protos, false, out, why, wn);
}

int cfg_check_url(const char *s, char *why, size_t wn)
{
	char q[QLEN + 1];
	const char *host = NULL;
	const char *p;

	if (!strncasecmp(s, "http://", 7))
		host = s + 7;
	else if (!strncasecmp(s, "https://", 8))
		host = s + 8;
	if (!host || !*host || *host == '/') {
		snprintf(why, wn, "%s is not an http:// or https:// URL", cfg_qs(q, s));
		return -1;
	}
	for (p = s; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			snprintf(why, wn, "%s contains a space or a control character", cfg_qs(q, s));
			return -1;
		}
	}
	return 0;
}

/* Length of the bracket expression at s ('[' ... ']'), or 1 if unclosed. */
static size_t bracket_len(const char *s)
{
	size_t i = 1;

	if (s[i] == '^')
		i++;
	if (s[i] == ']')
		i++;
	for (; s[i]; i++) {
		if (s[i] == '[' && (s[i + 1] == ':' || s[i + 1] == '.' || s[i + 1] == '=')) {
			const char *end = strchr(s + i + 2, s[i + 1]);
			if (end && end[1] == ']')
				i = (size_t)(end + 1 - s);
			continue;
		}
		if (s[i] == ']')
			return i + 1;
	}
	return 1;
}

/* How many copies of the repeated part a quantifier at s makes, and its
 * length: '+' (x+ is compiled as xx*) 2, '*' and '?' 1, {n,m} max(n,m)+1. */
static uint64_t quantifier(const char *s, size_t *len)
{
	uint64_t lo = 0, hi = 0;
	size_t a, b = 0;

	*len = 1;
	if (*s == '+')
		return 2;
	if (*s == '*' || *s == '?')
		return 1;
	if (*s != '{')
		return 0;
	a = strspn(s + 1, "0123456789");
	if (!a || a > 9)
		return 0;
	digits_value(s + 1, a, &lo);
	if (s[1 + a] == ',') {
		b = strspn(s + 2 + a, "0123456789");
		if (b > 9)
			return 0;
		if (b)
			digits_value(s + 2 + a, b, &hi);
		a += 1 + b;
	}
	if (s[1 + a] != '}')
		return 0;
	*len = a + 2;
	return (hi > lo ? hi : lo) + 1;
}

/* An upper bound on the size of the tree glibc's regcomp builds: it copies
 * a repeated part once per repetition, eagerly, so repetitions multiply
 * when they nest ("((a{9}){9}){9}") or stack ("a++++"), and one line of a
 * config file could take gigabytes. Saturates just past the limit. */
static uint64_t regex_cost(const char *s)
{
	uint64_t stack[64], seq = 0, last = 0;
	size_t depth = 0;

	while (*s && seq <= CFG_REGEX_REPEAT) {
		size_t len = 1;
		uint64_t f;

		if (*s == '(' && depth < 64) {
			stack[depth++] = seq;
			seq = 0;
			last = 0;
		} else if (*s == ')' && depth) {
			last = seq ? seq : 1;
			seq = stack[--depth] + last;
		} else if (*s == '|') {
			last = 0;
		} else if ((f = quantifier(s, &len))) {
			seq += last * (f - 1);
			last *= f;
		} else {
			if (*s == '[')
				len = bracket_len(s);
			else if (*s == '\\' && s[1])
				len = 2;
			seq += 1;
			last = 1;
		}
		s += len;
	}
	while (depth)
		seq += stack[--depth];
	return seq;
}

int cfg_check_regex(const char *s, char *why, size_t wn)
{
	char q[QLEN + 1], msg[128];
	regex_t re;
	int rc;

	if (strlen(s) > CFG_REGEX_MAX) {
		snprintf(why, wn, "must be at most %d characters long", CFG_REGEX_MAX);
		return -1;
	}
	if (regex_cost(s) > CFG_REGEX_REPEAT) {
		snprintf(why, wn, "%s repeats too much (nested or stacked repetitions multiply past %d)", cfg_qs(q, s),
			 CFG_REGEX_REPEAT);
		return -1;
	}
	rc = regcomp(&re, s, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		regerror(rc, &re, msg, sizeof(msg));
		snprintf(why, wn, "%s is not a valid regular expression: %s", cfg_qs(q, s), msg);
		return -1;
	}
	regfree(&re);
	return 0;
}

/* One port number from s[0..len): 0, or -1 when it is not a number, -2 when
 * it is outside 1..65535. */
static int port_value(const char *s, size_t len, uint64_t *v)
{
	while (len && s[0] == ' ')
		s++, len--;
	while (len && s[len - 1] == ' ')
		len--;
	if (!all_digits(s, len))
		return -1;
	if (!digits_value(s, len, v) || !*v || *v > 65535)
		return -2;
	return 0;
}

/* One port "8080" or range "8000-8100" from tok[0..len), spaces trimmed. */
static int parse_port_token(const char *tok, size_t len, struct port_range *r, char *why,
			    size_t wn)
{
	char q[QLEN + 1];
	const char *dash;
	uint64_t lo = 0, hi = 0;
	int rc;

	while (len && tok[0] == ' ')
		tok++, len--;
	while (len && tok[len - 1] == ' ')
		len--;
	if (!len) {
		snprintf(why, wn, "empty entry in a port list (like 80,443,8000-8100)");
		return -1;
	}
	if (tok[0] == '-' && len > 1 && isdigit((unsigned char)tok[1])) {
		snprintf(why, wn, "%s is negative: ports are 1-65535", cfg_quote(q, tok, len, '"'));
		return -1;
	}
	dash = memchr(tok, '-', len);
	rc = port_value(tok, dash ? (size_t)(dash - tok) : len, &lo);
	hi = lo;
	if (!rc && dash)
		rc = port_value(dash + 1, len - (size_t)(dash + 1 - tok), &hi);
	if (rc == -1) {
		snprintf(why, wn, "%s is not a port or a range (like 8000-8100)",
			 cfg_quote(q, tok, len, '"'));
		return -1;
	}
	if (rc == -2) {
		snprintf(why, wn, "%s is out of range: ports are 1-65535", cfg_quote(q, tok, len, '"'));
		return -1;
	}
	if (lo > hi) {
		snprintf(why, wn, "%s is not a range: %llu is above %llu", cfg_quote(q, tok, len, '"'),
			 (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	r->lo = (uint16_t)lo;
	r->hi = (uint16_t)hi;
	return 0;
}

/* "80,443,8000-8100" appended to *out; nothing is appended on error. */
int cfg_parse_ports(const char *s, struct port_range **out, size_t *n, char *why, size_t wn)
{
	struct port_range *tmp = NULL, *p;
	size_t nt = 0, i;
	int rc = -1;

	for (;;) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		struct port_range r;

		if (parse_port_token(s, len, &r, why, wn) < 0)
			goto out;
		p = cfg_grow(tmp, nt, sizeof(*tmp));
		if (!p) {
			snprintf(why, wn, "out of memory");
			goto out;
		}
		tmp = p;
		tmp[nt++] = r;
		if (!end)
			break;
		s = end + 1;
	}
	p = cfg_reserve(*out, *n, nt, sizeof(*p));
	if (!p) {
		snprintf(why, wn, "out of memory");
		goto out;
	}
	for (i = 0; i < nt; i++)
		p[*n + i] = tmp[i];
	*out = p;
	*n += nt;
	rc = 0;
out:
	free(tmp);
	return rc;
}

/* Percent-decodes s[0..len) (RFC 3986; '+' stays '+') into a new string
 * owned by the caller; NULL with a reason on bad input. */
char *cfg_pct_decode(const char *s, size_t len, char *why, size_t wn)
{
	char q[QLEN + 1];
	char *out = malloc(len + 1);
	size_t i, o = 0;

	if (!out) {
		snprintf(why, wn, "out of memory");
		return NULL;
	}
	for (i = 0; i < len; i++) {
		int h, l;

		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		h = i + 1 < len ? hex_digit(s[i + 1], false) : -1;
		l = i + 2 < len ? hex_digit(s[i + 2], false) : -1;
		if (h < 0 || l < 0) {
			snprintf(why, wn, "%s has a bad percent escape (use %%XX, two hex digits)",
				 cfg_quote(q, s, len, '"'));
			free(out);
			return NULL;
		}
		if (h == 0 && l == 0) {
			snprintf(why, wn, "%s decodes to a NUL byte", cfg_quote(q, s, len, '"'));
			free(out);
			return NULL;
		}
		out[o++] = (char)(h * 16 + l);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

void cfg_trim(const char **s, size_t *len)
{
	while (*len && isspace((unsigned char)**s))
		(*s)++, (*len)--;
	while (*len && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* "k=v,k2=v2" (W3C baggage-like, percent-decoded) into *arr, replacing keys
 * already there. Header mode compares keys case-insensitively and checks
 * names and values for HTTP. */
int cfg_parse_pairs(const char *s, struct kv **arr, size_t *n, bool headers, char *why,
		       size_t wn)
{
	char q[QLEN + 1];
	char *key = NULL, *val = NULL;
	int rc = -1;

	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		const char *e = s, *k, *eq, *v;
		size_t klen, vlen;

		cfg_trim(&e, &len);
		s = end ? end + 1 : s + strlen(s);
		if (!len)
			continue;
		eq = memchr(e, '=', len);
		if (!eq) {
			snprintf(why, wn, "%s has no '=' (expected key=value,key2=value2)",
				 cfg_quote(q, e, len, '"'));
			goto out;
		}
		k = e;
		klen = (size_t)(eq - e);
		v = eq + 1;
		vlen = len - klen - 1;
		cfg_trim(&k, &klen);
		cfg_trim(&v, &vlen);
		key = cfg_pct_decode(k, klen, why, wn);
		if (!key)
			goto out;
		val = cfg_pct_decode(v, vlen, why, wn);
		if (!val)
			goto out;
		if (!*key) {
			snprintf(why, wn, "%s has an empty key", cfg_quote(q, e, len, '"'));
			goto out;
		}
		if (headers && !cfg_valid_header_name(key)) {
			snprintf(why, wn, "%s is not a valid HTTP header name", cfg_qs(q, key));
			goto out;
		}
		if (headers && !cfg_valid_header_value(val)) {
			snprintf(why, wn, "the value of %s contains a control character", cfg_qs(q, key));
			goto out;
		}
		if (cfg_kv_set1(arr, n, *n, key, val, headers) < 0) {
			snprintf(why, wn, "out of memory");
			goto out;
		}
		free(key);
		free(val);
		key = val = NULL;
	}
	rc = 0;
out:
	free(key);
	free(val);
	return rc;
}


void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->print = PRINT_NONE;
	c->prom_address = strdup("127.0.0.1"); /* NULL only when out of memory */
	c->otlp.protocol = OTLP_PROTOBUF;
	c->otlp.interval_ms = 60000;
	c->otlp.timeout_ms = 10000;
	c->otlp.queue_size = 2048;
	c->otlp.temporality = TEMP_CUMULATIVE;
	c->payload_cap = 0;
}

void config_free(struct config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n_services; i++)
		cfg_service_free(&c->services[i]);
	free(c->services);
	cfg_strv_free(c->plugin_dirs, c->n_plugin_dirs);
	cfg_settings_free(c->plugins, c->n_plugins);
	free(c->prom_address);
	free(c->otlp.endpoint);
	free(c->otlp.traces_endpoint);
	free(c->otlp.metrics_endpoint);
	cfg_kv_free(c->otlp.headers, c->otlp.n_headers);
	cfg_kv_free(c->resource_attrs, c->n_resource_attrs);
	free(c->service_name);
	cfg_service_free(&c->cli_service);
	cfg_strv_free(c->cli_plugin_dirs, c->n_cli_plugin_dirs);
	free(c->config_path);
	free(c->record_path);
	free(c->replay_path);
	memset(c, 0, sizeof(*c));
}

