/*
 * java_msg.h - the messages the Java agent (agent/src/sonde/agent/Core.java)
 * writes, and their parser.
 *
 * The one idea: a message is a fixed little-endian header and the bytes
 * that follow it, nothing else; the parser checks every field against the
 * others and against the bytes really present, and copies nothing (the
 * payload points into the caller's buffer).
 *
 *   0 u32 magic "SVJ1"    4 u16 header length (>= 40)   6 u8 kind   7 u8 dir
 *   8 s32 socket fd (-1: unknown)   12 u32 bytes the call moved
 *  16 u64 stream id   24 u64 position of this stream and direction
 *  32 u32 flags   36 u32 payload bytes that follow the header
 *
 * BEGIN and END (a task handed from one thread to another starts or ends
 * on the thread that writes the message) have no payload; the stream id
 * field carries the task's key and the position field the key it belongs
 * to (BEGIN: the submitting thread's key, 0 unknown) or the key the thread
 * goes back to (END; 0: the thread's own key). The kernel side reads these two fields too
 * (java.bpf.c), at the offsets below.
 *
 * Virtual threads (no payload either): SLOT (a carrier thread's key word:
 * the stream id field is its address; the kernel points the carrier's
 * sonde_thread_ctx entry at it), VSTART (virtual thread key started by the
 * thread whose key is in the position field) and VEND (key terminated).
 */
#ifndef SONDE_JAVA_MSG_H
#define SONDE_JAVA_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "java_rec.h"

#define JAVA_MSG_MAGIC 0x314a5653u /* "SVJ1" */

enum java_msg_kind {
	JAVA_MSG_DATA = 1,  /* plaintext of a TLS stream */
	JAVA_MSG_HELLO = 2, /* text: the agent started (JDK, hooks) */
	JAVA_MSG_NOTE = 3,  /* text: a hooked class loaded later */
	JAVA_MSG_FAIL = 4,  /* text: the agent did not start, and why */
	JAVA_MSG_BEGIN = JAVA_MSG_KIND_BEGIN, /* a handed-off task starts on this thread */
	JAVA_MSG_END = JAVA_MSG_KIND_END,     /* it ended: the thread's key goes back */
	JAVA_MSG_SLOT = JAVA_MSG_KIND_SLOT,   /* a carrier thread's key word */
	JAVA_MSG_VSTART = 8,                  /* a virtual thread started */
	JAVA_MSG_VEND = 9,                    /* a virtual thread terminated */
};

#define JAVA_MSGF_ENGINE (1u << 0) /* from an SSLEngine (else an SSLSocket) */

enum java_msg_err {
	JAVA_MSG_E_SHORT = -1,   /* fewer bytes than a header */
	JAVA_MSG_E_MAGIC = -2,
	JAVA_MSG_E_HDR = -3,     /* header length out of bounds */
	JAVA_MSG_E_KIND = -4,
	JAVA_MSG_E_LENGTH = -5,  /* payload length disagrees with the bytes present */
	JAVA_MSG_E_FIELD = -6,   /* a field out of range (dir, payload > moved ...) */
};

struct java_msg {
	uint8_t kind;         /* enum java_msg_kind */
	uint8_t dir;          /* 0: read by the application, 1: written */
	int32_t fd;           /* the socket under the stream, -1 unknown */
	uint32_t len;         /* bytes the call moved */
	uint64_t stream;      /* the agent's id of the SSLSocket / SSLEngine */
	uint64_t pos;         /* bytes of this stream and direction before */
	uint32_t flags;       /* JAVA_MSGF_* */
	uint32_t cap_len;     /* payload bytes at data */
	const uint8_t *data;  /* into the parsed buffer */
};

/* Parse one message of exactly n bytes. 0, or a negative java_msg_err. */
int java_msg_parse(const void *buf, size_t n, struct java_msg *m);
const char *java_msg_strerror(int err);
/* A task key (JAVA_KEY_TASK | n, n > 0)? */
int java_msg_task_key(uint64_t k);
/* A virtual thread's key (JAVA_KEY_VT | id, id > 0)? */
int java_msg_vt_key(uint64_t k);
/* A task, thread or virtual thread key; 0 allowed unless need. */
int java_msg_key_ok(uint64_t k, int need);

#endif /* SONDE_JAVA_MSG_H */
