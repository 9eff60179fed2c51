/*
 * prom.c - the Prometheus /metrics endpoint (libmicrohttpd); the text it
 * serves comes from prom_text.c.
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

#include "export/prom.h"
#include "export/prom_text.h"

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
	body = prom_render(p->m);
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
