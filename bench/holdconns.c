/*
 * holdconns.c - open N keep-alive HTTP connections, make one request on
 * each, and hold them open: the load for the agent's memory footprint.
 *
 * The one idea: a connection the agent never saw a byte of costs it
 * nothing, so every connection carries one complete GET and its response
 * before it is parked. Connections are made in batches smaller than the
 * server's listen backlog, so no SYN is dropped and retried a second later.
 * When all are open it prints "holding N" and sleeps until killed.
 *
 * usage: holdconns PORT N [PATH]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BATCH 200

static int open_one(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read until the end of the response head; the body is a few bytes and
 * arrives in the same read on loopback. */
static int read_response(int fd)
{
	char buf[4096];
	size_t have = 0;

	while (have < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = 0;
		if (strstr(buf, "\r\n\r\n"))
			return strncmp(buf, "HTTP/1.1 200", 12) ? -1 : 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	char req[256];
	int port, n, *fds, opened = 0;

	if (argc < 3 || (port = atoi(argv[1])) <= 0 || (n = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: holdconns PORT N [PATH]\n");
		return 2;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
	         argc > 3 ? argv[3] : "/index.html");
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	fds = calloc((size_t)n, sizeof(*fds));
	if (!fds)
		return 1;
	while (opened < n) {
		int b = n - opened < BATCH ? n - opened : BATCH;
		for (int i = 0; i < b; i++) {
			fds[opened + i] = open_one(port);
			if (fds[opened + i] < 0) {
				fprintf(stderr, "holdconns: connection %d failed: %m\n", opened + i);
				return 1;
			}
			if (write(fds[opened + i], req, strlen(req)) != (ssize_t)strlen(req)) {
				fprintf(stderr, "holdconns: write on connection %d failed\n", opened + i);
				return 1;
			}
		}
		for (int i = 0; i < b; i++) {
			if (read_response(fds[opened + i])) {
				fprintf(stderr, "holdconns: no 200 response on connection %d\n", opened + i);
				return 1;
			}
		}
		opened += b;
	}
	printf("holding %d\n", opened);
	fflush(stdout);
	for (;;)
		pause();
}
