/*
 * node_inject_test.c - the plugin's script and its injection job against
 * real Node.js processes started here (Debian's node; no root, no BPF):
 *
 *   - the script alone (tests/live/node_peers/ctx_check.js): every back-end
 *     call written under its own request's key, keep-alive requests keyed
 *     apart, exceptions, the table emptied as connections close;
 *   - the job on a running server: SIGUSR1, the inspector found, the script
 *     run, the inspector closed again (no listening socket left), and the
 *     server answering before and after; a second run replaces the first
 *     copy; an unconfirmed registration removes the hooks again;
 *   - what is refused or fails: a server started with --inspect (its
 *     options, read from the real /proc), a process whose SIGUSR1 opens
 *     nothing (the job gives up, the process lives on).
 *
 * The kernel's side (the registration record, the SIGUSR1 handler check
 * through the task iterator) is in tests/live/test_node_ctx.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node_cdp.h"
#include "node_check.h"
#include "node_inject.h"
#include "node_proc.h"

static char *script;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int have_node(void)
{
	return system("node --version >/dev/null 2>&1") == 0;
}

static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* GET path on 127.0.0.1:port; the status, or -1. */
static int http_get(uint16_t port, const char *path)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 10 };
	char req[256], buf[512];
	int fd = socket(AF_INET, SOCK_STREAM, 0), st = -1;
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, strlen(req)) == (ssize_t)strlen(req) &&
	    (n = read(fd, buf, sizeof(buf) - 1)) > 12) {
		buf[n] = 0;
		st = atoi(buf + 9);
	}
	close(fd);
	return st;
}

/* Start argv with stdout/stderr into a file; wait until port answers. */
static pid_t spawn(char *const argv[], uint16_t port, const char *log)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; port && i < 300; i++) {
		if (http_get(port, "/ok") == 200)
			return pid;
		usleep(50000);
	}
	ck_assert_msg(port == 0, "%s did not answer on port %u", argv[0], port);
	return pid;
}

static void reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static int alive(pid_t pid)
{
	int st;

	return waitpid(pid, &st, WNOHANG) == 0;
}

/* Run a job to its end; the kernel's confirmation is played by `confirm`. */
static struct node_job *run_job(pid_t pid, int confirm)
{
	struct node_job *j = calloc(1, sizeof(*j));
	char *expr = node_cdp_script_call(script, 0x1122334455667788ull, (uint32_t)getpid(), 4096);
	uint64_t end = now_ns() + 60000000000ull;

	ck_assert_ptr_nonnull(j);
	ck_assert_ptr_nonnull(expr);
	if (node_job_start(j, (uint32_t)pid, expr, now_ns()))
		return j;
	while (now_ns() < end) {
		enum node_job_phase p = node_job_step(j, now_ns());

		if (p == NJ_DONE || p == NJ_FAILED)
			break;
		if (p == NJ_WAIT_REG && j->registered < 0)
			node_job_registered(j, confirm);
		usleep(2000);
	}
	return j;
}

static void free_job(struct node_job *j)
{
	node_job_free(j);
	free(j);
}

static int count_listeners(pid_t pid)
{
	struct node_sock s[64];

	return node_listeners((uint32_t)pid, s, 64);
}

/* --- tests ------------------------------------------------------------------------------ */

START_TEST(script_keys_follow_requests)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cd /tmp && timeout 120 node %s/ctx_check.js %s", NODE_PEERS_DIR,
		 NODE_CTX_JS);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(job_runs_the_script_and_closes_the_inspector)
{
	uint16_t port;
	char ps[16], log[] = "/tmp/sonde-node-inject-XXXXXX", ver[64] = "";
	char *argv[] = { "node", NODE_PEERS_DIR "/server.js", ps, "1", "0", "1", NULL };
	struct node_job *j;
	int before;
	pid_t pid;
	FILE *f;

	port = free_port();
	snprintf(ps, sizeof(ps), "%u", port);
	close(mkstemp(log));
	pid = spawn(argv, port, log);
	before = count_listeners(pid);
	ck_assert_int_eq(before, 1);

	j = run_job(pid, 1);
	ck_assert_msg(j->phase == NJ_DONE && j->ok, "phase %s: %s / %s",
		      node_job_phase_name(j->phase), j->why, j->warn);
	ck_assert_str_eq(j->warn, "");
	ck_assert_int_eq(j->res.ok, 1);
	ck_assert_int_eq(j->res.replaced, 0);
	ck_assert_str_eq(j->finish_value, "kept");
	f = popen("node -p process.versions.node", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(ver, sizeof(ver), f));
	pclose(f);
	ver[strcspn(ver, "\n")] = 0;
	ck_assert_str_eq(j->res.node, ver);
	free_job(j);
	/* the inspector's socket is gone; the server works */
	ck_assert_int_eq(count_listeners(pid), before);
	ck_assert_int_eq(http_get(port, "/ok"), 200);
	ck_assert(alive(pid));

	/* again: the first copy is replaced */
	j = run_job(pid, 1);
	ck_assert_msg(j->phase == NJ_DONE && j->ok, "%s", j->why);
	ck_assert_int_eq(j->res.replaced, 1);
	free_job(j);

	/* the kernel did not confirm: the hooks go again ... */
	j = run_job(pid, 0);
	ck_assert_int_eq(j->phase, NJ_FAILED);
	ck_assert_ptr_nonnull(strstr(j->why, "registration"));
	ck_assert_str_eq(j->finish_value, "removed");
	free_job(j);
	/* ... so the next copy replaces nothing */
	j = run_job(pid, 1);
	ck_assert_msg(j->phase == NJ_DONE && j->ok, "%s", j->why);
	ck_assert_int_eq(j->res.replaced, 0);
	free_job(j);
	ck_assert_int_eq(count_listeners(pid), before);
	ck_assert_int_eq(http_get(port, "/ok"), 200);
	ck_assert(alive(pid));
	reap(pid);
	unlink(log);
}
END_TEST

START_TEST(a_server_started_with_inspect_is_left_alone)
{
	uint16_t port;
	char ps[16], path[64], why[256], log[] = "/tmp/sonde-node-inject-XXXXXX";
	char *argv[] = { "node", "--inspect=127.0.0.1:0", NODE_PEERS_DIR "/server.js", ps, "1", "0",
			 "1", NULL };
	char *cmd, *status;
	size_t clen, slen;
	struct node_sigmasks m;
	pid_t pid;

	port = free_port();
	snprintf(ps, sizeof(ps), "%u", port);
	close(mkstemp(log));
	pid = spawn(argv, port, log);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	cmd = node_read_file(path, 1 << 20, &clen);
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	status = node_read_file(path, 1 << 16, &slen);
	ck_assert_ptr_nonnull(cmd);
	ck_assert_ptr_nonnull(status);
	ck_assert_int_eq(node_status_parse(status, slen, &m), 0);
	ck_assert_uint_eq(node_opts_scan(cmd, clen, NULL, 0), NODE_OPT_INSPECT);
	ck_assert_int_eq(node_precheck(&m, node_opts_scan(cmd, clen, NULL, 0), why, sizeof(why)), -1);
	free(cmd);
	free(status);
	reap(pid);
	unlink(log);
}
END_TEST

START_TEST(a_process_whose_sigusr1_opens_nothing)
{
	char log[] = "/tmp/sonde-node-inject-XXXXXX";
	char *argv[] = { "python3", "-c",
			 "import signal, time\n"
			 "signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n"
			 "print('ready', flush=True)\n"
			 "time.sleep(60)\n",
			 NULL };
	struct node_job *j;
	char buf[256] = "";
	pid_t pid;
	FILE *f;

	close(mkstemp(log));
	pid = spawn(argv, 0, log);
	for (int i = 0; i < 200; i++) {
		f = fopen(log, "r");
		if (f && fgets(buf, sizeof(buf), f) && !strncmp(buf, "ready", 5)) {
			fclose(f);
			break;
		}
		if (f)
			fclose(f);
		usleep(50000);
	}
	ck_assert_str_eq(buf, "ready\n");
	j = run_job(pid, 1);
	ck_assert_int_eq(j->phase, NJ_FAILED);
	ck_assert_ptr_nonnull(strstr(j->why, "did not start listening"));
	ck_assert_int_eq(j->have_insp, 0);
	free_job(j);
	ck_assert(alive(pid));
	reap(pid);
	unlink(log);
}
END_TEST

START_TEST(a_gone_process_fails_at_once)
{
	struct node_job j;
	char *expr = strdup("1");
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	ck_assert_int_eq(node_job_start(&j, (uint32_t)pid, expr, now_ns()), -1);
	ck_assert_int_eq(j.phase, NJ_FAILED);
	ck_assert_str_ne(j.why, "");
	node_job_free(&j);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("node_inject");
	TCase *tc = tcase_create("all");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, script_keys_follow_requests);
	tcase_add_test(tc, job_runs_the_script_and_closes_the_inspector);
	tcase_add_test(tc, a_server_started_with_inspect_is_left_alone);
	tcase_add_test(tc, a_process_whose_sigusr1_opens_nothing);
	tcase_add_test(tc, a_gone_process_fails_at_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	size_t len;
	SRunner *r;
	int failed;

	script = node_read_file(NODE_CTX_JS, 1 << 20, &len);
	if (!script) {
		fprintf(stderr, "%s: cannot read\n", NODE_CTX_JS);
		return 1;
	}
	if (!have_node()) {
		fprintf(stderr, "SKIP: node is not installed\n");
		free(script);
		return 77;
	}
	r = srunner_create(suite());
	srunner_set_fork_status(r, CK_NOFORK);
	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	free(script);
	return failed ? 1 : 0;
}
