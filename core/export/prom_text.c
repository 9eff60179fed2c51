/*
 * prom_text.c - see prom_text.h.
 *
 * Rendering happens in two steps: a walk of the registry (under its lock)
 * turns every series into finished text lines, keyed by family name and
 * label text; then, outside the lock, families and series are sorted and
 * written. A scrape therefore holds the registry lock only while copying.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "export/prom_text.h"
#include "telemetry/metrics.h"

#define PROM_NAME_MAX 256

/* ---- naming ---------------------------------------------------------- */

struct unit_name {
	const char *ucum, *prom;
};

static const struct unit_name unit_names[] = {
	{ "d", "days" },          { "h", "hours" },         { "min", "minutes" },
	{ "s", "seconds" },       { "ms", "milliseconds" }, { "us", "microseconds" },
	{ "ns", "nanoseconds" },  { "By", "bytes" },        { "KiBy", "kibibytes" },
	{ "MiBy", "mebibytes" },  { "GiBy", "gibibytes" },  { "TiBy", "tibibytes" },
	{ "KBy", "kilobytes" },   { "MBy", "megabytes" },   { "GBy", "gigabytes" },
	{ "TBy", "terabytes" },   { "m", "meters" },        { "V", "volts" },
	{ "A", "amperes" },       { "J", "joules" },        { "W", "watts" },
	{ "g", "grams" },         { "Cel", "celsius" },     { "Hz", "hertz" },
	{ "%", "percent" },
};

static const struct unit_name per_unit_names[] = {
	{ "s", "second" }, { "m", "minute" }, { "h", "hour" },  { "d", "day" },
	{ "w", "week" },   { "mo", "month" }, { "y", "year" },
};

static const char *unit_lookup(const struct unit_name *t, size_t n, const char *u)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t[i].ucum, u) == 0)
			return t[i].prom;
	}
	return u;
}

static bool name_char_ok(char c, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || (colon && c == ':');
}

/*
 * Appends `in` to out[*len], mapping invalid characters to '_' and
 * collapsing runs of '_'. Stops silently when out is full.
 */
static void sanitize_append(const char *in, bool colon, char *out, size_t outlen, size_t *len)
{
	for (; *in; in++) {
		char c = name_char_ok(*in, colon) ? *in : '_';

		if (c == '_' && *len > 0 && out[*len - 1] == '_')
			continue;
		if (*len + 1 >= outlen)
			return;
		out[(*len)++] = c;
		out[*len] = '\0';
	}
}

/* The unit suffix without a leading '_', or "" for none. */
static void unit_suffix(const char *unit, char *out, size_t outlen)
{
	char u[128], *per;
	size_t n = 0, len = 0;
	const char *main_part;

	out[0] = '\0';
	if (!unit)
		return;
	/* Drop {annotations}: "{request}" -> "", "{packet}/s" -> "/s". */
	for (int depth = 0; *unit && n + 1 < sizeof(u); unit++) {
		if (*unit == '{')
			depth++;
		else if (*unit == '}' && depth > 0)
			depth--;
		else if (!depth && *unit != ' ')
			u[n++] = *unit;
	}
	u[n] = '\0';
	if (!u[0] || strcmp(u, "1") == 0)
		return;
	per = strchr(u, '/');
	if (per)
		*per++ = '\0';
	main_part = unit_lookup(unit_names, sizeof(unit_names) / sizeof(unit_names[0]), u);
	if (strcmp(main_part, "1") == 0)
		main_part = "";
	sanitize_append(main_part, false, out, outlen, &len);
	if (per && *per) {
		sanitize_append(len ? "_per_" : "per_", false, out, outlen, &len);
		sanitize_append(unit_lookup(per_unit_names,
		                            sizeof(per_unit_names) / sizeof(per_unit_names[0]), per),
		                false, out, outlen, &len);
	}
	/* Trim stray underscores at both ends. */
	while (len && out[len - 1] == '_')
		out[--len] = '\0';
	if (out[0] == '_')
		memmove(out, out + 1, len--);
}

static bool ends_with_word(const char *s, size_t slen, const char *suffix)
{
	size_t n = strlen(suffix);

	if (n > slen)
		return false;
	if (memcmp(s + slen - n, suffix, n) != 0)
		return false;
	return n == slen || s[slen - n - 1] == '_';
}

int prom_metric_name(const char *otel_name, const char *unit, char *out, size_t outlen)
{
	char suffix[128];
	size_t len = 0, start = 0;

	if (!out || outlen < 2 || !otel_name)
		return -1;
	out[0] = '\0';
	sanitize_append(otel_name, true, out, outlen, &len);
	/* Leading and trailing '_' go. */
	while (start < len && out[start] == '_')
		start++;
	memmove(out, out + start, len - start + 1);
	len -= start;
	while (len && out[len - 1] == '_')
		out[--len] = '\0';
	unit_suffix(unit, suffix, sizeof(suffix));
	if (suffix[0] && !ends_with_word(out, len, suffix)) {
		if (len)
			sanitize_append("_", true, out, outlen, &len);
		sanitize_append(suffix, true, out, outlen, &len);
	}
	if (!len)
		return -1;
	if (out[0] >= '0' && out[0] <= '9') {
		if (len + 2 > outlen)
			len = outlen - 2;
		memmove(out + 1, out, len + 1);
		out[0] = '_';
		out[++len] = '\0';
	}
	return (int)len;
}

int prom_label_name(const char *key, char *out, size_t outlen)
{
	size_t len = 0;

	if (!out || outlen < 2 || !key)
		return -1;
	out[0] = '\0';
	if (key[0] >= '0' && key[0] <= '9')
		sanitize_append("key_", false, out, outlen, &len);
	sanitize_append(key, false, out, outlen, &len);
	if (!len || strcmp(out, "_") == 0)
		return -1;
	return (int)len;
}

/*
 * Prometheus/Go-style float: the fewest significant digits that read back
 * exactly, in plain notation unless the decimal exponent is below -4 or at
 * least 21 (Go's strconv 'g' with precision -1): 10 -> "10", 0.005 ->
 * "0.005", 1e21 -> "1e+21".
 */
static void fmt_double(double v, char *buf, size_t len)
{
	int prec, exp;
	char *e;

	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, len, "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	snprintf(buf, len, "%.*e", prec - 1, v);
	e = strchr(buf, 'e');
	exp = e ? atoi(e + 1) : 0;
	if (exp < -4 || exp >= 21)
		return; /* keep the exponent form, e.g. "1.5e+22", "1e-05" */
	snprintf(buf, len, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
}

/* ---- rendering -------------------------------------------------------- */

struct prom_series {
	char *labels; /* `a="x",b="y"` without braces; may be "" */
	char *body;   /* the sample lines */
};

struct prom_family {
	char name[PROM_NAME_MAX];
	const char *type;
	char *help;
	size_t order;       /* registration order: ties keep the first */
	struct prom_series *series;
	size_t n_series, cap_series;
};

struct prom_walk {
	struct prom_family *fams;
	size_t n_fams, cap_fams;
	struct prom_family *cur; /* the histogram being walked, NULL: skipped */
	size_t cur_index;
	bool have_cur;
	int err;
};

/* Writes s escaped for a label value (quote = true) or a HELP text:
 * backslash, newline and (in labels) double quote are escaped, invalid
 * UTF-8 becomes U+FFFD so one bad byte cannot break the whole scrape. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	while (n) {
		size_t l = utf8_seq_len(p, n);

		if (!l) {
			fputs("\xef\xbf\xbd", f);
			p++;
			n--;
			continue;
		}
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '"' && quote)
			fputs("\\\"", f);
		else
			fwrite(p, 1, l, f);
		p += l;
		n -= l;
	}
}

static void put_header(FILE *f, const char *name, const char *help, const char *type)
{
	if (help && *help) {
		fprintf(f, "# HELP %s ", name);
		put_escaped(f, help, false);
		fputc('\n', f);
	}
	fprintf(f, "# TYPE %s %s\n", name, type);
}

static struct prom_family *family_add(struct prom_walk *w, const char *name, const char *type,
                                      const char *help)
{
	struct prom_family *f;

	if (w->n_fams == w->cap_fams) {
		size_t ncap = w->cap_fams ? 2 * w->cap_fams : 16;
		struct prom_family *n = realloc(w->fams, ncap * sizeof(*n));

		if (!n)
			return NULL;
		w->fams = n;
		w->cap_fams = ncap;
	}
	f = &w->fams[w->n_fams];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->type = type;
	f->order = w->n_fams;
	f->help = strdup(help ? help : "");
	if (!f->help)
		return NULL;
	w->n_fams++;
	return f;
}

static int series_add(struct prom_family *f, char *labels, char *body)
{
	if (f->n_series == f->cap_series) {
		size_t ncap = f->cap_series ? 2 * f->cap_series : 8;
		struct prom_series *n = realloc(f->series, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->series = n;
		f->cap_series = ncap;
	}
	f->series[f->n_series].labels = labels;
	f->series[f->n_series].body = body;
	f->n_series++;
	return 0;
}

/* Label name of key i; "" when it cannot be rendered (invalid, or clashing
 * with service_name, le or an earlier key). */
static void label_name_at(const struct hist_point *p, size_t i, char *out, size_t n)
{
	char other[PROM_NAME_MAX];

	if (prom_label_name(p->attr_keys[i], out, n) < 0 || !strcmp(out, "service_name") ||
	    !strcmp(out, "le")) {
		out[0] = '\0';
		return;
	}
	for (size_t j = 0; j < i; j++) {
		if (prom_label_name(p->attr_keys[j], other, sizeof(other)) >= 0 && !strcmp(out, other)) {
			out[0] = '\0';
			return;
		}
	}
}

static char *point_labels(const struct hist_point *p)
{
	char *buf = NULL, ln[PROM_NAME_MAX];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *sep = "";

	if (!f)
		return NULL;
	if (p->service) {
		fputs("service_name=\"", f);
		put_escaped(f, p->service, true);
		fputc('"', f);
		sep = ",";
	}
	for (size_t i = 0; i < p->n_attrs; i++) {
		if (!p->attr_values[i])
			continue;
		label_name_at(p, i, ln, sizeof(ln));
		if (!ln[0])
			continue;
		fprintf(f, "%s%s=\"", sep, ln);
		put_escaped(f, p->attr_values[i], true);
		fputc('"', f);
		sep = ",";
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static char *point_body(const char *name, const struct hist_point *p, const char *labels)
{
	const char *sep = labels[0] ? "," : "";
	char *buf = NULL, num[64];
	size_t len = 0;
	uint64_t cum = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i <= p->n_bounds; i++) {
		cum += p->bucket_counts[i];
		if (i < p->n_bounds)
			fmt_double(p->bounds[i], num, sizeof(num));
		else
			snprintf(num, sizeof(num), "+Inf");
		fprintf(f, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, num,
		        (unsigned long long)cum);
	}
	fmt_double(p->sum, num, sizeof(num));
	if (labels[0]) {
		fprintf(f, "%s_sum{%s} %s\n", name, labels, num);
		fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)p->count);
	} else {
		fprintf(f, "%s_sum %s\n", name, num);
		fprintf(f, "%s_count %llu\n", name, (unsigned long long)p->count);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static char *sum_body(const char *name, const struct hist_point *p, const char *labels)
{
	char *buf = NULL, num[64];

	fmt_double(p->sum, num, sizeof(num));
	if (asprintf(&buf, labels[0] ? "%s{%s} %s\n" : "%s%s %s\n", name, labels, num) < 0)
		return NULL;
	return buf;
}

static void on_hist(void *ctx, const struct hist_point *p)
{
	struct prom_walk *w = ctx;
	char name[PROM_NAME_MAX], *labels, *body;

	if (w->err)
		return;
	if (!w->have_cur || w->cur_index != p->hist_index) {
		w->have_cur = true;
		w->cur_index = p->hist_index;
		w->cur = NULL;
		if (prom_metric_name(p->name, p->unit, name, sizeof(name)) < 0)
			return;
		/* OpenTelemetry -> Prometheus: a monotonic sum is a counter named
		 * ..._total, an up-down sum a gauge. */
		if (p->kind == METRIC_SUM && strlen(name) + 6 < sizeof(name) &&
		    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
			strcat(name, "_total");
		w->cur = family_add(w, name,
		                    p->kind == METRIC_SUM      ? "counter"
		                    : p->kind == METRIC_UPDOWN ? "gauge"
		                                               : "histogram",
		                    p->description);
		if (!w->cur) {
			w->err = -ENOMEM;
			return;
		}
	}
	if (!w->cur)
		return;
	labels = point_labels(p);
	if (labels && p->kind != METRIC_HISTOGRAM)
		body = sum_body(w->cur->name, p, labels);
	else
		body = labels ? point_body(w->cur->name, p, labels) : NULL;
	if (!body || series_add(w->cur, labels, body)) {
		free(labels);
		free(body);
		w->err = -ENOMEM;
	}
}

static void on_scalar(void *ctx, const struct scalar_point *p)
{
	struct prom_walk *w = ctx;
	char name[PROM_NAME_MAX], num[64], *body = NULL;
	struct prom_family *f;

	if (w->err || prom_metric_name(p->name, NULL, name, sizeof(name)) < 0)
		return;
	f = family_add(w, name, p->counter ? "counter" : "gauge", p->help);
	if (p->counter)
		snprintf(num, sizeof(num), "%llu", (unsigned long long)p->u);
	else
		fmt_double(p->d, num, sizeof(num));
	if (!f || asprintf(&body, "%s %s\n", name, num) < 0 || series_add(f, NULL, body)) {
		free(body);
		w->err = -ENOMEM;
	}
}

static int family_cmp(const void *a, const void *b)
{
	const struct prom_family *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int series_cmp(const void *a, const void *b)
{
	const struct prom_series *x = a, *y = b;

	return strcmp(x->labels ? x->labels : "", y->labels ? y->labels : "");
}

static void walk_free(struct prom_walk *w)
{
	for (size_t i = 0; i < w->n_fams; i++) {
		for (size_t j = 0; j < w->fams[i].n_series; j++) {
			free(w->fams[i].series[j].labels);
			free(w->fams[i].series[j].body);
		}
		free(w->fams[i].series);
		free(w->fams[i].help);
	}
	free(w->fams);
}

char *prom_render(struct metrics *m)
{
	struct prom_walk w = {0};
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (!m)
		return NULL;
	metrics_foreach_hist(m, on_hist, &w);
	metrics_foreach_scalar(m, on_scalar, &w);
	f = w.err ? NULL : open_memstream(&buf, &len);
	if (!f) {
		walk_free(&w);
		return NULL;
	}
	if (w.n_fams)
		qsort(w.fams, w.n_fams, sizeof(*w.fams), family_cmp);
	for (size_t i = 0; i < w.n_fams; i++) {
		struct prom_family *fam = &w.fams[i];

		if (i && !strcmp(fam->name, w.fams[i - 1].name))
			continue;
		if (fam->n_series)
			qsort(fam->series, fam->n_series, sizeof(*fam->series), series_cmp);
		put_header(f, fam->name, fam->help, fam->type);
		for (size_t j = 0; j < fam->n_series; j++)
			fputs(fam->series[j].body, f);
	}
	walk_free(&w);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
