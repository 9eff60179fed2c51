/*
 * prom.h - the Prometheus /metrics HTTP endpoint (naming and rendering are in
 * prom_text.h).
 *
 * The endpoint runs on libmicrohttpd's own thread. Each scrape calls the
 * collect hook (if any), then prom_render(). The registry's
 * mutex is the only thing the scrape thread and the capture thread share.
 */
#ifndef SONDE_PROM_H
#define SONDE_PROM_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct prom;

/* Start serving `m` on address:port. `address` is an IPv4 or IPv6 literal
 * (brackets allowed: "[::1]"); NULL or "" means 127.0.0.1. Port 0 picks a
 * free port (see prom_port). `m` is borrowed and must outlive the endpoint.
 * On failure returns NULL and writes a message such as
 * "127.0.0.1:9464: Address already in use" into err. */
struct prom *prom_start(struct metrics *m, const char *address, uint16_t port,
                        char *err, size_t errlen);

/* Stop the server thread, close the socket, free p. NULL is a no-op. */
void prom_stop(struct prom *p);

/* The port really bound (useful after port 0). */
uint16_t prom_port(const struct prom *p);

/* fn(ctx) runs on the server thread before each /metrics render, e.g. to
 * copy the agent's self-counters into the registry. fn NULL removes it. */
void prom_set_collect_hook(struct prom *p, void (*fn)(void *), void *ctx);

#endif
