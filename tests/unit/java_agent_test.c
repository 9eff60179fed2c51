/*
 * java_agent_test.c - the Java agent (plugins/java/agent) in real JVMs,
 * loaded the way the plugin loads it (java_attach.c: trigger file,
 * SIGQUIT, the attach socket) but with no kernel side: the agent's option
 * sink=FILE makes it append its messages to a file instead of writing them
 * to /dev/null for the uprobe. Each message is then wrapped in a record as
 * java.bpf.c would, and given to the real plugin on the test host, whose
 * HTTP plugin makes the spans.
 *
 * For every JDK found (java on PATH, and each /usr/lib/jvm/NAME/bin/java):
 *   - an HTTPS server on com.sun.net.httpserver (TLS in SSLEngine) that is
 *     also, on command, a client with HttpsURLConnection (SSLSocket); run
 *     with -XX:+BytecodeVerificationLocal, so the JDK classes the agent
 *     rewrites are verified;
 *   - attach; 3 requests: 3 https SERVER spans and 3 CLIENT spans, counted
 *     against the server's own log and the client's answer;
 *   - detach (the lock is let go): the agent's thread ends, nothing more
 *     is written, the JVM keeps serving;
 *   - attach again to the same JVM: it works again;
 *   - an agent that cannot start (a protocol it does not speak) says why
 *     in a FAIL message and prints nothing into the JVM's stderr;
 *   - an SSLSocket server (TLS in SSLSocket on both sides).
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sonde/plugin.h>

#include "java_attach.h"
#include "java_msg.h"
#include "java_plugin.h"
#include "java_rec.h"
#include "java_test_util.h"
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void); /* the Java plugin, linked in */

static const struct sonde_plugin *http_desc(void)
{
	static void *dl;
	sonde_plugin_entry_fn fn;

	if (!dl)
		dl = dlopen(HTTP_PLUGIN_SO, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(dl != NULL, "%s: %s", HTTP_PLUGIN_SO, dlerror());
	fn = (sonde_plugin_entry_fn)dlsym(dl, SONDE_PLUGIN_ENTRY_SYMBOL);
	ck_assert_ptr_nonnull(fn);
	return fn();
}

/* --- the JDKs ------------------------------------------------------------------------ */

#define MAX_JDKS 8
static char jdks[MAX_JDKS][PATH_MAX];
static int njdks;

static int jdk_known(const char *real)
{
	for (int i = 0; i < njdks; i++) {
		char r[PATH_MAX];

		if (realpath(jdks[i], r) && !strcmp(r, real))
			return 1;
	}
	return 0;
}

static void jdk_add(const char *java)
{
	char real[PATH_MAX], cmd[PATH_MAX + 64];

	if (njdks == MAX_JDKS || !realpath(java, real) || jdk_known(real))
		return;
	/* 11 or later: the agent is compiled for 11 */
	snprintf(cmd, sizeof(cmd), "'%s' -version 2>&1 | grep -qE 'version \"(1[1-9]|[2-9][0-9])'", real);
	if (jt_sh(cmd))
		return;
	snprintf(jdks[njdks++], PATH_MAX, "%s", real);
}

static void find_jdks(void)
{
	DIR *d = opendir("/usr/lib/jvm");
	struct dirent *e;
	char p[PATH_MAX], w[PATH_MAX];
	FILE *f = popen("command -v java", "r");

	if (f && fgets(w, sizeof(w), f)) {
		w[strcspn(w, "\n")] = 0;
		jdk_add(w);
	}
	if (f)
		pclose(f);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/usr/lib/jvm/%s/bin/java", e->d_name);
		if (access(p, X_OK) == 0)
			jdk_add(p);
	}
	if (d)
		closedir(d);
}

/* --- one session of the agent ------------------------------------------------------------ */

struct session {
	char lock[512];
	char sink[512];
	int lock_fd;
};

static int hold_lock(const char *path)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_SETLK, &fl), 0);
	return fd;
}

/* Attach with options opt (after v=..., lock, sink, jar); the answer. */
static struct java_attach_res attach(struct jt_jvm *j, struct session *s, int n, const char *proto)
{
	struct java_attach_res r;
	char agent[4096], err[256];
	struct java_attach_req q = {.pid = (uint32_t)j->pid, .nspid = (uint32_t)j->pid,
				    .uid = geteuid(), .gid = getegid(), .may_signal = 1,
				    .agent = agent, .timeout_ms = 20000};

	snprintf(s->lock, sizeof(s->lock), "%s/s-%d-%d.lock", JAVA_TEST_WORK, (int)j->pid, n);
	snprintf(s->sink, sizeof(s->sink), "%s/s-%d-%d.sink", JAVA_TEST_WORK, (int)j->pid, n);
	unlink(s->sink);
	s->lock_fd = hold_lock(s->lock);
	snprintf(agent, sizeof(agent), "%s=v=%s,token=7,lock=%s,sink=%s,jar=%s,cap=16384",
		 JAVA_AGENT_JAR, proto, s->lock, s->sink, JAVA_AGENT_JAR);
	ck_assert_msg(java_attach_load(&q, &r, err, sizeof(err)) == 0, "attach: %s", err);
	return r;
}

static void release(struct session *s)
{
	close(s->lock_fd);
	unlink(s->lock);
	s->lock_fd = -1;
}

static off_t sink_size(const struct session *s)
{
	struct stat sb;

	return stat(s->sink, &sb) ? 0 : sb.st_size;
}

/* Is a thread named sonde-java-agen(t) (comm is 15 chars) alive in pid? */
static int agent_thread(pid_t pid)
{
	char path[320], comm[64];
	struct dirent *e;
	DIR *d;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d && !found && (e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f))
			found = !strncmp(comm, "sonde-java-agen", 15);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* What the sink holds, through the plugin on a test host: spans. */
struct outcome {
	int hello, fail, notes, tasks, data, server_https, client_https, other;
	char hello_text[600];
	char fail_text[600];
};

static void replay_sink(const struct session *s, pid_t pid, struct outcome *o)
{
	struct th_host *h = th_new();
	const struct sonde_plugin *java = sonde_plugin_entry();
	void *state = NULL;
	static uint8_t buf[4 << 20];
	static _Alignas(8) uint8_t rec[sizeof(struct java_rec) + JAVA_MSG_MAX];
	int fd = open(s->sink, O_RDONLY), fds[64], nfds = 0;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : 0;
	size_t off = 0;
	uint32_t base;

	memset(o, 0, sizeof(*o));
	if (fd >= 0)
		close(fd);
	ck_assert_int_eq(th_load(h, http_desc(), "http"), SONDE_OK);
	ck_assert_int_eq(java->init(th_api(h), th_self(h), &state), SONDE_OK);
	base = java_debug_rec_base();
	while (n > 0 && off + JAVA_MSG_HDR <= (size_t)n) {
		struct java_msg m;
		size_t len = (size_t)(buf[off + 4] | buf[off + 5] << 8) +
			     ((size_t)buf[off + 36] | (size_t)buf[off + 37] << 8 |
			      (size_t)buf[off + 38] << 16 | (size_t)buf[off + 39] << 24);
		int known = 0;

		ck_assert_uint_le(off + len, (size_t)n);
		ck_assert_int_eq(java_msg_parse(buf + off, len, &m), 0);
		if (m.kind == JAVA_MSG_HELLO) {
			o->hello++;
			snprintf(o->hello_text, sizeof(o->hello_text), "%.*s", (int)m.cap_len, m.data);
		} else if (m.kind == JAVA_MSG_FAIL) {
			o->fail++;
			snprintf(o->fail_text, sizeof(o->fail_text), "%.*s", (int)m.cap_len, m.data);
		} else if (m.kind == JAVA_MSG_NOTE) {
			o->notes++;
		} else if (m.kind == JAVA_MSG_BEGIN || m.kind == JAVA_MSG_END) {
			o->tasks++;
		} else {
			o->data++;
			ck_assert_int_ge(m.fd, 0);
			/* A connection per socket, its role from its first bytes'
			 * direction (a server reads first). */
			for (int i = 0; i < nfds; i++)
				known |= fds[i] == m.fd;
			if (!known && nfds < 64) {
				struct sonde_conn_info ci;
				struct th_conn *c;

				th_conn_info_init(&ci, m.dir == 0 ? SONDE_ROLE_SERVER : SONDE_ROLE_CLIENT);
				ci.pid = (uint32_t)pid;
				c = th_conn_open(h, &ci);
				ck_assert_ptr_nonnull(c);
				th_conn_set_fd(c, (uint32_t)m.fd);
				fds[nfds++] = m.fd;
			}
		}
		java->record(state, rec, jt_rec(rec, base + JAVA_REC_MSG, (uint32_t)pid, 1,
						1000 + off, buf + off, len));
		off += len;
	}
	ck_assert_uint_eq(off, (size_t)(n > 0 ? n : 0));
	for (size_t i = 0; i < th_n_ended(h); i++) {
		const struct th_span *sp = th_ended(h, i);
		const char *scheme = th_span_str(sp, "url.scheme");
		int https = scheme && !strcmp(scheme, "https");

		if (sp->kind == SONDE_SPAN_SERVER && https)
			o->server_https++;
		else if (sp->kind == SONDE_SPAN_CLIENT && https)
			o->client_https++;
		else
			o->other++;
	}
	ck_assert_uint_eq(java_debug_counters()->bad, 0);
	ck_assert_uint_eq(java_debug_counters()->gaps, 0);
	java->fini(state);
	th_free(h);
}

static int count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		n += !strncmp(l, prefix, strlen(prefix));
	return n;
}

/* Wait until the sink stops growing (the agent writes as the calls happen;
 * the client's "done" may come before the server's last write). */
static void sink_settle(const struct session *s)
{
	off_t last = -1;

	for (int i = 0; i < 40 && sink_size(s) != last; i++) {
		last = sink_size(s);
		usleep(100000);
	}
}

static void https_server_on(const char *java)
{
	static const char *const verify[] = {"-XX:+UnlockDiagnosticVMOptions",
					     "-XX:+BytecodeVerificationLocal", NULL};
	struct jt_jvm j;
	struct session s1, s2, s3;
	struct java_attach_res r;
	struct outcome o;
	char cmd[256], ans[256];
	int port = jt_free_port();
	off_t size;

	fprintf(stderr, "java_agent_test: %s\n", java);
	ck_assert_int_eq(jt_jvm_start(&j, java, verify, "https", port), 0);
	ck_assert_int_eq(jt_jvm_wait_err(&j, "listening", 30000), 0);
	snprintf(cmd, sizeof(cmd), "get https://127.0.0.1:%d/req/before 1", port);
	ck_assert_int_eq(jt_jvm_cmd(&j, cmd, ans, sizeof(ans), 30000), 0);
	ck_assert_str_eq(ans, "done 1"); /* TLS in use before the agent came */

	/* Attach; three requests. */
	r = attach(&j, &s1, 1, "1");
	ck_assert_int_eq(r.op, 0);
	ck_assert_int_eq(r.agent, 0);
	for (int i = 0; i < 100 && !agent_thread(j.pid); i++)
		usleep(20000); /* the thread names itself once it runs */
	ck_assert(agent_thread(j.pid));
	snprintf(cmd, sizeof(cmd), "get https://127.0.0.1:%d/req/k 3", port);
	ck_assert_int_eq(jt_jvm_cmd(&j, cmd, ans, sizeof(ans), 30000), 0);
	ck_assert_str_eq(ans, "done 3");
	ck_assert_int_eq(jt_jvm_wait_err(&j, "served id=k2", 10000), 0);
	sink_settle(&s1);
	replay_sink(&s1, j.pid, &o);
	fprintf(stderr, "  hello: %s\n", o.hello_text);
	ck_assert_int_eq(o.hello, 1);
	ck_assert_int_eq(o.fail, 0);
	ck_assert_ptr_nonnull(strstr(o.hello_text, "SSLSocket read on"));
	ck_assert_ptr_nonnull(strstr(o.hello_text, "SSLSocket write on"));
	ck_assert_ptr_nonnull(strstr(o.hello_text, "SSLEngine wrap on"));
	ck_assert_ptr_nonnull(strstr(o.hello_text, "SSLEngine unwrap on"));
	ck_assert_ptr_null(strstr(o.hello_text, "failed"));
	ck_assert_int_eq(count_lines(jt_jvm_stderr(&j), "served id=k"), 3);
	ck_assert_int_eq(o.server_https, 3);
	ck_assert_int_eq(o.client_https, 3);
	ck_assert_int_eq(o.other, 0);

	/* Detach: the agent's thread ends, nothing more is written, and the
	 * JVM serves on. */
	release(&s1);
	for (int i = 0; i < 100 && agent_thread(j.pid); i++)
		usleep(50000);
	ck_assert(!agent_thread(j.pid));
	size = sink_size(&s1);
	snprintf(cmd, sizeof(cmd), "get https://127.0.0.1:%d/req/after 2", port);
	ck_assert_int_eq(jt_jvm_cmd(&j, cmd, ans, sizeof(ans), 30000), 0);
	ck_assert_str_eq(ans, "done 2");
	ck_assert_int_eq(jt_jvm_wait_err(&j, "served id=after1", 10000), 0);
	usleep(200000);
	ck_assert_int_eq(sink_size(&s1), size);

	/* Attach again: a new session in the same JVM. */
	r = attach(&j, &s2, 2, "1");
	ck_assert_int_eq(r.op, 0);
	ck_assert_int_eq(r.agent, 0);
	snprintf(cmd, sizeof(cmd), "get https://127.0.0.1:%d/req/again 2", port);
	ck_assert_int_eq(jt_jvm_cmd(&j, cmd, ans, sizeof(ans), 30000), 0);
	ck_assert_str_eq(ans, "done 2");
	ck_assert_int_eq(jt_jvm_wait_err(&j, "served id=again1", 10000), 0);
	sink_settle(&s2);
	replay_sink(&s2, j.pid, &o);
	ck_assert_int_eq(o.hello, 1);
	ck_assert_int_eq(o.server_https, 2);
	ck_assert_int_eq(o.client_https, 2);
	release(&s2);
	for (int i = 0; i < 100 && agent_thread(j.pid); i++)
		usleep(50000);
	ck_assert(!agent_thread(j.pid));

	/* An agent that cannot start says why, in its own channel. */
	r = attach(&j, &s3, 3, "9");
	ck_assert_int_eq(r.op, 0);
	ck_assert_int_eq(r.agent, 0);
	replay_sink(&s3, j.pid, &o);
	ck_assert_int_eq(o.fail, 1);
	ck_assert_int_eq(o.hello, 0);
	ck_assert_ptr_nonnull(strstr(o.fail_text, "protocol 9"));
	release(&s3);

	/* Through all of it, the JVM printed no stack trace and no VM warning
	 * of ours (JDK 21+ warns that an agent was loaded dynamically: that
	 * one is the JDK's policy, not a fault). */
	ck_assert_ptr_null(strstr(jt_jvm_stderr(&j), "Exception"));
	ck_assert_ptr_null(strstr(jt_jvm_stderr(&j), "bootstrap classpath"));
	ck_assert_int_eq(jt_jvm_cmd(&j, "ping", ans, sizeof(ans), 10000), 0);
	ck_assert_str_eq(ans, "pong");
	jt_jvm_stop(&j);
}

START_TEST(https_server_and_client_on_every_jdk)
{
	ck_assert_int_gt(njdks, 0);
	for (int i = 0; i < njdks; i++)
		https_server_on(jdks[i]);
}
END_TEST

/* An SSLSocket server: TLS in SSLSocket on both sides of the JVM. */
START_TEST(sslsocket_server)
{
	struct jt_jvm j;
	struct session s;
	struct java_attach_res r;
	struct outcome o;
	char cmd[256], ans[256];
	int port = jt_free_port();

	ck_assert_int_eq(jt_jvm_start(&j, jdks[0], NULL, "sslsocket", port), 0);
	ck_assert_int_eq(jt_jvm_wait_err(&j, "listening", 30000), 0);
	r = attach(&j, &s, 1, "1");
	ck_assert_int_eq(r.op, 0);
	ck_assert_int_eq(r.agent, 0);
	snprintf(cmd, sizeof(cmd), "get https://127.0.0.1:%d/req/s 4", port);
	ck_assert_int_eq(jt_jvm_cmd(&j, cmd, ans, sizeof(ans), 30000), 0);
	ck_assert_str_eq(ans, "done 4");
	ck_assert_int_eq(jt_jvm_wait_err(&j, "served id=s3", 10000), 0);
	sink_settle(&s);
	replay_sink(&s, j.pid, &o);
	ck_assert_int_eq(count_lines(jt_jvm_stderr(&j), "served id=s"), 4);
	ck_assert_int_eq(o.server_https, 4);
	ck_assert_int_eq(o.client_https, 4);
	release(&s);
	jt_jvm_stop(&j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("java_agent");
	TCase *tc = tcase_create("agent");
	SRunner *sr;
	int failed;

	find_jdks();
	if (!njdks || jt_peer_build()) {
		fprintf(stderr, "SKIP: no JDK 11+ with javac and keytool\n");
		return 77;
	}
	tcase_set_timeout(tc, 500);
	tcase_add_test(tc, https_server_and_client_on_every_jdk);
	tcase_add_test(tc, sslsocket_server);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
