/*
 * ratecli.c - a fixed-rate, keep-alive load generator for HTTP/1.1, HTTPS
 * and RESP (GET), for latency at a moderate load (wrk2 is not in Debian).
 *
 * The one idea: latency is measured from when a request was *due*, not from
 * when it was sent. Each of N connections has a fixed schedule - connection
 * i sends its k-th request at t0 + i/rate + k*N/rate - and when a response
 * comes late the next request goes out at once but is still timed from its
 * due time. A server that stalls therefore shows the whole stall in the
 * percentiles instead of hiding it by slowing the client down (coordinated
 * omission, the reason wrk2 exists).
 *
 * One thread, non-blocking sockets and epoll (as wrk does), so the client
 * costs a few microseconds per request and is not the bottleneck at tens of
 * thousands of requests per second on one core. TLS handshakes are done
 * before the clock starts; after that TLS reads and writes go through the
 * same loop.
 *
 * Prints one line of key=value pairs:
 *   ratecli proto=http rate=5000 conns=16 duration=5 ok=25000 errors=0
 *   achieved=4999.8 p50_us=... p90_us=... p99_us=... p999_us=... max_us=...
 * Exit status 1 when nothing could be measured.
 *
 * usage: ratecli --proto http|https|resp --port P --rate R --duration S
 *                [--conns N] [--path /index.html] [--key bench:key]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum proto { P_HTTP, P_HTTPS, P_RESP };

struct opts {
	enum proto proto;
	int port, conns;
	double rate, duration;
	const char *path, *key;
};

struct conn {
	int fd;
	SSL *ssl;
	int busy;           /* a request is in flight */
	int dead;
	uint64_t due;       /* due time of the in-flight request */
	uint64_t next;      /* due time of the next request */
	char buf[65536];
	size_t have;
};

static struct opts o = {.proto = P_HTTP, .conns = 16, .path = "/index.html",
                        .key = "bench:key"};
static SSL_CTX *ssl_ctx;
static char req[512];
static size_t req_len;
static uint64_t *lat;      /* ns, due time to end of response */
static size_t n_lat, cap_lat;
static long errors;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int conn_open(struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	if (o.proto == P_HTTPS) {
		c->ssl = SSL_new(ssl_ctx);
		if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) || SSL_connect(c->ssl) != 1)
			return -1;
	}
	return fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

/* The request is small: one write normally takes all of it. A short or
 * refused write is counted as an error for this connection. */
static int conn_send(struct conn *c)
{
	ssize_t w = c->ssl ? SSL_write(c->ssl, req, (int)req_len) : write(c->fd, req, req_len);

	return w == (ssize_t)req_len ? 0 : -1;
}

/* Length of a complete HTTP response at the start of buf (Content-Length
 * framing only), 0 when more is needed, -1 when it cannot be framed. */
static long http_complete(const char *buf, size_t n)
{
	const char *end = memmem(buf, n, "\r\n\r\n", 4);
	size_t head;
	long cl = -1;

	if (!end)
		return 0;
	head = (size_t)(end - buf) + 4;
	for (const char *l = buf; l < end;) {
		const char *nl = memchr(l, '\n', (size_t)(end - l));
		if (!strncasecmp(l, "Content-Length:", 15)) {
			cl = strtol(l + 15, NULL, 10);
			break;
		}
		if (!nl)
			break;
		l = nl + 1;
	}
	if (cl < 0)
		return -1;
	return head + (size_t)cl <= n ? (long)(head + (size_t)cl) : 0;
}

/* Length of a complete simple RESP reply (+ - : or a bulk string). */
static long resp_complete(const char *buf, size_t n)
{
	const char *nl = memchr(buf, '\n', n);
	size_t line;
	long len;

	if (!nl)
		return 0;
	line = (size_t)(nl - buf) + 1;
	if (buf[0] == '+' || buf[0] == '-' || buf[0] == ':')
		return (long)line;
	if (buf[0] != '$')
		return -1;
	len = strtol(buf + 1, NULL, 10);
	if (len < 0)
		return (long)line;
	return line + (size_t)len + 2 <= n ? (long)(line + (size_t)len + 2) : 0;
}

/* Read what is there. Returns 1 when the response completed, 0 when more
 * is needed, -1 on error or close. */
static int conn_recv(struct conn *c)
{
	for (;;) {
		ssize_t r;
		long m;

		if (c->have == sizeof(c->buf))
			return -1;
		if (c->ssl) {
			r = SSL_read(c->ssl, c->buf + c->have, (int)(sizeof(c->buf) - c->have));
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, (int)r);
				return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
			}
		} else {
			r = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
			if (r < 0)
				return errno == EAGAIN || errno == EINTR ? 0 : -1;
			if (r == 0)
				return -1;
		}
		c->have += (size_t)r;
		m = o.proto == P_RESP ? resp_complete(c->buf, c->have)
		                      : http_complete(c->buf, c->have);
		if (m < 0)
			return -1;
		if (m > 0) {
			memmove(c->buf, c->buf + m, c->have - (size_t)m);
			c->have -= (size_t)m;
			return 1;
		}
	}
}

static void conn_kill(struct conn *c)
{
	c->dead = 1;
	c->busy = 0;
	errors++;
}

/* Send every request that is due on idle connections; return the time the
 * next one falls due (UINT64_MAX when none will). */
static uint64_t send_due(struct conn *cs, uint64_t now, uint64_t end, uint64_t step)
{
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < o.conns; i++) {
		struct conn *c = &cs[i];
		if (c->dead || c->busy || c->next >= end)
			continue;
		if (c->next <= now) {
			c->due = c->next;
			c->next += step;
			if (conn_send(c)) {
				conn_kill(c);
				continue;
			}
			c->busy = 1;
			continue;
		}
		if (c->next < next)
			next = c->next;
	}
	return next;
}

static int busy_count(const struct conn *cs)
{
	int n = 0;

	for (int i = 0; i < o.conns; i++)
		n += cs[i].busy;
	return n;
}

static void run(struct conn *cs, int ep)
{
	uint64_t step = (uint64_t)(1e9 * o.conns / o.rate);
	uint64_t t0 = now_ns() + 20000000ULL, end = t0 + (uint64_t)(o.duration * 1e9);
	uint64_t drain_end = end + 5000000000ULL;
	struct epoll_event ev[64];

	for (int i = 0; i < o.conns; i++)
		cs[i].next = t0 + (uint64_t)(1e9 * i / o.rate);
	for (;;) {
		uint64_t now = now_ns(), next = send_due(cs, now, end, step);
		if (now >= end && !busy_count(cs))
			break;
		if (now >= drain_end)
			break;
		uint64_t wait = next == UINT64_MAX ? 50000000ULL : (next > now ? next - now : 0);
		if (wait > 50000000ULL)
			wait = 50000000ULL;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait};
		int n = epoll_pwait2(ep, ev, 64, &ts, NULL);
		if (n < 0 && errno != EINTR)
			break;
		for (int k = 0; k < n; k++) {
			struct conn *c = &cs[ev[k].data.u32];
			if (c->dead)
				continue;
			int r = conn_recv(c);
			if (r < 0) {
				conn_kill(c);
				continue;
			}
			if (r == 1 && c->busy) {
				if (n_lat < cap_lat)
					lat[n_lat++] = now_ns() - c->due;
				c->busy = 0;
			}
		}
	}
	errors += busy_count(cs); /* responses that never came */
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile, in microseconds. */
static double pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)n + 0.999999);

	if (!n)
		return 0;
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return (double)v[i - 1] / 1e3;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{"proto", required_argument, 0, 'P'}, {"port", required_argument, 0, 'p'},
		{"rate", required_argument, 0, 'r'}, {"duration", required_argument, 0, 'd'},
		{"conns", required_argument, 0, 'c'}, {"path", required_argument, 0, 'u'},
		{"key", required_argument, 0, 'k'}, {0, 0, 0, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'P':
			if (!strcmp(optarg, "http"))
				o.proto = P_HTTP;
			else if (!strcmp(optarg, "https"))
				o.proto = P_HTTPS;
			else if (!strcmp(optarg, "resp"))
				o.proto = P_RESP;
			else
				return -1;
			break;
		case 'p': o.port = atoi(optarg); break;
		case 'r': o.rate = atof(optarg); break;
		case 'd': o.duration = atof(optarg); break;
		case 'c': o.conns = atoi(optarg); break;
		case 'u': o.path = optarg; break;
		case 'k': o.key = optarg; break;
		default: return -1;
		}
	}
	if (o.port <= 0 || o.port > 65535 || o.rate <= 0 || o.duration <= 0 || o.conns < 1 ||
	    o.conns > 4096)
		return -1;
	return 0;
}

static void build_request(void)
{
	if (o.proto == P_RESP)
		snprintf(req, sizeof(req), "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(o.key), o.key);
	else
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		         "User-Agent: sonde-ratecli\r\n\r\n", o.path, o.port);
	req_len = strlen(req);
}

int main(int argc, char **argv)
{
	static const char *pn[] = {"http", "https", "resp"};
	struct conn *cs;
	int ep;

	if (parse_args(argc, argv)) {
		fprintf(stderr, "usage: ratecli --proto http|https|resp --port P --rate R "
		        "--duration S [--conns 1..4096] [--path P] [--key K]\n");
		return 2;
	}
	build_request();
	if (o.proto == P_HTTPS) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!ssl_ctx) {
			fprintf(stderr, "ratecli: cannot create a TLS context\n");
			return 1;
		}
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	}
	cap_lat = (size_t)(o.rate * o.duration) + (size_t)o.conns + 16;
	lat = malloc(cap_lat * sizeof(*lat));
	cs = calloc((size_t)o.conns, sizeof(*cs));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!lat || !cs || ep < 0) {
		fprintf(stderr, "ratecli: out of memory\n");
		return 1;
	}
	for (int i = 0; i < o.conns; i++) {
		struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		cs[i].fd = -1;
		if (conn_open(&cs[i]) || epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e)) {
			fprintf(stderr, "ratecli: connection %d to port %d failed: %s\n", i, o.port,
			        strerror(errno));
			return 1;
		}
	}
	run(cs, ep);
	qsort(lat, n_lat, sizeof(*lat), cmp_u64);
	printf("ratecli proto=%s rate=%g conns=%d duration=%g ok=%zu errors=%ld achieved=%.1f "
	       "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
	       pn[o.proto], o.rate, o.conns, o.duration, n_lat, errors, (double)n_lat / o.duration,
	       pct(lat, n_lat, 0.50), pct(lat, n_lat, 0.90), pct(lat, n_lat, 0.99),
	       pct(lat, n_lat, 0.999), n_lat ? (double)lat[n_lat - 1] / 1e3 : 0.0);
	for (int i = 0; i < o.conns; i++) {
		if (cs[i].ssl)
			SSL_free(cs[i].ssl);
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	}
	return n_lat ? 0 : 1;
}
