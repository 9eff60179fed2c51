/*
 * java_parse_test.c - the Java plugin's parsers on byte vectors and on what
 * real JVMs (started here) say about themselves: the agent's messages
 * (java_msg.c), HotSpot performance data (java_perf.c), /proc text
 * (java_proc.c), and the attach protocol's request and answers
 * (java_attach.c). Every parser also meets every truncation of its input
 * and garbage.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "java_attach.h"
#include "java_msg.h"
#include "java_perf.h"
#include "java_proc.h"
#include "java_rec.h"
#include "java_test_util.h"

/* --- messages ---------------------------------------------------------------------- */

START_TEST(msg_fields_are_read)
{
	uint8_t m[JAVA_MSG_MAX];
	struct java_msg g;
	size_t n = jt_msg(m, JAVA_MSG_DATA, 1, 12, 5000, 0x1122334455667788ull, 77, JAVA_MSGF_ENGINE,
			  "hello", 5);

	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	ck_assert_int_eq(g.kind, JAVA_MSG_DATA);
	ck_assert_int_eq(g.dir, 1);
	ck_assert_int_eq(g.fd, 12);
	ck_assert_uint_eq(g.len, 5000);
	ck_assert_uint_eq(g.stream, 0x1122334455667788ull);
	ck_assert_uint_eq(g.pos, 77);
	ck_assert_uint_eq(g.flags, JAVA_MSGF_ENGINE);
	ck_assert_uint_eq(g.cap_len, 5);
	ck_assert_ptr_eq(g.data, m + JAVA_MSG_HDR);
	/* Every shorter length is refused, never read past. */
	for (size_t k = 0; k < n; k++)
		ck_assert_int_lt(java_msg_parse(m, k, &g), 0);
	ck_assert_int_eq(java_msg_parse(NULL, 0, &g), JAVA_MSG_E_SHORT);
	/* Text kinds; fd -1; an empty payload. */
	n = jt_msg(m, JAVA_MSG_HELLO, 0, -1, 2, 0, 0, 0, "hi", 2);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	n = jt_msg(m, JAVA_MSG_DATA, 0, -1, 300, 1, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	ck_assert_int_eq(g.fd, -1);
	/* The largest payload; one more is refused. */
	memset(m + JAVA_MSG_HDR, 'a', JAVA_MAX_PAYLOAD);
	n = jt_msg(m, JAVA_MSG_DATA, 0, 3, JAVA_MAX_PAYLOAD, 1, 0, 0, m + JAVA_MSG_HDR, JAVA_MAX_PAYLOAD);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	jt_le(m + 36, JAVA_MAX_PAYLOAD + 1, 4);
	ck_assert_int_eq(java_msg_parse(m, n + 1, &g), JAVA_MSG_E_LENGTH);
}
END_TEST

START_TEST(msg_errors_are_named)
{
	uint8_t m[256];
	struct java_msg g;
	size_t n;

	n = jt_msg(m, JAVA_MSG_DATA, 0, 3, 4, 1, 0, 0, "abcd", 4);
	m[0] = 'X';
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_MAGIC);
	n = jt_msg(m, 0, 0, 3, 4, 1, 0, 0, "abcd", 4);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_KIND);
	n = jt_msg(m, 10, 0, 3, 4, 1, 0, 0, "abcd", 4);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_KIND);
	n = jt_msg(m, JAVA_MSG_DATA, 0, 3, 0, 1, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD); /* moved nothing */
	n = jt_msg(m, JAVA_MSG_DATA, 0, 3, 4, 1, 0, 0, "abcd", 4);
	ck_assert_int_eq(java_msg_parse(m, n + 1, &g), JAVA_MSG_E_LENGTH); /* a byte too many */
	/* A longer header (a later agent) is skipped over. */
	memmove(m + 48, m + 40, 4);
	jt_le(m + 4, 48, 2);
	ck_assert_int_eq(java_msg_parse(m, 52, &g), 0);
	ck_assert_int_eq(memcmp(g.data, "abcd", 4), 0);
	for (int e = 0; e >= -6; e--)
		ck_assert_str_ne(java_msg_strerror(e), "?");
	ck_assert_str_eq(java_msg_strerror(-99), "?");
}
END_TEST

/* BEGIN and END: header only, a task key, and a key it belongs to / goes back to. */
START_TEST(msg_task_keys)
{
	const uint64_t task = JAVA_KEY_TASK | 42, thr = JAVA_KEY_THREAD | 1234;
	uint8_t m[256];
	struct java_msg g;
	size_t n;

	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, task, thr, 0, NULL, 0);
	ck_assert_uint_eq(n, JAVA_MSG_HDR);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	ck_assert_int_eq(g.kind, JAVA_MSG_BEGIN);
	ck_assert_uint_eq(g.stream, task);
	ck_assert_uint_eq(g.pos, thr);
	/* The kernel side reads the kind and the keys at these offsets. */
	ck_assert_int_eq(m[JAVA_MSG_OFF_KIND], JAVA_MSG_KIND_BEGIN);
	ck_assert_uint_eq(m[JAVA_MSG_OFF_KEY + 7], 0x4a);
	ck_assert_uint_eq(m[JAVA_MSG_OFF_KEY2 + 6], 0x54);
	/* Parent unknown (0) or a task key: fine for BEGIN. */
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, task, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, task, JAVA_KEY_TASK | 7, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	/* END: the key restored, or 0 for the thread's own key. */
	n = jt_msg(m, JAVA_MSG_END, 0, -1, 0, task, thr, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	ck_assert_int_eq(g.kind, JAVA_MSG_END);
	n = jt_msg(m, JAVA_MSG_END, 0, -1, 0, task, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	/* Wrong: a thread key as the task, no key, a foreign tag, a tid out
	 * of range, a payload, a length, an fd, flags. */
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, thr, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, 0, thr, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, JAVA_KEY_TASK, thr, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, task, 0x1234000000000001ull, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_END, 0, -1, 0, task, JAVA_KEY_THREAD | 0x80000000ull, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_END, 0, -1, 0, task, JAVA_KEY_THREAD, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 2, task, thr, 0, "ab", 2);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 5, task, thr, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, 3, 0, task, thr, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_END, 0, -1, 0, task, thr, 1, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	/* Truncated at every length: never parsed. */
	n = jt_msg(m, JAVA_MSG_BEGIN, 0, -1, 0, task, thr, 0, NULL, 0);
	for (size_t k = 0; k < n; k++)
		ck_assert_int_ne(java_msg_parse(m, k, &g), 0);
}
END_TEST

/* Virtual threads: SLOT (an aligned user address), VSTART (a virtual
 * thread's key and the key of the thread that started it), VEND. */
START_TEST(msg_virtual_threads)
{
	const uint64_t vt = JAVA_KEY_VT | 31, thr = JAVA_KEY_THREAD | 100, task = JAVA_KEY_TASK | 4;
	uint8_t m[256];
	struct java_msg g;
	size_t n;

	n = jt_msg(m, JAVA_MSG_SLOT, 0, -1, 0, 0x7f12345678f0ull, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	ck_assert_int_eq(g.kind, JAVA_MSG_SLOT);
	ck_assert_uint_eq(g.stream, 0x7f12345678f0ull);
	/* What the kernel side reads: kind and address where java.bpf.c looks. */
	ck_assert_int_eq(m[JAVA_MSG_OFF_KIND], JAVA_MSG_KIND_SLOT);
	{
		uint64_t at;

		memcpy(&at, m + JAVA_MSG_OFF_KEY, sizeof(at)); /* little-endian, like the agent */
		ck_assert_uint_eq(at, 0x7f12345678f0ull);
	}
	n = jt_msg(m, JAVA_MSG_SLOT, 0, -1, 0, 0x7f12345678f4ull, 0, 0, NULL, 0); /* unaligned */
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_SLOT, 0, -1, 0, 0, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_SLOT, 0, -1, 0, 0xffff800000001000ull, 0, 0, NULL, 0); /* kernel */
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_SLOT, 0, -1, 0, 0x1000, 0, 0, "ab", 2); /* no payload */
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);

	for (uint64_t parent = thr; parent; parent = parent == thr ? task : parent == task ? vt + 1 : 0) {
		n = jt_msg(m, JAVA_MSG_VSTART, 0, -1, 0, vt, parent, 0, NULL, 0);
		ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
		ck_assert_uint_eq(g.pos, parent);
	}
	n = jt_msg(m, JAVA_MSG_VSTART, 0, -1, 0, vt, 0, 0, NULL, 0); /* started by nobody known */
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_VSTART, 0, -1, 0, task, thr, 0, NULL, 0); /* not a vthread key */
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_VSTART, 0, -1, 0, JAVA_KEY_VT, thr, 0, NULL, 0); /* id 0 */
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_VEND, 0, -1, 0, vt, 0, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), 0);
	n = jt_msg(m, JAVA_MSG_VEND, 0, -1, 0, vt, thr, 0, NULL, 0);
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
	n = jt_msg(m, JAVA_MSG_VEND, 0, 5, 0, vt, 0, 0, NULL, 0); /* an fd */
	ck_assert_int_eq(java_msg_parse(m, n, &g), JAVA_MSG_E_FIELD);
}
END_TEST

START_TEST(msg_garbage_never_parses_wrongly)
{
	uint8_t m[512];
	struct java_msg g;

	srand(7);
	for (int i = 0; i < 200000; i++) {
		size_t n = (size_t)rand() % sizeof(m);

		for (size_t k = 0; k < n; k++)
			m[k] = (uint8_t)rand();
		if (i & 1 && n >= 8)
			jt_le(m, JAVA_MSG_MAGIC, 4), jt_le(m + 4, JAVA_MSG_HDR, 2);
		if (java_msg_parse(m, n, &g) == 0) {
			ck_assert_uint_le(g.cap_len, g.len);
			ck_assert((const uint8_t *)g.data + g.cap_len <= m + n);
		}
	}
}
END_TEST

/* --- performance data -------------------------------------------------------------- */

/* A file with a prologue and the given entries (name, type, data). */
static size_t perf_file(uint8_t *b, size_t cap, const char *const *names, const char *types,
			const char *const *vals)
{
	size_t off = 32, n = 0;

	memset(b, 0, cap);
	b[0] = 0xca, b[1] = 0xfe, b[2] = 0xc0, b[3] = 0xc0, b[4] = 1, b[5] = 2;
	for (; names[n]; n++) {
		size_t nl = strlen(names[n]) + 1, vl = types[n] == 'J' ? 8 : strlen(vals[n]) + 1;
		size_t elen = (20 + nl + vl + 7) & ~(size_t)7;
		uint8_t *e = b + off;

		jt_le(e, elen, 4);
		jt_le(e + 4, 20, 4);
		jt_le(e + 8, types[n] == 'J' ? 0 : vl, 4);
		e[12] = (uint8_t)types[n];
		jt_le(e + 16, 20 + nl, 4);
		memcpy(e + 20, names[n], nl);
		if (types[n] == 'J')
			jt_le(e + 20 + nl, strtoull(vals[n], NULL, 10), 8);
		else
			memcpy(e + 20 + nl, vals[n], vl);
		off += elen;
	}
	jt_le(b + 24, 32, 4);
	jt_le(b + 28, n, 4);
	return off;
}

START_TEST(perf_says_what_the_jvm_said)
{
	static const char *const names[] = {"sun.rt.jvmCapabilities", "java.property.java.version",
					    "sun.rt.createVmEndTime", "java.property.java.vm.name", NULL};
	static const char *const on[] = {"1100", "17.0.15", "123", "OpenJDK\x01VM"};
	static const char *const off[] = {"0100", "21", "0", "x"};
	uint8_t b[1024];
	struct java_perf p;
	size_t n;

	n = perf_file(b, sizeof(b), names, "BBJB", on);
	ck_assert_int_eq(java_perf_parse(b, n, &p), 0);
	ck_assert_int_eq(p.attachable, 1);
	ck_assert_int_eq(p.started, 1);
	ck_assert_str_eq(p.version, "17.0.15");
	ck_assert_str_eq(p.vm_name, "OpenJDK?VM");
	n = perf_file(b, sizeof(b), names, "BBJB", off);
	ck_assert_int_eq(java_perf_parse(b, n, &p), 0);
	ck_assert_int_eq(p.attachable, 0);
	ck_assert_int_eq(p.started, 0);
	/* Cut anywhere: a valid prologue still parses, keeping what fits. */
	n = perf_file(b, sizeof(b), names, "BBJB", on);
	for (size_t k = 0; k < n; k++) {
		int rc = java_perf_parse(b, k, &p);

		ck_assert_int_eq(rc, k < 32 ? -1 : 0);
		ck_assert_int_ne(p.attachable, 0);
	}
	/* Not performance data: another magic, big-endian. */
	b[0] = 0;
	ck_assert_int_eq(java_perf_parse(b, n, &p), -1);
	b[0] = 0xca;
	b[4] = 0;
	ck_assert_int_eq(java_perf_parse(b, n, &p), -1);
	b[4] = 1;
	/* Hostile offsets and lengths inside entries. */
	jt_le(b + 32 + 4, 100000, 4); /* name beyond the entry */
	ck_assert_int_eq(java_perf_parse(b, n, &p), 0);
	ck_assert_int_eq(p.attachable, -1);
	jt_le(b + 32, 3, 4); /* entry shorter than its header: the walk stops */
	ck_assert_int_eq(java_perf_parse(b, n, &p), 0);
	jt_le(b + 28, 0xffffffff, 4);
	ck_assert_int_eq(java_perf_parse(b, n, &p), 0);
}
END_TEST

START_TEST(perf_garbage)
{
	uint8_t b[2048];
	struct java_perf p;

	srand(11);
	for (int i = 0; i < 50000; i++) {
		size_t n = (size_t)rand() % sizeof(b);

		for (size_t k = 0; k < n; k++)
			b[k] = (uint8_t)rand();
		if (n >= 32) {
			b[0] = 0xca, b[1] = 0xfe, b[2] = 0xc0, b[3] = 0xc0, b[4] = 1;
			jt_le(b + 24, 32 + (uint32_t)rand() % 64, 4);
		}
		java_perf_parse(b, n, &p);
		ck_assert(p.version[sizeof(p.version) - 1] == 0);
	}
}
END_TEST

/* --- /proc text ---------------------------------------------------------------------- */

START_TEST(proc_status_and_maps)
{
	static const char status[] =
		"Name:\tjava\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t3313\nNgid:\t0\n"
		"Pid:\t3313\nPPid:\t1\nUid:\t1000\t1001\t1001\t1001\nGid:\t50\t51\t51\t51\n"
		"NSpid:\t3313\t7\nSigBlk:\t0000000000000000\nSigCgt:\t0000000101005ccd\n";
	static const char no_sigcgt[] = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nNSpid:\t5\n";
	struct java_proc p;

	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(java_proc_parse_status(status, &p), 0);
	ck_assert_uint_eq(p.nspid, 7);
	ck_assert_uint_eq(p.uid, 1001);
	ck_assert_uint_eq(p.gid, 51);
	ck_assert(JAVA_SIGQUIT_CAUGHT(&p));
	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(java_proc_parse_status(no_sigcgt, &p), -1);
	ck_assert_int_eq(java_proc_parse_status("", &p), -1);
	p.sigcgt = 0x1000;
	ck_assert(!JAVA_SIGQUIT_CAUGHT(&p));

	memset(&p, 0, sizeof(p));
	java_proc_parse_maps_line("7f00-7f10 r--p 00000000 fe:01 1234 /usr/lib/x86_64-linux-gnu/libc.so.6\n", &p);
	java_proc_parse_maps_line("7f00-7f10 r--p 00000000 fe:01 99 /usr/lib/jvm/java-17/lib/server/libjvm.so\n", &p);
	java_proc_parse_maps_line("7f00-7f10 r--p 00000000 fe:01 98 /usr/lib/jvm/java-17/lib/libjli.so\n", &p);
	java_proc_parse_maps_line("7f00-7f10 r--p 00000000 00:00 0 [heap]\n", &p);
	java_proc_parse_maps_line("7f00-7f10 r--p 00000000 fe:01 1 /opt/other/libc.so.6\n", &p);
	ck_assert(p.jvm && p.launcher);
	ck_assert_str_eq(p.libc, "/usr/lib/x86_64-linux-gnu/libc.so.6");
	memset(&p, 0, sizeof(p));
	java_proc_parse_maps_line("7f00-7f10 r--p 00000000 fe:01 99 /x/libjvm.so (deleted)\n", &p);
	java_proc_parse_maps_line("7f00-7f10 r--p 00000000 fe:01 99 /lib/ld-musl-x86_64.so.1\n", &p);
	ck_assert(!p.jvm);
	ck_assert_str_eq(p.libc, "/lib/ld-musl-x86_64.so.1");
}
END_TEST

START_TEST(proc_no_attach_flag)
{
	static const char cmd1[] = "java\0-XX:+DisableAttachMechanism\0-jar\0x.jar";
	static const char cmd2[] = "java\0-XX:+DisableAttachMechanismX\0-Dp=-XX:+DisableAttachMechanism";
	static const char env1[] = "PATH=/bin\0JAVA_TOOL_OPTIONS=-Xmx1g -XX:+DisableAttachMechanism";
	static const char env2[] = "OTHER=-XX:+DisableAttachMechanism\0JDK_JAVA_OPTIONS=-Xmx1g";

	ck_assert_int_eq(java_proc_no_attach(cmd1, sizeof(cmd1), 0), 1);
	ck_assert_int_eq(java_proc_no_attach(cmd2, sizeof(cmd2), 0), 0);
	ck_assert_int_eq(java_proc_no_attach(env1, sizeof(env1), 1), 1);
	ck_assert_int_eq(java_proc_no_attach(env2, sizeof(env2), 1), 0);
	/* Unterminated, cut anywhere: no read past the end. */
	for (size_t k = 0; k <= sizeof(cmd1); k++)
		java_proc_no_attach(cmd1, k, 0);
	ck_assert_int_eq(java_proc_no_attach(NULL, 0, 1), 0);
}
END_TEST

/* The JVMs' own statements: this program is no JVM; a JVM is one, catches
 * SIGQUIT, and its performance data says whether it takes attach. */
START_TEST(proc_of_real_jvms)
{
	static const char *const no_attach[] = {"-XX:+DisableAttachMechanism", NULL};
	static const char *const xrs[] = {"-Xrs", NULL};
	const char *const *flags[3] = {NULL, no_attach, xrs};
	struct java_proc p;

	ck_assert_int_eq(java_proc_read((uint32_t)getpid(), &p), 0);
	ck_assert(!p.jvm && !p.launcher);
	ck_assert_str_ne(p.libc, "");
	for (int i = 0; i < 3; i++) {
		struct jt_jvm j;

		ck_assert_int_eq(jt_jvm_start(&j, "java", flags[i], "http", jt_free_port()), 0);
		ck_assert_int_eq(jt_jvm_wait_err(&j, "listening", 30000), 0);
		ck_assert_int_eq(java_proc_read((uint32_t)j.pid, &p), 0);
		ck_assert(p.jvm);
		ck_assert(p.launcher);
		ck_assert_str_ne(p.libc, "");
		ck_assert_uint_eq(p.nspid, (uint32_t)j.pid);
		ck_assert_uint_eq(p.uid, geteuid());
		ck_assert_int_eq(p.perf_found, 1);
		ck_assert_int_eq(p.perf.started, 1);
		ck_assert_int_eq(p.perf.attachable, i == 1 ? 0 : 1);
		ck_assert_int_eq(p.flag_no_attach, i == 1);
		ck_assert_int_eq((int)JAVA_SIGQUIT_CAUGHT(&p), i == 2 ? 0 : 1);
		ck_assert_str_ne(p.perf.version, "");
		ck_assert_str_ne(p.perf.vm_name, "");
		jt_jvm_stop(&j);
	}
	ck_assert_int_eq(java_proc_read(0x7ffffff0u, &p), -1);
}
END_TEST

/* --- the attach protocol --------------------------------------------------------------- */

START_TEST(attach_request_bytes)
{
	static const char want[] = "1\0load\0instrument\0false\0/tmp/a.jar=v=1";
	char buf[2048], big[1100];

	ck_assert_int_eq(java_attach_request("/tmp/a.jar=v=1", buf, sizeof(buf)), (int)sizeof(want));
	ck_assert_int_eq(memcmp(buf, want, sizeof(want)), 0);
	ck_assert_int_eq(java_attach_request("/tmp/a.jar=v=1", buf, sizeof(want) - 1), -1);
	ck_assert_int_eq(java_attach_request("", buf, sizeof(buf)), -1);
	ck_assert_int_eq(java_attach_request(NULL, buf, sizeof(buf)), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ck_assert_int_eq(java_attach_request(big, buf, sizeof(buf)), -1); /* HotSpot reads 1024 */
}
END_TEST

START_TEST(attach_answers)
{
	struct java_attach_res r;

	ck_assert_int_eq(java_attach_parse("0\n0\n", 4, &r), 0); /* JDK 9..20 */
	ck_assert_int_eq(r.op, 0);
	ck_assert_int_eq(r.agent, 0);
	ck_assert_int_eq(java_attach_parse("0\nreturn code: 102\n", 19, &r), 0); /* JDK 21+ */
	ck_assert_int_eq(r.agent, 102);
	ck_assert_str_eq(r.text, "return code: 102");
	ck_assert_int_eq(java_attach_parse("101\n", 4, &r), 0);
	ck_assert_int_eq(r.op, 101);
	ck_assert_int_eq(r.agent, INT32_MIN);
	ck_assert_int_eq(java_attach_parse("0", 1, &r), 0);
	ck_assert_int_eq(java_attach_parse("-1\nAgent failed\x01\n", 17, &r), 0);
	ck_assert_int_eq(r.op, -1);
	ck_assert_str_eq(r.text, "Agent failed?");
	ck_assert_int_eq(java_attach_parse("", 0, &r), -1);
	ck_assert_int_eq(java_attach_parse("\n0\n", 3, &r), -1);
	ck_assert_int_eq(java_attach_parse("zero\n", 5, &r), -1);
	ck_assert_int_eq(java_attach_parse("99999999999999\n", 15, &r), -1);
	ck_assert_int_eq(java_attach_parse(NULL, 0, &r), -1);
	{
		char big[4096];

		memset(big, '7', sizeof(big));
		ck_assert_int_eq(java_attach_parse(big, sizeof(big), &r), -1);
		big[1] = '\n';
		ck_assert_int_eq(java_attach_parse(big, sizeof(big), &r), 0);
		ck_assert_uint_lt(strlen(r.text), sizeof(r.text));
	}
}
END_TEST

/* No JVM behind the pid: the conversation fails cleanly, no signal sent
 * when not allowed. */
START_TEST(attach_to_nothing_fails_cleanly)
{
	struct java_attach_req q = {.pid = (uint32_t)getpid(), .nspid = (uint32_t)getpid(),
				    .uid = geteuid(), .gid = getegid(), .may_signal = 0,
				    .agent = "/nonexistent.jar=v=1", .timeout_ms = 200};
	struct java_attach_res r;
	char err[256];

	ck_assert_int_eq(java_attach_load(&q, &r, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no attach socket"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("java_parse");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, msg_fields_are_read);
	tcase_add_test(tc, msg_errors_are_named);
	tcase_add_test(tc, msg_task_keys);
	tcase_add_test(tc, msg_virtual_threads);
	tcase_add_test(tc, msg_garbage_never_parses_wrongly);
	tcase_add_test(tc, perf_says_what_the_jvm_said);
	tcase_add_test(tc, perf_garbage);
	tcase_add_test(tc, proc_status_and_maps);
	tcase_add_test(tc, proc_no_attach_flag);
	tcase_add_test(tc, proc_of_real_jvms);
	tcase_add_test(tc, attach_request_bytes);
	tcase_add_test(tc, attach_answers);
	tcase_add_test(tc, attach_to_nothing_fails_cleanly);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
