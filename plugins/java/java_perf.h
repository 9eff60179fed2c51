/*
 * java_perf.h - what a HotSpot JVM says about itself in its performance
 * data file (/tmp/hsperfdata_USER/PID, the file jps and jcmd read).
 *
 * The one idea: the file is the JVM's own statement, read without
 * disturbing it: whether it accepts dynamic attach (sun.rt.jvmCapabilities,
 * what the JDK's own attach tools check), whether it finished starting
 * (sun.rt.createVmEndTime), and its version for the log.
 */
#ifndef SONDE_JAVA_PERF_H
#define SONDE_JAVA_PERF_H

#include <stddef.h>
#include <stdint.h>

struct java_perf {
	int attachable;          /* 1 yes, 0 refuses (-XX:+DisableAttachMechanism), -1 unknown */
	int started;             /* 1: the JVM finished starting, 0 not yet, -1 unknown */
	char version[64];        /* java.version, "" unknown */
	char vm_name[96];        /* java.vm.name, "" unknown */
};

/* Parse the file's bytes. 0, or -1 when they are not HotSpot performance
 * data this machine can read (magic, byte order, bounds). */
int java_perf_parse(const uint8_t *buf, size_t n, struct java_perf *out);

#endif /* SONDE_JAVA_PERF_H */
