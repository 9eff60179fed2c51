/*
 * prom.h - the Prometheus side of the agent: the /metrics HTTP endpoint and
 * the OpenTelemetry -> Prometheus naming rules the renderer uses.
 *
 * The endpoint runs on libmicrohttpd's own thread. Each scrape calls the
 * collect hook (if any), then metrics_render_prometheus(). The registry's
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

/*
 * Naming (OpenTelemetry "Prometheus and OpenMetrics compatibility"):
 * characters outside [a-zA-Z0-9_:] become '_', runs of '_' collapse, leading
 * and trailing '_' go; the UCUM unit becomes a suffix ("s" -> "_seconds",
 * "By/s" -> "_bytes_per_second", "{request}" -> nothing) unless the name
 * already ends with it. Label names follow the same character rule without
 * ':' (no stripping of leading '_'); a label starting with a digit gets
 * "key_" in front.
 * Both return the length written (always NUL-terminated, truncated to fit)
 * or -1 when the result would be empty.
 */
int prom_metric_name(const char *otel_name, const char *unit, char *out, size_t outlen);
int prom_label_name(const char *key, char *out, size_t outlen);

#endif
