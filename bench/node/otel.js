// otel.js - what a user would pick instead of sonde: the OpenTelemetry
// Node.js SDK with the standard auto-instrumentations, loaded with
// `node --require ./otel.js server.js`. Traces go to OTLP_URL with the
// OTLP/HTTP JSON exporter (@opentelemetry/exporter-trace-otlp-http) through
// the SDK's default BatchSpanProcessor. Metrics and logs exporters are off
// (OTEL_METRICS_EXPORTER=none, OTEL_LOGS_EXPORTER=none set by run.sh), so the
// comparison is request tracing against request tracing.
'use strict';
const path = require('path');
const base = process.env.OTEL_NODE_MODULES;
const req = (m) => require(path.join(base, m));
const { NodeSDK } = req('@opentelemetry/sdk-node');
const { getNodeAutoInstrumentations } = req('@opentelemetry/auto-instrumentations-node');
const { OTLPTraceExporter } = req('@opentelemetry/exporter-trace-otlp-http');

const sdk = new NodeSDK({
  serviceName: 'bench-node',
  traceExporter: new OTLPTraceExporter({ url: process.env.OTLP_URL }),
  instrumentations: [getNodeAutoInstrumentations()],
});
sdk.start();
// Flush the last batch on SIGTERM so the sink's span count is complete.
process.on('SIGTERM', () => {
  sdk.shutdown().finally(() => process.exit(0));
});
