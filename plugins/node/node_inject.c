/*
 * node_inject.c - one script run in a running Node.js process through its
 * inspector, without blocking the caller.
 *
 * The one idea: Node starts its inspector on SIGUSR1 (its own handler, which
 * the caller has checked) and listens on a loopback port; the job finds
 * that port as the one listening socket of the process that was not there
 * before the signal, asks /json/list for the session's path, opens one
 * WebSocket session, evaluates the script, waits for the caller to confirm
 * that the kernel saw the script's registration, and sends one last
 * evaluation that keeps (or removes) the script's hooks and closes the
 * inspector. Once the inspector is open, every failure still tries that
 * last step, so the port does not stay open behind us; when it cannot be
 * sent, the job says so (why/warn).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "node_inject.h"

#define RX_CAP (NODE_CDP_MSG_MAX + 64)
#define EVAL_ID 1
#define FINISH_ID 2

const char *node_job_phase_name(enum node_job_phase p)
{
	static const char *const names[] = { "port", "list", "upgrade", "eval", "wait-reg",
					     "finish", "close", "done", "failed" };

	return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}

static void set_why(struct node_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(struct node_job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->why, sizeof(j->why), fmt, ap);
	va_end(ap);
}

static void conn_close(struct node_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	j->connected = 0;
	j->rx_len = 0;
	free(j->tx);
	j->tx = NULL;
	j->tx_len = j->tx_off = 0;
}

static void enter(struct node_job *j, enum node_job_phase p, uint64_t now, uint64_t budget)
{
	j->phase = p;
	j->deadline = now + budget;
}

static int rand_bytes(void *p, size_t n)
{
	return getrandom(p, n, 0) == (ssize_t)n ? 0 : -1;
}

/* --- sockets ------------------------------------------------------------------------ */

/* Connect (non-blocking) to the inspector's socket on loopback. */
static int conn_open(struct node_job *j)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const struct node_sock *s = &j->insp;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (!s->v6 || (s->addr[10] == 0xff && s->addr[11] == 0xff && s->addr[12] == 127)) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(s->port);
		/* an inspector on 0.0.0.0 is reached on 127.0.0.1 */
		if (!s->v6 && s->addr[0] == 127)
			memcpy(&a->sin_addr, s->addr, 4);
		else if (s->v6)
			memcpy(&a->sin_addr, s->addr + 12, 4);
		else
			a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 a6;

		memset(&a6, 0, sizeof(a6));
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons(s->port);
		a6.sin6_addr = in6addr_loopback;
		memcpy(&ss, &a6, sizeof(a6));
		sl = sizeof(a6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	j->fd = fd;
	j->connected = 0;
	j->rx_len = 0;
	return 0;
}

static int queue(struct node_job *j, const void *p, size_t n)
{
	uint8_t *nt = realloc(j->tx, j->tx_len + n);

	if (!nt)
		return -1;
	memcpy(nt + j->tx_len, p, n);
	j->tx = nt;
	j->tx_len += n;
	return 0;
}

static int queue_text(struct node_job *j, const char *text)
{
	uint8_t mask[4];
	size_t n = strlen(text);
	uint8_t *f = malloc(node_ws_frame_size(n));
	int rc;

	if (!f || rand_bytes(mask, sizeof(mask))) {
		free(f);
		return -1;
	}
	rc = queue(j, f, node_ws_frame_build(f, NODE_WS_TEXT, (const uint8_t *)text, n, mask));
	free(f);
	return rc;
}

/* Move bytes: finish connecting, send what is queued, read what came.
 * 0 (maybe nothing moved), 1 the peer closed, -1 an error. */
static int pump(struct node_job *j)
{
	struct pollfd pf = { .fd = j->fd, .events = POLLOUT };
	int err = 0;
	socklen_t el = sizeof(err);

	if (j->fd < 0)
		return -1;
	if (!j->connected) {
		if (poll(&pf, 1, 0) < 0 || !(pf.revents & (POLLOUT | POLLERR | POLLHUP)))
			return 0;
		if (getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
			return -1;
		j->connected = 1;
	}
	while (j->tx_off < j->tx_len) {
		ssize_t n = send(j->fd, j->tx + j->tx_off, j->tx_len - j->tx_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		j->tx_off += (size_t)n;
	}
	if (j->tx_off == j->tx_len) {
		free(j->tx);
		j->tx = NULL;
		j->tx_len = j->tx_off = 0;
	}
	for (;;) {
		ssize_t n;

		if (j->rx_len == j->rx_cap)
			return -1; /* more than any answer may be */
		n = recv(j->fd, j->rx + j->rx_len, j->rx_cap - j->rx_len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 1;
		j->rx_len += (size_t)n;
	}
}

static void consume(struct node_job *j, size_t n)
{
	memmove(j->rx, j->rx + n, j->rx_len - n);
	j->rx_len -= n;
}

/* --- phases --------------------------------------------------------------------------- */

static int was_listening(const struct node_job *j, const struct node_sock *s)
{
	for (int i = 0; i < j->nbefore; i++)
		if (j->before[i].inode == s->inode)
			return 1;
	return 0;
}

static int step_port(struct node_job *j, uint64_t now)
{
	struct node_sock now_l[NODE_JOB_LISTEN_MAX];
	int n = node_listeners(j->pid, now_l, NODE_JOB_LISTEN_MAX);

	for (int i = 0; i < n; i++) {
		if (was_listening(j, &now_l[i]))
			continue;
		if (!node_sock_local(&now_l[i])) {
			set_why(j, "a new listening socket on port %u is not on loopback: not used",
				now_l[i].port);
			return -1;
		}
		j->insp = now_l[i];
		j->have_insp = 1;
		break;
	}
	if (!j->have_insp) {
		if (now > j->deadline) {
			set_why(j, "the inspector did not start listening within %llu s (its port in "
				   "use by another process?)",
				(unsigned long long)(NODE_JOB_PHASE_NS / 1000000000ull));
			return -1;
		}
		return 0;
	}
	if (conn_open(j)) {
		set_why(j, "cannot connect to the inspector on port %u: %s", j->insp.port,
			strerror(errno));
		return -1;
	}
	{
		char req[128];

		snprintf(req, sizeof(req), "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
			 j->insp.port);
		if (queue(j, req, strlen(req)))
			return -1;
	}
	enter(j, NJ_LIST, now, NODE_JOB_PHASE_NS);
	return 0;
}

static int start_upgrade(struct node_job *j, uint64_t now)
{
	uint8_t raw[16];
	char req[512];

	if (rand_bytes(raw, sizeof(raw)) ||
	    EVP_EncodeBlock((unsigned char *)j->ws_key, raw, sizeof(raw)) != 24) {
		set_why(j, "no random bytes for the WebSocket key");
		return -1;
	}
	if (conn_open(j)) {
		set_why(j, "cannot connect to the inspector on port %u: %s", j->insp.port,
			strerror(errno));
		return -1;
	}
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		 j->ws_path, j->insp.port, j->ws_key);
	if (queue(j, req, strlen(req)))
		return -1;
	enter(j, NJ_UPGRADE, now, NODE_JOB_PHASE_NS);
	return 0;
}

static int step_list(struct node_job *j, uint64_t now)
{
	struct node_http_resp r;
	int eof = pump(j), h;

	if (eof < 0) {
		set_why(j, "the inspector's /json/list failed: %s", strerror(errno));
		return -1;
	}
	h = node_http_head(j->rx, j->rx_len, &r);
	if (h == NODE_BAD || (h == NODE_NEED_MORE && eof)) {
		set_why(j, "the inspector's /json/list answer is not HTTP");
		return -1;
	}
	if (h == NODE_NEED_MORE)
		return now > j->deadline ? (set_why(j, "no /json/list answer"), -1) : 0;
	if (r.status != 200) {
		set_why(j, "the inspector's /json/list answered %d", r.status);
		return -1;
	}
	if (r.content_length > (int64_t)(j->rx_cap - (size_t)h)) {
		set_why(j, "the inspector's /json/list answer is too long");
		return -1;
	}
	if (r.content_length >= 0 ? j->rx_len - (size_t)h < (size_t)r.content_length : !eof)
		return now > j->deadline ? (set_why(j, "no whole /json/list answer"), -1) : 0;
	if (node_cdp_ws_path((const char *)j->rx + h,
			     r.content_length >= 0 ? (size_t)r.content_length : j->rx_len - (size_t)h,
			     j->ws_path, sizeof(j->ws_path))) {
		set_why(j, "the inspector lists no node target");
		return -1;
	}
	conn_close(j);
	return start_upgrade(j, now);
}

static int step_upgrade(struct node_job *j, uint64_t now)
{
	struct node_http_resp r;
	char want[32];
	int eof = pump(j), h;
	char *req;

	if (eof < 0) {
		set_why(j, "the WebSocket handshake failed: %s", strerror(errno));
		return -1;
	}
	h = node_http_head(j->rx, j->rx_len, &r);
	if (h == NODE_BAD || (h == NODE_NEED_MORE && eof)) {
		set_why(j, "the WebSocket handshake answer is not HTTP");
		return -1;
	}
	if (h == NODE_NEED_MORE)
		return now > j->deadline ? (set_why(j, "no WebSocket handshake answer"), -1) : 0;
	if (r.status != 101 || !r.upgrade_websocket || node_ws_accept(j->ws_key, want) ||
	    strcmp(want, r.accept)) {
		set_why(j, "the inspector refused the WebSocket session (status %d)", r.status);
		return -1;
	}
	consume(j, (size_t)h);
	j->session_open = 1;
	req = node_cdp_eval_request(EVAL_ID, j->expr);
	if (!req || queue_text(j, req)) {
		free(req);
		set_why(j, "out of memory");
		return -1;
	}
	free(req);
	enter(j, NJ_EVAL, now, NODE_JOB_PHASE_NS);
	return 0;
}

/* Read frames until the answer to id: 1 (value or err set), 0 not yet, -1. */
static int read_answer(struct node_job *j, int id, char *value, size_t vcap, char *err,
		       size_t ecap)
{
	int eof = pump(j);

	if (eof < 0)
		return -1;
	for (;;) {
		struct node_ws_frame f;
		int n = node_ws_frame_parse(j->rx, j->rx_len, NODE_CDP_MSG_MAX, &f), r;

		if (n == NODE_NEED_MORE)
			return eof ? -1 : 0;
		if (n == NODE_BAD)
			return -1;
		if (f.opcode == NODE_WS_CLOSE)
			return -1;
		if (f.opcode == NODE_WS_PING) {
			uint8_t mask[4], pong[2 + 4 + 125];

			if (rand_bytes(mask, 4) ||
			    queue(j, pong, node_ws_frame_build(pong, NODE_WS_PONG, f.payload, f.len,
							       mask)))
				return -1;
			consume(j, (size_t)n);
			continue;
		}
		if (f.opcode == NODE_WS_PONG) {
			consume(j, (size_t)n);
			continue;
		}
		r = node_ws_msg_add(&j->msg, &f);
		consume(j, (size_t)n);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		r = node_cdp_eval_response((const char *)j->msg.buf, j->msg.len, id, value, vcap,
					   err, ecap);
		node_ws_msg_reset(&j->msg);
		if (r == 1)
			return 1;
		/* an event or another answer: not ours */
	}
}

static void go_finish(struct node_job *j, uint64_t now)
{
	char *req = node_cdp_eval_request(FINISH_ID, node_cdp_finish_expr(j->script_ok &&
									   j->registered == 1));

	if (!req || queue_text(j, req)) {
		free(req);
		snprintf(j->warn, sizeof(j->warn), "out of memory: the inspector may stay open");
		enter(j, NJ_CLOSE, now, NODE_JOB_PHASE_NS);
		return;
	}
	free(req);
	enter(j, NJ_FINISH, now, NODE_JOB_PHASE_NS);
}

static int step_eval(struct node_job *j, uint64_t now)
{
	char value[1024], err[256];
	int r = read_answer(j, EVAL_ID, value, sizeof(value), err, sizeof(err));

	if (r < 0) {
		set_why(j, "the inspector session broke during the script");
		return -1;
	}
	if (r == 0)
		return now > j->deadline ? (set_why(j, "no answer to the script"), -1) : 0;
	if (err[0]) {
		set_why(j, "the script failed: %.200s", err);
		go_finish(j, now);
		return 0;
	}
	if (node_script_result_parse(value, strlen(value), &j->res)) {
		set_why(j, "the script's answer is not understood");
		go_finish(j, now);
		return 0;
	}
	if (!j->res.ok) {
		set_why(j, "%s", j->res.why);
		go_finish(j, now);
		return 0;
	}
	j->script_ok = 1;
	if (j->registered >= 0) {
		go_finish(j, now);
		return 0;
	}
	enter(j, NJ_WAIT_REG, now, NODE_JOB_REG_NS);
	return 0;
}

static int step_wait_reg(struct node_job *j, uint64_t now)
{
	if (pump(j) < 0) {
		set_why(j, "the inspector session broke");
		return -1;
	}
	if (j->registered < 0 && now <= j->deadline)
		return 0;
	if (j->registered < 0)
		j->registered = 0;
	if (!j->registered)
		set_why(j, "the kernel did not see the script's registration");
	go_finish(j, now);
	return 0;
}

static int step_finish(struct node_job *j, uint64_t now)
{
	char err[256];
	int r = read_answer(j, FINISH_ID, j->finish_value, sizeof(j->finish_value), err,
			    sizeof(err));

	if (r == 0 && now <= j->deadline)
		return 0;
	if (r != 1 || err[0])
		snprintf(j->warn, sizeof(j->warn), "closing the inspector failed (%.100s)",
			 r == 1 ? err : r < 0 ? "session broke" : "no answer");
	conn_close(j);
	enter(j, NJ_CLOSE, now, NODE_JOB_PHASE_NS);
	return 0;
}

static void step_close(struct node_job *j, uint64_t now)
{
	struct node_sock l[NODE_JOB_LISTEN_MAX];
	int n = node_listeners(j->pid, l, NODE_JOB_LISTEN_MAX), open = 0;

	for (int i = 0; i < n; i++)
		if (j->have_insp && l[i].inode == j->insp.inode)
			open = 1;
	if (open && now <= j->deadline)
		return;
	if (open && !j->warn[0])
		snprintf(j->warn, sizeof(j->warn), "the inspector still listens on port %u",
			 j->insp.port);
	j->ok = j->script_ok && j->registered == 1;
	j->phase = j->why[0] && !j->ok ? NJ_FAILED : NJ_DONE;
	if (j->ok)
		j->why[0] = 0;
}

/* A failure once the inspector is open: close it if the session works. */
static void fail(struct node_job *j, uint64_t now)
{
	if (j->session_open && j->fd >= 0 && j->phase < NJ_FINISH) {
		go_finish(j, now);
		return;
	}
	conn_close(j);
	if (j->have_insp && j->phase < NJ_CLOSE && !j->warn[0])
		snprintf(j->warn, sizeof(j->warn), "the inspector may stay open on port %u",
			 j->insp.port);
	if (j->phase == NJ_PORT || j->phase == NJ_LIST || j->phase == NJ_UPGRADE) {
		/* never reached the session: see whether the port goes anyway */
		if (j->have_insp) {
			enter(j, NJ_CLOSE, now, NODE_JOB_PHASE_NS);
			return;
		}
	}
	j->phase = NJ_FAILED;
}

enum node_job_phase node_job_step(struct node_job *j, uint64_t now)
{
	int rc = 0;

	switch (j->phase) {
	case NJ_PORT:
		rc = step_port(j, now);
		break;
	case NJ_LIST:
		rc = step_list(j, now);
		break;
	case NJ_UPGRADE:
		rc = step_upgrade(j, now);
		break;
	case NJ_EVAL:
		rc = step_eval(j, now);
		break;
	case NJ_WAIT_REG:
		rc = step_wait_reg(j, now);
		break;
	case NJ_FINISH:
		rc = step_finish(j, now);
		break;
	case NJ_CLOSE:
		step_close(j, now);
		break;
	case NJ_DONE:
	case NJ_FAILED:
		break;
	}
	if (rc < 0)
		fail(j, now);
	return j->phase;
}

void node_job_registered(struct node_job *j, int yes)
{
	j->registered = yes ? 1 : 0;
}

int node_job_start(struct node_job *j, uint32_t pid, char *expr, uint64_t now)
{
	memset(j, 0, sizeof(*j));
	j->pid = pid;
	j->fd = -1;
	j->expr = expr;
	j->registered = -1;
	j->phase = NJ_FAILED;
	j->rx_cap = RX_CAP;
	j->rx = malloc(j->rx_cap);
	j->msg.cap = NODE_CDP_MSG_MAX;
	j->msg.buf = malloc(j->msg.cap);
	if (!expr || !j->rx || !j->msg.buf) {
		set_why(j, "out of memory");
		return -1;
	}
	j->nbefore = node_listeners(pid, j->before, NODE_JOB_LISTEN_MAX);
	if (j->nbefore < 0) {
		set_why(j, "cannot read its sockets: %s", strerror(errno));
		return -1;
	}
	if (j->nbefore == NODE_JOB_LISTEN_MAX) {
		set_why(j, "it listens on %d ports or more: the inspector's would not be told apart",
			NODE_JOB_LISTEN_MAX);
		return -1;
	}
	if (kill((pid_t)pid, SIGUSR1)) {
		set_why(j, "SIGUSR1 not sent: %s", strerror(errno));
		return -1;
	}
	enter(j, NJ_PORT, now, NODE_JOB_PHASE_NS);
	return 0;
}

void node_job_free(struct node_job *j)
{
	conn_close(j);
	free(j->rx);
	free(j->msg.buf);
	free(j->expr);
	j->rx = NULL;
	j->msg.buf = NULL;
	j->expr = NULL;
}
