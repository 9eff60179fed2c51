/*
 * prom_text.h - the Prometheus text exposition format (0.0.4) of the metric
 * registry, and the OpenTelemetry -> Prometheus naming rules it uses.
 *
 * The one idea: the registry (telemetry/metrics.c) only stores numbers under
 * OpenTelemetry names; this file is the one place that knows how Prometheus
 * spells them. It reads the registry through its walk functions, so the
 * registry never calls back into an exporter.
 */
#ifndef SONDE_EXPORT_PROM_TEXT_H
#define SONDE_EXPORT_PROM_TEXT_H

#include <stddef.h>

struct metrics;

/* The whole registry as Prometheus text. Families sorted by name, series by
 * label text; two families mapping to one name: only the first registered
 * is rendered (a duplicate would void the scrape). malloc'd; NULL on OOM. */
char *prom_render(struct metrics *m);

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
