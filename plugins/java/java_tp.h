/*
 * java_tp.h - the Java plugin's two tracepoints (a thread of a JVM is
 * created / exits), attached by the plugin itself on a second copy of
 * java.bpf.c whose maps are the host copy's (java_tp.c).
 */
#ifndef SONDE_JAVA_TP_H
#define SONDE_JAVA_TP_H

#include <stddef.h>

#include <sonde/plugin.h>

struct java_tp;

/* Open, load and attach; NULL and why on failure. */
struct java_tp *java_tp_open(const struct sonde_host_api *host, struct sonde_bpf *host_copy,
			     const void *obj, size_t len, char *why, size_t cap);
void java_tp_close(struct java_tp *t);

#endif
