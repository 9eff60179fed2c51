/*
 * java_attach.c - HotSpot's dynamic attach protocol (java_attach.h).
 *
 * The one idea: connect if the socket is there; else make the trigger file
 * (owned by the JVM's user: HotSpot ignores one owned by anyone else but
 * root or itself), SIGQUIT the JVM, and wait for the socket; then one
 * request, one answer, and the trigger file goes.
 *
 * Only called for a JVM whose SIGQUIT handler is installed (the plugin
 * checks SigCgt first): without it SIGQUIT kills the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "java_attach.h"

#define POLL_MS 50
#define ANSWER_MAX 8192

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int cancelled(const struct java_attach_req *r)
{
	return r->cancel && *r->cancel;
}

int java_attach_request(const char *agent, char *buf, size_t len)
{
	static const char head[] = "1\0load\0instrument\0false";
	size_t alen = agent ? strlen(agent) : 0;
	size_t need = sizeof(head) + alen + 1; /* head with its NUL, agent, NUL */

	if (!agent || !alen || alen > 1024 || need > len) /* HotSpot reads 1024 per argument */
		return -1;
	memcpy(buf, head, sizeof(head));
	memcpy(buf + sizeof(head), agent, alen + 1);
	return (int)need;
}

int java_attach_parse(const char *buf, size_t n, struct java_attach_res *res)
{
	const char *nl, *p = buf, *end;
	char line[32], *e;
	size_t k, o = 0;
	long v;

	memset(res, 0, sizeof(*res));
	res->agent = INT32_MIN;
	if (!buf || !n)
		return -1;
	end = buf + n;
	nl = memchr(p, '\n', n);
	k = (size_t)((nl ? nl : end) - p);
	if (k == 0 || k >= sizeof(line))
		return -1;
	memcpy(line, p, k);
	line[k] = 0;
	v = strtol(line, &e, 10);
	if (*e || e == line || v < INT32_MIN || v > INT32_MAX)
		return -1;
	res->op = (int)v;
	if (!nl)
		return 0;
	p = nl + 1;
	/* The rest, printable, for the log; a number alone on the next line
	 * (JDK 9-20) or "return code: N" (JDK 21+) is the agent's result. */
	for (const char *q = p; q < end && o + 1 < sizeof(res->text); q++)
		res->text[o++] = (*q == '\n') ? ' ' : ((*q >= 0x20 && *q < 0x7f) ? *q : '?');
	while (o && res->text[o - 1] == ' ')
		o--;
	res->text[o] = 0;
	nl = memchr(p, '\n', (size_t)(end - p));
	k = (size_t)((nl ? nl : end) - p);
	if (k && k < sizeof(line)) {
		const char *num;

		memcpy(line, p, k);
		line[k] = 0;
		num = strncmp(line, "return code: ", 13) ? line : line + 13;
		v = strtol(num, &e, 10);
		if (!*e && e != num && v >= INT32_MIN && v <= INT32_MAX)
			res->agent = (int)v;
	}
	return 0;
}

static int sock_path(const struct java_attach_req *r, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/%u/root/tmp/.java_pid%u", r->pid,
		     r->nspid);
	return n > 0 && (size_t)n < sizeof(sa->sun_path) ? 0 : -1;
}

static int try_connect(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return fd;
	close(fd);
	return -1;
}

/* The trigger file in the JVM's working directory, else its /tmp. Its
 * path (to remove it) in path; -1 if neither could be made. */
static int make_trigger(const struct java_attach_req *r, char *path, size_t len)
{
	const char *fmt[2] = {"/proc/%u/cwd/.attach_pid%u", "/proc/%u/root/tmp/.attach_pid%u"};

	for (int i = 0; i < 2; i++) {
		int fd;

		snprintf(path, len, fmt[i], r->pid, r->nspid);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* HotSpot takes a trigger owned by root or by its own user. */
		(void)!fchown(fd, r->uid, r->gid);
		close(fd);
		return 0;
	}
	path[0] = 0;
	return -1;
}

/* Connected fd to the JVM's attach socket, or -1 with err. */
static int open_attach(const struct java_attach_req *r, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	char trig[PATH_MAX];
	uint64_t end;
	int fd;

	if (sock_path(r, &sa)) {
		snprintf(err, errlen, "attach socket path too long");
		return -1;
	}
	fd = try_connect(&sa);
	if (fd >= 0)
		return fd;
	if (!r->may_signal) {
		snprintf(err, errlen, "no attach socket, and the JVM may not be signalled");
		return -1;
	}
	if (make_trigger(r, trig, sizeof(trig))) {
		snprintf(err, errlen, "cannot create .attach_pid%u in the JVM's working directory or /tmp: %s",
			 r->nspid, strerror(errno));
		return -1;
	}
	if (kill((pid_t)r->pid, SIGQUIT)) {
		snprintf(err, errlen, "SIGQUIT: %s", strerror(errno));
		unlink(trig);
		return -1;
	}
	end = now_ms() + (uint64_t)r->timeout_ms;
	while ((fd = try_connect(&sa)) < 0) {
		if (now_ms() >= end || cancelled(r)) {
			snprintf(err, errlen, "%s", cancelled(r) ? "cancelled" :
				 "the JVM did not open its attach socket (attach disabled, or too busy)");
			break;
		}
		poll(NULL, 0, POLL_MS);
	}
	unlink(trig);
	return fd;
}

static int send_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read the answer until the JVM closes the connection. Its length, or -1. */
static ssize_t read_answer(const struct java_attach_req *r, int fd, char *buf, size_t len,
			   char *err, size_t errlen)
{
	uint64_t end = now_ms() + (uint64_t)r->timeout_ms;
	size_t got = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		int rc = poll(&p, 1, POLL_MS);

		if (cancelled(r) || now_ms() >= end) {
			snprintf(err, errlen, "%s", cancelled(r) ? "cancelled" : "no answer from the JVM in time");
			return -1;
		}
		if (rc < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (rc <= 0)
			continue;
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return -1;
		}
		if (n == 0 || (got += (size_t)n) == len)
			return (ssize_t)got;
	}
}

int java_attach_load(const struct java_attach_req *r, struct java_attach_res *res, char *err,
		     size_t errlen)
{
	char req[PATH_MAX + 1024], *ans = NULL;
	int fd, n, rc = -1;
	ssize_t got;

	memset(res, 0, sizeof(*res));
	res->agent = INT32_MIN;
	n = java_attach_request(r->agent, req, sizeof(req));
	if (n < 0) {
		snprintf(err, errlen, "agent argument too long");
		return -1;
	}
	fd = open_attach(r, err, errlen);
	if (fd < 0)
		return -1;
	ans = malloc(ANSWER_MAX);
	if (!ans) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (send_all(fd, req, (size_t)n)) {
		snprintf(err, errlen, "send: %s", strerror(errno));
		goto out;
	}
	got = read_answer(r, fd, ans, ANSWER_MAX, err, errlen);
	if (got < 0)
		goto out;
	if (java_attach_parse(ans, (size_t)got, res)) {
		snprintf(err, errlen, "the JVM's answer is not understood (%zd bytes)", got);
		goto out;
	}
	rc = 0;
out:
	free(ans);
	close(fd);
	return rc;
}
