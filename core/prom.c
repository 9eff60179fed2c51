/*
 * prom.c - the Prometheus /metrics endpoint (libmicrohttpd) and the
 * OpenTelemetry -> Prometheus name conversion.
 *
 * The one idea: we bind and listen on the socket ourselves and hand it to
 * libmicrohttpd (MHD_OPTION_LISTEN_SOCKET). That way a taken port gives the
 * exact errno ("127.0.0.1:9464: Address already in use") instead of a bare
 * NULL from MHD_start_daemon. Everything after accept() is MHD's, on its
 * one internal polling thread, so scrapes are serialised.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "metrics.h"
#include "prom.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define PROM_MAX_CONNECTIONS 32
#define PROM_CONN_TIMEOUT_S 10

struct prom {
	struct MHD_Daemon *daemon;
	struct metrics *m;
	uint16_t port;
	pthread_mutex_t lock; /* guards hook, hook_ctx */
	void (*hook)(void *);
	void *hook_ctx;
};

/* ---- naming -------------------------------------------------------- */

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

/* ---- endpoint ------------------------------------------------------ */

static enum MHD_Result prom_reply(struct MHD_Connection *c, unsigned int code,
                                  const char *ctype, char *body, size_t len,
                                  enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, mode);
	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result prom_reply_static(struct MHD_Connection *c, unsigned int code,
                                         const char *text)
{
	return prom_reply(c, code, "text/plain; charset=utf-8", (char *)text, strlen(text),
	                  MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result prom_serve_metrics(struct prom *p, struct MHD_Connection *c)
{
	void (*hook)(void *);
	void *hook_ctx;
	char *body;

	pthread_mutex_lock(&p->lock);
	hook = p->hook;
	hook_ctx = p->hook_ctx;
	pthread_mutex_unlock(&p->lock);
	if (hook)
		hook(hook_ctx);
	body = metrics_render_prometheus(p->m);
	if (!body)
		return prom_reply_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                         "out of memory while rendering metrics\n");
	return prom_reply(c, MHD_HTTP_OK, PROM_CONTENT_TYPE, body, strlen(body),
	                  MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result prom_handle(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_data_size,
                                   void **con_cls)
{
	struct prom *p = cls;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return prom_reply_static(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		                         "only GET and HEAD are supported\n");
	if (strcmp(url, "/metrics") == 0)
		return prom_serve_metrics(p, c);
	if (strcmp(url, "/") == 0)
		return prom_reply_static(c, MHD_HTTP_OK,
		                         "sonde: Prometheus metrics are at /metrics\n");
	return prom_reply_static(c, MHD_HTTP_NOT_FOUND, "not found: metrics are at /metrics\n");
}

union prom_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* Parse an IPv4/IPv6 literal (optionally "[v6]") into a; writes the
 * display form ("1.2.3.4:80" or "[::1]:80") into shown. */
static int prom_parse_addr(const char *address, uint16_t port, union prom_addr *a,
                           socklen_t *alen, char *shown, size_t shownlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	size_t n;

	if (!address || !*address)
		address = "127.0.0.1";
	n = strlen(address);
	if (n >= 2 && address[0] == '[' && address[n - 1] == ']') {
		address++;
		n -= 2;
	}
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, address, n);
	host[n] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, &a->in4.sin_addr) == 1) {
		a->in4.sin_family = AF_INET;
		a->in4.sin_port = htons(port);
		*alen = sizeof(a->in4);
		snprintf(shown, shownlen, "%s:%u", host, port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons(port);
		*alen = sizeof(a->in6);
		snprintf(shown, shownlen, "[%s]:%u", host, port);
		return 0;
	}
	return -EINVAL;
}

/* Returns a listening socket or -1 with err filled. */
static int prom_listen(const char *address, uint16_t port, uint16_t *bound, bool *v6,
                       char *err, size_t errlen)
{
	union prom_addr a;
	socklen_t alen;
	char shown[INET6_ADDRSTRLEN + 16];
	int fd, one = 1;

	if (prom_parse_addr(address, port, &a, &alen, shown, sizeof(shown)) < 0) {
		snprintf(err, errlen, "prometheus address '%s': not an IPv4 or IPv6 literal",
		         address);
		return -1;
	}
	*v6 = a.sa.sa_family == AF_INET6;
	fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", shown, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, &a.sa, alen) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		goto fail;
	}
	alen = sizeof(a);
	if (getsockname(fd, &a.sa, &alen) < 0) {
		snprintf(err, errlen, "%s: getsockname: %s", shown, strerror(errno));
		goto fail;
	}
	*bound = ntohs(*v6 ? a.in6.sin6_port : a.in4.sin_port);
	return fd;
fail:
	close(fd);
	return -1;
}

struct prom *prom_start(struct metrics *m, const char *address, uint16_t port,
                        char *err, size_t errlen)
{
	struct prom *p;
	/* AUTO picks epoll: select() would fail once the agent's fds (BPF
	 * links, maps) push the socket number past FD_SETSIZE. */
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD;
	bool v6 = false;
	int fd;

	if (!m) {
		snprintf(err, errlen, "prometheus: no metric registry");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "prometheus: out of memory");
		return NULL;
	}
	p->m = m;
	pthread_mutex_init(&p->lock, NULL);
	fd = prom_listen(address, port, &p->port, &v6, err, errlen);
	if (fd < 0)
		goto fail;
	if (v6)
		flags |= MHD_USE_IPv6;
	p->daemon = MHD_start_daemon(flags, p->port, NULL, NULL, prom_handle, p,
	                             MHD_OPTION_LISTEN_SOCKET, fd,
	                             MHD_OPTION_CONNECTION_LIMIT, (unsigned int)PROM_MAX_CONNECTIONS,
	                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)PROM_CONN_TIMEOUT_S,
	                             MHD_OPTION_END);
	if (!p->daemon) {
		/* Whether MHD already closed fd on this path differs between
		 * versions; leaking one fd beats closing someone else's. */
		snprintf(err, errlen, "prometheus: cannot start the HTTP server on port %u",
		         p->port);
		goto fail;
	}
	return p;
fail:
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

void prom_stop(struct prom *p)
{
	if (!p)
		return;
	MHD_stop_daemon(p->daemon); /* joins the thread, closes the socket */
	pthread_mutex_destroy(&p->lock);
	free(p);
}

uint16_t prom_port(const struct prom *p)
{
	return p ? p->port : 0;
}

void prom_set_collect_hook(struct prom *p, void (*fn)(void *), void *ctx)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->hook = fn;
	p->hook_ctx = ctx;
	pthread_mutex_unlock(&p->lock);
}
