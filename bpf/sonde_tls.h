/*
 * sonde_tls.h - constants the TLS capture shares between its BPF side
 * (bpf/sonde_tls.bpf.h, bpf/capture.bpf.c) and user space (core/tls.c,
 * core/capture.c).
 *
 * Its counters (SONDE_CNT_TLS_DATA, _TLS_NOFD, _RECOVERED) are slots of
 * enum sonde_counter in sonde_events.h.
 */
#ifndef SONDE_TLS_H
#define SONDE_TLS_H


/* Which function a uprobe_multi attachment fired for: its attach cookie
 * (core/tls.c lists the symbols in this order). */
enum sonde_tls_fn {
	SONDE_TLS_FN_READ = 0,      /* SSL_read */
	SONDE_TLS_FN_WRITE = 1,     /* SSL_write */
	SONDE_TLS_FN_READ_EX = 2,   /* SSL_read_ex */
	SONDE_TLS_FN_WRITE_EX = 3,  /* SSL_write_ex */
	SONDE_TLS_FN_HANDSHAKE = 4, /* SSL_do_handshake */
	SONDE_TLS_FN_SHUTDOWN = 5,  /* SSL_shutdown */
	SONDE_TLS_FN_FREE = 6,      /* SSL_free */
	SONDE_TLS_FN_COUNT = 7,
};

#endif /* SONDE_TLS_H */
