/*
 * java_attach.h - HotSpot's dynamic attach, from C: load a Java agent into
 * a running JVM (what `jcmd PID JVMTI.agent_load` and the JDK's
 * VirtualMachine.loadAgent do), without a JDK on the agent's side.
 *
 * The one idea: the JVM listens for attach commands on a UNIX socket,
 * /tmp/.java_pid<PID>, which it only creates when it finds a file
 * .attach_pid<PID> (in its working directory, or /tmp) at a SIGQUIT. A
 * command is "1\0<cmd>\0<arg1>\0<arg2>\0<arg3>\0"; the answer is text, its
 * first line the result. Everything is named as the JVM sees it: its pid
 * in its own pid namespace, its /tmp through /proc/PID/root, its working
 * directory through /proc/PID/cwd.
 *
 * These calls block (polls of at most 50 ms, then the cancel flag is
 * read): the plugin runs them on a thread of its own.
 */
#ifndef SONDE_JAVA_ATTACH_H
#define SONDE_JAVA_ATTACH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct java_attach_req {
	uint32_t pid;            /* as the agent sees it */
	uint32_t nspid;          /* as the JVM sees itself */
	uid_t uid;               /* the JVM's effective uid and gid (owner of */
	gid_t gid;               /* the trigger file) */
	int may_signal;          /* 0: only use a socket that is already there */
	const char *agent;       /* "JAR=OPTIONS", the jar's path as the JVM sees it */
	int timeout_ms;          /* for the socket to appear, and for the answer */
	const volatile int *cancel; /* set: give up at the next poll (may be NULL) */
};

/* What the JVM answered. */
struct java_attach_res {
	int op;                  /* first line: 0 = the command ran */
	int agent;               /* second line, for load: the agent's result
	                            (0 = agentmain returned), INT32_MIN if absent */
	char text[256];          /* the answer after the first line, printable */
};

/* Load the agent through the instrument library. 0 when the JVM answered
 * (see res: the agent ran if op == 0 and agent == 0); -1 with err filled
 * when the conversation failed (no socket, refused, timeout). */
int java_attach_load(const struct java_attach_req *r, struct java_attach_res *res, char *err,
                     size_t errlen);

/* The answer's bytes to res. 0, or -1 when the first line is no number. */
int java_attach_parse(const char *buf, size_t n, struct java_attach_res *res);

/* The request for "load instrument false AGENT", into buf. Its length, or
 * -1 when it does not fit (or an argument holds a NUL). */
int java_attach_request(const char *agent, char *buf, size_t len);

#endif /* SONDE_JAVA_ATTACH_H */
