/*
 * tls.c - TLS-library uprobes (issue 4). Placeholder until the TLS capture
 * lands: no library is attached, so TLS connections produce no spans (their
 * ciphertext is recognised and dropped by conn.c).
 */
#include "capture.h"

int capture_tls_attach(struct capture *c, uint32_t tgid)
{
	(void)c;
	(void)tgid;
	return 0;
}

void capture_tls_detach(struct capture *c, uint32_t tgid)
{
	(void)c;
	(void)tgid;
}
