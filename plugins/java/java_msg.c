/*
 * java_msg.c - the parser of the Java agent's messages (java_msg.h).
 *
 * The one idea: read each field at its fixed offset, little-endian, then
 * reject the message unless the fields agree with each other and with n.
 */
#include "java_msg.h"
#include "java_rec.h"

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

int java_msg_parse(const void *buf, size_t n, struct java_msg *m)
{
	const uint8_t *p = buf;
	uint16_t hdr;

	if (!p || n < JAVA_MSG_HDR)
		return JAVA_MSG_E_SHORT;
	if (rd32(p) != JAVA_MSG_MAGIC)
		return JAVA_MSG_E_MAGIC;
	hdr = rd16(p + 4);
	if (hdr < JAVA_MSG_HDR || hdr > n || hdr > 256)
		return JAVA_MSG_E_HDR;
	m->kind = p[6];
	m->dir = p[7];
	m->fd = (int32_t)rd32(p + 8);
	m->len = rd32(p + 12);
	m->stream = rd64(p + 16);
	m->pos = rd64(p + 24);
	m->flags = rd32(p + 32);
	m->cap_len = rd32(p + 36);
	m->data = p + hdr;
	if (m->kind < JAVA_MSG_DATA || m->kind > JAVA_MSG_VEND)
		return JAVA_MSG_E_KIND;
	if (m->cap_len > JAVA_MAX_PAYLOAD || (size_t)hdr + m->cap_len != n)
		return JAVA_MSG_E_LENGTH;
	if (m->dir > 1 || m->cap_len > m->len)
		return JAVA_MSG_E_FIELD;
	if (m->kind == JAVA_MSG_DATA && (m->len == 0 || m->fd < -1 || m->pos > UINT64_MAX - m->len))
		return JAVA_MSG_E_FIELD;
	if ((m->kind == JAVA_MSG_BEGIN || m->kind == JAVA_MSG_END) &&
	    (m->cap_len || m->len || m->fd != -1 || m->flags || !java_msg_task_key(m->stream) ||
	     !java_msg_key_ok(m->pos, 0)))
		return JAVA_MSG_E_FIELD;
	if (m->kind >= JAVA_MSG_SLOT && (m->cap_len || m->len || m->fd != -1 || m->flags))
		return JAVA_MSG_E_FIELD;
	if (m->kind == JAVA_MSG_SLOT &&
	    (!m->stream || m->stream >= (1ull << 47) || (m->stream & 7) || m->pos))
		return JAVA_MSG_E_FIELD; /* a user-space address, 8-aligned */
	if (m->kind == JAVA_MSG_VSTART && (!java_msg_vt_key(m->stream) || !java_msg_key_ok(m->pos, 1)))
		return JAVA_MSG_E_FIELD;
	if (m->kind == JAVA_MSG_VEND && (!java_msg_vt_key(m->stream) || m->pos))
		return JAVA_MSG_E_FIELD;
	return 0;
}

int java_msg_vt_key(uint64_t k)
{
	return (k & JAVA_KEY_TAG) == JAVA_KEY_VT && (k & ~JAVA_KEY_TAG);
}

int java_msg_task_key(uint64_t k)
{
	return (k & JAVA_KEY_TAG) == JAVA_KEY_TASK && (k & ~JAVA_KEY_TAG);
}

int java_msg_key_ok(uint64_t k, int need)
{
	if (!k)
		return !need;
	if ((k & JAVA_KEY_TAG) == JAVA_KEY_THREAD)
		return (k & ~JAVA_KEY_TAG) > 0 && (k & ~JAVA_KEY_TAG) <= 0x7fffffffull;
	return java_msg_task_key(k) || java_msg_vt_key(k);
}

const char *java_msg_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case JAVA_MSG_E_SHORT: return "shorter than a header";
	case JAVA_MSG_E_MAGIC: return "bad magic";
	case JAVA_MSG_E_HDR: return "header length out of bounds";
	case JAVA_MSG_E_KIND: return "unknown kind";
	case JAVA_MSG_E_LENGTH: return "payload length disagrees with the bytes present";
	case JAVA_MSG_E_FIELD: return "a field out of range";
	default: return "?";
	}
}
