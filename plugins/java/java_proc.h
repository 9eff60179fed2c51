/*
 * java_proc.h - what the Java plugin reads about a process from /proc
 * before it touches it: is it a HotSpot JVM, is it ready, does it take
 * SIGQUIT, who is it inside its namespaces, which C library does it use,
 * and what its performance data file says (java_perf.h).
 *
 * The one idea: decide from the process's own statements, read without
 * disturbing it; the parsers take text and are tested on their own.
 */
#ifndef SONDE_JAVA_PROC_H
#define SONDE_JAVA_PROC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "java_perf.h"

struct java_proc {
	/* /proc/PID/status */
	uint32_t nspid;         /* its pid in its own pid namespace */
	uint32_t uid, gid;      /* effective */
	uint64_t sigcgt;        /* signals it catches */
	/* /proc/PID/maps */
	int jvm;                /* libjvm.so is mapped: HotSpot (or a JVM built like it) */
	int launcher;           /* libjli.so mapped or the executable is .../java: a JVM
	                           that may not have mapped libjvm.so yet */
	int openj9;             /* libj9vm*.so mapped: OpenJ9, whose attach is not HotSpot's */
	char libc[PATH_MAX];    /* the C library's path as the process sees it */
	/* the performance data file */
	int perf_found;
	struct java_perf perf;
	/* the command line and the JAVA_TOOL_OPTIONS-like variables */
	int flag_no_attach;     /* -XX:+DisableAttachMechanism seen */
};

/* Fill p for pid. 0, or -1 when the process is gone or unreadable. */
int java_proc_read(uint32_t pid, struct java_proc *p);

/* The parsers java_proc_read uses. */
int java_proc_parse_status(const char *text, struct java_proc *p);
void java_proc_parse_maps_line(const char *line, struct java_proc *p);
/* A NUL-separated list (cmdline, environ): does it ask for
 * -XX:+DisableAttachMechanism (as an argument, or inside JAVA_TOOL_OPTIONS,
 * JDK_JAVA_OPTIONS or _JAVA_OPTIONS)? */
int java_proc_no_attach(const char *buf, size_t n, int environ);

#define JAVA_SIGQUIT_CAUGHT(p) (((p)->sigcgt >> 2) & 1) /* SIGQUIT is 3 */

#endif /* SONDE_JAVA_PROC_H */
