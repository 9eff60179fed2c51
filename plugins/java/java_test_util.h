/*
 * java_test_util.h - tests only: the Java plugin's records and messages as
 * the BPF program and the agent write them, and real JVMs running
 * tests/live/java_peers/JavaPeer.java (compiled here with the JDK's javac,
 * a keystore made with its keytool), talked to over pipes.
 *
 * Needs JAVA_PEERS_DIR and JAVA_TEST_WORK (CMakeLists.txt). Header-only,
 * static functions: each test includes what it uses.
 */
#ifndef SONDE_JAVA_TEST_UTIL_H
#define SONDE_JAVA_TEST_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "java_msg.h"
#include "java_rec.h"

/* --- messages and records ------------------------------------------------------ */

static inline void jt_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* One agent message into m (room for JAVA_MSG_HDR + cap); its length. */
static inline size_t jt_msg(uint8_t *m, int kind, int dir, int32_t fd, uint32_t len,
			    uint64_t stream, uint64_t pos, uint32_t flags, const void *data,
			    uint32_t cap)
{
	jt_le(m, JAVA_MSG_MAGIC, 4);
	jt_le(m + 4, JAVA_MSG_HDR, 2);
	m[6] = (uint8_t)kind;
	m[7] = (uint8_t)dir;
	jt_le(m + 8, (uint32_t)fd, 4);
	jt_le(m + 12, len, 4);
	jt_le(m + 16, stream, 8);
	jt_le(m + 24, pos, 8);
	jt_le(m + 32, flags, 4);
	jt_le(m + 36, cap, 4);
	if (cap)
		memcpy(m + JAVA_MSG_HDR, data, cap);
	return JAVA_MSG_HDR + cap;
}

/* A record as java.bpf.c writes it around a message; its length. */
static inline size_t jt_rec(uint8_t *buf, uint32_t type, uint32_t pid, uint32_t tid, uint64_t ts,
			    const uint8_t *msg, size_t n)
{
	struct java_rec *r = (struct java_rec *)buf;

	memset(r, 0, sizeof(*r));
	r->h.type = type;
	r->h.tgid = pid;
	r->h.tid = tid;
	r->h.fd = 3;
	r->h.ts_ns = ts;
	r->len = r->cap_len = (uint32_t)n;
	memcpy(r->data, msg, n);
	return sizeof(*r) + n;
}

/* --- real JVMs --------------------------------------------------------------------- */

static inline uint64_t jt_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static inline int jt_sh(const char *cmd)
{
	int rc = system(cmd);

	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* JavaPeer compiled into JAVA_TEST_WORK/peer, and a keystore beside it.
 * 0, or -1 (the reason on stderr). Done once per process. */
static inline int jt_peer_build(void)
{
	static int done = 0;
	char cmd[3 * PATH_MAX];

	if (done)
		return done > 0 ? 0 : -1;
	done = -1;
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/peer && javac -d %s/peer %s/JavaPeer.java && "
		 "{ test -f %s/peer/ks.p12 || keytool -genkeypair -keystore %s/peer/ks.p12 "
		 "-storetype PKCS12 -storepass changeit -keypass changeit -keyalg RSA -keysize 2048 "
		 "-dname CN=localhost -validity 30 -alias peer >/dev/null 2>&1; }",
		 JAVA_TEST_WORK, JAVA_TEST_WORK, JAVA_PEERS_DIR, JAVA_TEST_WORK, JAVA_TEST_WORK);
	if (jt_sh(cmd)) {
		fprintf(stderr, "cannot build JavaPeer or its keystore: %s\n", cmd);
		return -1;
	}
	done = 1;
	return 0;
}

struct jt_jvm {
	pid_t pid;
	int in;          /* its stdin */
	int out;         /* its stdout */
	char err[PATH_MAX]; /* its stderr, a file */
	char rest[4096]; /* stdout read but not yet returned */
	size_t nrest;
};

/* Start `java [flags] -cp peer JavaPeer MODE PORT keystore pass`. flags is
 * NULL-terminated. 0, or -1. */
static inline int jt_jvm_start(struct jt_jvm *j, const char *java, const char *const *flags,
			       const char *mode, int port)
{
	int pin[2], pout[2];
	char cp[PATH_MAX], ks[PATH_MAX], portbuf[16];
	const char *argv[32];
	int n = 0;

	memset(j, 0, sizeof(*j));
	if (jt_peer_build() || pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC))
		return -1;
	snprintf(cp, sizeof(cp), "%s/peer", JAVA_TEST_WORK);
	snprintf(ks, sizeof(ks), "%s/peer/ks.p12", JAVA_TEST_WORK);
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	snprintf(j->err, sizeof(j->err), "%s/jvm-%d-%d.err", JAVA_TEST_WORK, (int)getpid(), port);
	argv[n++] = java;
	for (int i = 0; flags && flags[i] && n < 24; i++)
		argv[n++] = flags[i];
	argv[n++] = "-cp";
	argv[n++] = cp;
	argv[n++] = "JavaPeer";
	argv[n++] = mode;
	argv[n++] = portbuf;
	argv[n++] = ks;
	argv[n++] = "changeit";
	argv[n] = NULL;
	j->pid = fork();
	if (j->pid < 0)
		return -1;
	if (j->pid == 0) {
		int e = open(j->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(pin[0], 0);
		dup2(pout[1], 1);
		if (e >= 0)
			dup2(e, 2);
		setpgid(0, 0);
		execvp(java, (char *const *)argv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	j->in = pin[1];
	j->out = pout[0];
	return 0;
}

/* The JVM's stderr so far (static buffer). */
static inline const char *jt_jvm_stderr(const struct jt_jvm *j)
{
	static char buf[65536];
	int fd = open(j->err, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

/* Wait until the JVM's stderr holds needle. 0, or -1 after timeout_ms. */
static inline int jt_jvm_wait_err(const struct jt_jvm *j, const char *needle, int timeout_ms)
{
	uint64_t end = jt_now_ms() + (uint64_t)timeout_ms;

	while (!strstr(jt_jvm_stderr(j), needle)) {
		if (jt_now_ms() > end)
			return -1;
		usleep(50000);
	}
	return 0;
}

/* Send a command line; its one-line answer into ans (without the newline).
 * 0, or -1 after timeout_ms. */
static inline int jt_jvm_cmd(struct jt_jvm *j, const char *cmd, char *ans, size_t len,
			     int timeout_ms)
{
	uint64_t end = jt_now_ms() + (uint64_t)timeout_ms;
	size_t cl = strlen(cmd);

	if (write(j->in, cmd, cl) != (ssize_t)cl || write(j->in, "\n", 1) != 1)
		return -1;
	for (;;) {
		char *nl = memchr(j->rest, '\n', j->nrest);
		struct pollfd p = {.fd = j->out, .events = POLLIN};
		ssize_t n;

		if (nl) {
			size_t k = (size_t)(nl - j->rest);

			snprintf(ans, len, "%.*s", (int)k, j->rest);
			memmove(j->rest, nl + 1, j->nrest - k - 1);
			j->nrest -= k + 1;
			return 0;
		}
		if (jt_now_ms() > end || j->nrest == sizeof(j->rest))
			return -1;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(j->out, j->rest + j->nrest, sizeof(j->rest) - j->nrest);
		if (n <= 0)
			return -1;
		j->nrest += (size_t)n;
	}
}

static inline void jt_jvm_stop(struct jt_jvm *j)
{
	if (j->pid > 0) {
		kill(-j->pid, SIGKILL);
		kill(j->pid, SIGKILL);
		waitpid(j->pid, NULL, 0);
	}
	if (j->in > 0)
		close(j->in);
	if (j->out > 0)
		close(j->out);
	unlink(j->err);
	j->pid = 0;
	j->in = j->out = -1;
}

/* A TCP port nobody listens on now (bind to 0, read it back). */
static inline int jt_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &l))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

#endif /* SONDE_JAVA_TEST_UTIL_H */
