/*
 * otlp.c - the OTLP/HTTP exporter thread: span queue, batching, metric
 * ticks, HTTP with libcurl, retries, the final flush.
 *
 * The one idea: each signal (traces, metrics) has at most one encoded
 * request body in flight. A body is built once, from a batch of spans (up
 * to 512, or whatever a second has brought) or a metric snapshot, and is
 * then sent, re-sent after a backoff, or given up; only when it is settled
 * is the next one built. The spans of a body are released as soon as it is
 * encoded, so an outage holds at most the queue (queue_size span
 * references, filled by emit() with an O(1) push and emptied by nothing
 * else) plus one body per signal. emit() never waits: a full queue means a
 * counted drop.
 *
 * Threads: emit() runs on the capture thread and takes o->lock for the
 * push; everything else runs on the exporter thread, which takes the lock
 * only to pop spans and to update the counters. otlp_stop() sets a
 * deadline that also cuts an HTTP request in flight (curl's progress
 * callback), so stop returns within about timeout_ms.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "telemetry/metrics.h"
#include "export/otlp.h"
#include "export/otlp_pb.h"
#include "telemetry/span.h"

#ifndef SONDE_VERSION
#define SONDE_VERSION "unknown"
#endif

#define OTLP_BATCH_MAX 512
#define OTLP_BATCH_DELAY_MS 1000
/* A body is given up when its retries would go on past this. */
#define OTLP_RETRY_MAX_ELAPSED_MS 300000
#define OTLP_DEFAULT_INTERVAL_MS 60000
#define OTLP_DEFAULT_TIMEOUT_MS 10000
#define OTLP_DEFAULT_QUEUE 2048

enum { SIG_TRACES = 0, SIG_METRICS = 1, SIG_N };

static const char *const sig_name[SIG_N] = { "traces", "metrics" };

/* One signal's request body and where it stands. */
struct pending {
	struct otlp_buf body;
	bool active;
	size_t items;            /* spans or data points in body */
	unsigned attempt;        /* retries done */
	uint64_t first_ms;       /* first try (monotonic) */
	uint64_t next_ms;        /* next try (monotonic) */
};

struct otlp {
	struct otlp_cfg cfg;     /* scalars only; strings below */
	char *url[SIG_N];        /* NULL: signal not exported */
	struct curl_slist *headers;
	struct metrics *m;
	struct span_sink sink;

	pthread_mutex_t lock;    /* queue, stats, stopping */
	pthread_cond_t cond;
	struct otlp_queue q;
	struct otlp_stats st;
	bool stopping;
	uint64_t batch_due_ms;   /* oldest queued span's send-by time */
	pthread_t thread;
	bool curl_global;        /* curl_global_init succeeded: pair it */

	/* exporter thread only */
	CURL *curl;
	struct pending pend[SIG_N];
	struct otlp_delta *delta;
	uint64_t next_metrics_ms;
	uint64_t rng;
	bool down_logged[SIG_N];
	bool stats_dirty;        /* counters moved since the last publish */
	char retry_after[32];
	char resp[256];
	size_t resp_len;
	_Atomic uint64_t hard_deadline_ms; /* 0: none; cuts requests in flight */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the bounded queue ---------------------------------------------- */

int otlp_queue_init(struct otlp_queue *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->ring = calloc(cap ? cap : 1, sizeof(*q->ring));
	if (!q->ring)
		return -ENOMEM;
	q->cap = cap;
	return 0;
}

int otlp_queue_push(struct otlp_queue *q, struct span *s)
{
	if (q->len == q->cap) {
		q->dropped++;
		return -ENOSPC;
	}
	q->ring[(q->head + q->len) % q->cap] = span_ref(s);
	q->len++;
	return 0;
}

size_t otlp_queue_pop(struct otlp_queue *q, struct span **out, size_t max)
{
	size_t n = 0;

	while (n < max && q->len) {
		out[n++] = q->ring[q->head];
		q->ring[q->head] = NULL;
		q->head = (q->head + 1) % q->cap;
		q->len--;
	}
	return n;
}

void otlp_queue_free(struct otlp_queue *q)
{
	struct span *s;

	while (otlp_queue_pop(q, &s, 1))
		span_unref(s);
	free(q->ring);
	q->ring = NULL;
}

/* ---- policies ------------------------------------------------------- */

/* Retry-After in its delay-seconds form; the HTTP-date form (and
 * anything else) gives -1, and the caller falls back to backoff. */
static long retry_after_ms(const char *v)
{
	long secs = 0;
	bool digits = false;

	if (!v)
		return -1;
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v >= '0' && *v <= '9'; v++) {
		digits = true;
		if (secs < OTLP_RETRY_AFTER_MAX_MS / 1000)
			secs = secs * 10 + (*v - '0');
	}
	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	if (!digits || *v)
		return -1;
	secs *= 1000;
	return secs > OTLP_RETRY_AFTER_MAX_MS ? OTLP_RETRY_AFTER_MAX_MS : secs;
}

long otlp_retry_delay_ms(long status, enum otlp_net net, const char *retry_after,
                         unsigned attempt, double jitter)
{
	long base = OTLP_BACKOFF_INITIAL_MS, ra;

	if (net == OTLP_NET_FATAL)
		return -1;
	if (net == OTLP_NET_OK) {
		if (status >= 200 && status < 300)
			return 0;
		if (status != 429 && status != 502 && status != 503 && status != 504)
			return -1;
		ra = retry_after_ms(retry_after);
		if (ra >= 0)
			return ra > 0 ? ra : 1;
	}
	for (unsigned i = 0; i < attempt && base < OTLP_BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > OTLP_BACKOFF_MAX_MS)
		base = OTLP_BACKOFF_MAX_MS;
	if (jitter < 0 || jitter >= 1)
		jitter = 0.5;
	/* +-20 %, so exporters that failed together do not retry together */
	return (long)((double)base * (0.8 + 0.4 * jitter));
}

int otlp_gzip(const uint8_t *in, size_t n, struct otlp_buf *out)
{
	z_stream z = { 0 };
	uLong bound;
	int rc;

	/* windowBits 15 + 16: a gzip wrapper, not zlib's */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&z, n) + 32;
	if (out->len + bound > out->cap) {
		uint8_t *p = realloc(out->p, out->len + bound);

		if (!p) {
			deflateEnd(&z);
			return -ENOMEM;
		}
		out->p = p;
		out->cap = out->len + bound;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = out->p + out->len;
	z.avail_out = (uInt)(out->cap - out->len);
	rc = deflate(&z, Z_FINISH);
	if (rc == Z_STREAM_END)
		out->len += z.total_out;
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : -EIO;
}

/* ---- HTTP ----------------------------------------------------------- */

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct otlp *o = arg;
	size_t len = size * n, vlen;
	const char *name = "retry-after:";

	if (len > strlen(name) && strncasecmp(buf, name, strlen(name)) == 0) {
		vlen = len - strlen(name);
		if (vlen >= sizeof(o->retry_after))
			vlen = sizeof(o->retry_after) - 1;
		memcpy(o->retry_after, buf + strlen(name), vlen);
		o->retry_after[vlen] = '\0';
	}
	return len;
}

/* Keeps the start of the response body for the log line. */
static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct otlp *o = arg;
	size_t len = size * n, room = sizeof(o->resp) - 1 - o->resp_len;

	if (room) {
		size_t k = len < room ? len : room;

		for (size_t i = 0; i < k; i++) {
			unsigned char c = (unsigned char)buf[i];

			/* it goes to a log line: printable ASCII only */
			o->resp[o->resp_len + i] = c >= 0x20 && c < 0x7f ? (char)c : '.';
		}
		o->resp_len += k;
		o->resp[o->resp_len] = '\0';
	}
	return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct otlp *o = arg;
	uint64_t dl = atomic_load(&o->hard_deadline_ms);

	return dl && mono_ms() >= dl; /* non-zero aborts the transfer */
}

static enum otlp_net classify(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return OTLP_NET_OK;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return OTLP_NET_FATAL;
	default:
		/* refused, reset, timed out, DNS, empty reply, TLS handshake ... */
		return OTLP_NET_RETRYABLE;
	}
}

/* One POST of the signal's pending body. Returns the HTTP status (0 when
 * there was none) and the transport verdict in *net. */
static long post(struct otlp *o, int sig, enum otlp_net *net, CURLcode *crc)
{
	uint64_t timeout = o->cfg.timeout_ms, dl = atomic_load(&o->hard_deadline_ms), now;
	long status = 0;
	CURL *c = o->curl;

	now = mono_ms();
	if (dl) {
		if (now >= dl) {
			*net = OTLP_NET_RETRYABLE;
			*crc = CURLE_OPERATION_TIMEDOUT;
			return 0;
		}
		if (dl - now < timeout)
			timeout = dl - now;
	}
	o->retry_after[0] = '\0';
	o->resp[0] = '\0';
	o->resp_len = 0;
	curl_easy_setopt(c, CURLOPT_URL, o->url[sig]);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->pend[sig].body.len);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)o->pend[sig].body.p);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout ? timeout : 1));
	*crc = curl_easy_perform(c);
	*net = classify(*crc);
	if (*crc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static int curl_setup(struct otlp *o, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();

	if (!c) {
		snprintf(err, errlen, "otlp: cannot create an HTTP client");
		return -ENOMEM;
	}
	o->curl = c;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, o->headers);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "sonde/" SONDE_VERSION " (OTLP/HTTP exporter)");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)o->cfg.timeout_ms);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, o);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, o);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, o);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	return 0;
}

/* ---- counters ------------------------------------------------------- */

static void publish_stats(struct otlp *o)
{
	static const char *const names[SIG_N][3] = {
		{ "sonde_otlp_spans_exported_total", "sonde_otlp_spans_failed_total",
		  "sonde_otlp_spans_dropped_total" },
		{ "sonde_otlp_metric_points_exported_total",
		  "sonde_otlp_metric_points_failed_total",
		  "sonde_otlp_metric_points_dropped_total" },
	};
	static const char *const help[3] = {
		"OTLP items accepted by the collector",
		"OTLP items rejected by the collector or given up after retries",
		"OTLP items never sent (queue full or shutdown)",
	};
	struct otlp_stats st;
	size_t queued;

	if (!o->m)
		return;
	pthread_mutex_lock(&o->lock);
	st = o->st;
	st.dropped[SIG_TRACES] += o->q.dropped;
	queued = o->q.len;
	pthread_mutex_unlock(&o->lock);
	for (int s = 0; s < SIG_N; s++) {
		metrics_counter_set(o->m, names[s][0], help[0], st.exported[s]);
		metrics_counter_set(o->m, names[s][1], help[1], st.failed[s]);
		metrics_counter_set(o->m, names[s][2], help[2], st.dropped[s]);
	}
	metrics_gauge_set(o->m, "sonde_otlp_queue_spans", "Spans waiting in the OTLP queue",
	                  (double)queued);
}

static void count(struct otlp *o, int sig, int what, uint64_t n)
{
	o->stats_dirty = true;
	pthread_mutex_lock(&o->lock);
	if (what == 0)
		o->st.exported[sig] += n;
	else if (what == 1)
		o->st.failed[sig] += n;
	else
		o->st.dropped[sig] += n;
	pthread_mutex_unlock(&o->lock);
}

/* ---- one signal's body ---------------------------------------------- */

static void pending_clear(struct pending *p)
{
	p->active = false;
	p->body.len = 0;
	p->body.oom = false;
	p->items = 0;
	p->attempt = 0;
}

/* Encode then (if asked) compress into p->body. */
static int pending_fill(struct otlp *o, struct pending *p, struct span *const *spans,
                        size_t n, const struct otlp_mbatch *mb)
{
	struct otlp_buf raw = { 0 };
	char *json = NULL;
	int rc = 0;

	pending_clear(p);
	if (o->cfg.protocol == OTLP_JSON) {
		json = spans ? otlp_json_traces(spans, n) : otlp_json_metrics(mb);
		if (!json)
			return -ENOMEM;
		raw.p = (uint8_t *)json;
		raw.len = raw.cap = strlen(json);
	} else {
		rc = spans ? otlp_pb_traces(spans, n, &raw) : otlp_pb_metrics(mb, &raw);
	}
	if (!rc && o->cfg.gzip)
		rc = otlp_gzip(raw.p, raw.len, &p->body);
	else if (!rc) {
		otlp_buf_free(&p->body);
		p->body = raw;
		raw.p = NULL;
	}
	otlp_buf_free(&raw);
	if (rc)
		return rc;
	p->active = true;
	p->first_ms = p->next_ms = mono_ms();
	return 0;
}

static double next_jitter(struct otlp *o)
{
	/* xorshift64: only spreads retries, needs no quality */
	o->rng ^= o->rng << 13;
	o->rng ^= o->rng >> 7;
	o->rng ^= o->rng << 17;
	return (double)(o->rng >> 11) / 9007199254740992.0;
}

/* Why the last try failed, for a log line. */
static void describe(struct otlp *o, long status, CURLcode crc, char *buf, size_t n)
{
	if (status)
		snprintf(buf, n, "HTTP %ld%s%.120s", status, o->resp_len ? ": " : "", o->resp);
	else
		snprintf(buf, n, "%s", curl_easy_strerror(crc));
}

enum try_result { TRY_SENT = 0, TRY_RETRY, TRY_FAILED };

/* Try the pending body once: sent, retry scheduled, or given up (counted
 * as failed). final: no retry, the exporter is stopping. */
static enum try_result pending_try(struct otlp *o, int sig, bool final)
{
	struct pending *p = &o->pend[sig];
	enum otlp_net net;
	CURLcode crc;
	long status = post(o, sig, &net, &crc), delay;
	uint64_t now = mono_ms();
	char why[200];

	delay = otlp_retry_delay_ms(status, net, o->retry_after, p->attempt, next_jitter(o));
	if (delay == 0) {
		if (o->down_logged[sig])
			fprintf(stderr, "sonde: otlp: %s export to %s works again\n", sig_name[sig],
			        o->url[sig]);
		o->down_logged[sig] = false;
		count(o, sig, 0, p->items);
		pending_clear(p);
		return TRY_SENT;
	}
	describe(o, status, crc, why, sizeof(why));
	if (delay > 0 && !final && now + (uint64_t)delay - p->first_ms <= OTLP_RETRY_MAX_ELAPSED_MS) {
		if (!o->down_logged[sig])
			fprintf(stderr, "sonde: otlp: %s export to %s: %s; retrying\n", sig_name[sig],
			        o->url[sig], why);
		o->down_logged[sig] = true;
		p->attempt++;
		p->next_ms = now + (uint64_t)delay;
		return TRY_RETRY;
	}
	fprintf(stderr, "sonde: otlp: %s export to %s failed: %s; %zu %s lost\n", sig_name[sig],
	        o->url[sig], why, p->items, sig == SIG_TRACES ? "spans" : "points");
	count(o, sig, 1, p->items);
	pending_clear(p);
	return TRY_FAILED;
}

/* ---- traces --------------------------------------------------------- */

/* Pop up to a batch, encode it, release the spans. Returns the number of
 * spans taken (0: queue empty or encoding failed, counted). */
static size_t traces_fill(struct otlp *o)
{
	struct span *batch[OTLP_BATCH_MAX];
	size_t n;
	int rc;

	pthread_mutex_lock(&o->lock);
	n = otlp_queue_pop(&o->q, batch, OTLP_BATCH_MAX);
	if (o->q.len) /* the rest waits for the next batch, at most a second */
		o->batch_due_ms = mono_ms() + OTLP_BATCH_DELAY_MS;
	pthread_mutex_unlock(&o->lock);
	if (!n)
		return 0;
	rc = pending_fill(o, &o->pend[SIG_TRACES], batch, n, NULL);
	for (size_t i = 0; i < n; i++)
		span_unref(batch[i]);
	if (rc) {
		fprintf(stderr, "sonde: otlp: cannot encode %zu spans (%s)\n", n, strerror(-rc));
		count(o, SIG_TRACES, 1, n);
		return 0;
	}
	o->pend[SIG_TRACES].items = n;
	return n;
}

/* A batch is due when it is full or its oldest span has waited a second. */
static bool batch_due(struct otlp *o, uint64_t now)
{
	bool due;

	pthread_mutex_lock(&o->lock);
	due = o->q.len >= OTLP_BATCH_MAX || (o->q.len && now >= o->batch_due_ms);
	pthread_mutex_unlock(&o->lock);
	return due;
}

static void traces_step(struct otlp *o, uint64_t now)
{
	struct pending *p = &o->pend[SIG_TRACES];

	if (!o->url[SIG_TRACES])
		return;
	if (p->active) {
		if (now < p->next_ms || pending_try(o, SIG_TRACES, false) == TRY_RETRY)
			return;
		now = mono_ms();
	}
	if (batch_due(o, now) && traces_fill(o))
		pending_try(o, SIG_TRACES, false);
}

/* ---- metrics -------------------------------------------------------- */

static int metrics_fill(struct otlp *o)
{
	struct otlp_mbatch mb = { 0 };
	int rc;

	rc = otlp_mbatch_collect(o->m, o->delta, real_ns(), &mb);
	if (!rc && mb.n_pts)
		rc = pending_fill(o, &o->pend[SIG_METRICS], NULL, 0, &mb);
	if (rc) {
		fprintf(stderr, "sonde: otlp: cannot encode metrics (%s)\n", strerror(-rc));
		count(o, SIG_METRICS, 1, mb.n_pts);
	} else {
		o->pend[SIG_METRICS].items = mb.n_pts;
	}
	otlp_mbatch_free(&mb);
	return rc;
}

/* While a body is being retried no new snapshot is taken: cumulative
 * points lose nothing by waiting, and delta baselines only move when a
 * snapshot is taken, so the next one covers the whole gap. */
static void metrics_step(struct otlp *o, uint64_t now)
{
	struct pending *p = &o->pend[SIG_METRICS];

	if (!o->url[SIG_METRICS])
		return;
	if (p->active) {
		if (now >= p->next_ms)
			pending_try(o, SIG_METRICS, false);
		return;
	}
	if (now < o->next_metrics_ms)
		return;
	o->next_metrics_ms = now + o->cfg.interval_ms;
	if (!metrics_fill(o) && p->active)
		pending_try(o, SIG_METRICS, false);
}

/* ---- the thread ----------------------------------------------------- */

/* Called with o->lock held. */
static uint64_t next_wake(struct otlp *o)
{
	uint64_t t = UINT64_MAX;

	if (o->url[SIG_TRACES]) {
		if (o->pend[SIG_TRACES].active)
			t = o->pend[SIG_TRACES].next_ms;
		else if (o->q.len)
			t = o->batch_due_ms;
	}
	if (o->url[SIG_METRICS]) {
		uint64_t m = o->pend[SIG_METRICS].active ? o->pend[SIG_METRICS].next_ms
		                                         : o->next_metrics_ms;
		if (m < t)
			t = m;
	}
	return t;
}

/* Sleep until the next thing is due, a full batch is queued, or stop.
 * emit() signals when the queue becomes non-empty (a batch clock starts)
 * and when it holds a full batch. */
static bool wait_for_work(struct otlp *o)
{
	struct timespec ts;
	uint64_t wake, now;
	bool stopping;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		if (o->stopping)
			break;
		if (o->q.len >= OTLP_BATCH_MAX && !o->pend[SIG_TRACES].active && o->url[SIG_TRACES])
			break;
		wake = next_wake(o);
		now = mono_ms();
		if (wake <= now)
			break;
		/* with work held, wake each second so the counters stay fresh */
		if (o->q.len || o->pend[SIG_TRACES].active || o->pend[SIG_METRICS].active) {
			if (wake - now > 1000)
				wake = now + 1000;
		} else if (wake - now > 3600000) {
			wake = now + 3600000;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)((wake - now) / 1000);
		ts.tv_nsec += (long)((wake - now) % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&o->cond, &o->lock, &ts);
	}
	stopping = o->stopping;
	pthread_mutex_unlock(&o->lock);
	return !stopping;
}

/* Everything left, once, until the deadline; what cannot go is counted. */
static void final_flush(struct otlp *o)
{
	bool down = false;
	size_t left;

	if (o->url[SIG_TRACES]) {
		if (o->pend[SIG_TRACES].active)
			down = pending_try(o, SIG_TRACES, true) != TRY_SENT;
		while (!down && traces_fill(o))
			down = pending_try(o, SIG_TRACES, true) != TRY_SENT;
	}
	pthread_mutex_lock(&o->lock);
	left = o->q.len;
	pthread_mutex_unlock(&o->lock);
	if (left) {
		count(o, SIG_TRACES, 2, left);
		fprintf(stderr, "sonde: otlp: %zu spans not sent before shutdown\n", left);
	}
	if (o->url[SIG_METRICS]) {
		if (o->pend[SIG_METRICS].active)
			pending_try(o, SIG_METRICS, true);
		if (!metrics_fill(o) && o->pend[SIG_METRICS].active)
			pending_try(o, SIG_METRICS, true);
	}
	publish_stats(o);
}

static void *otlp_thread(void *arg)
{
	struct otlp *o = arg;
	uint64_t last_pub = 0, now;

	while (wait_for_work(o)) {
		now = mono_ms();
		traces_step(o, now);
		metrics_step(o, mono_ms());
		now = mono_ms();
		if (o->stats_dirty || now - last_pub >= 1000) {
			publish_stats(o);
			o->stats_dirty = false;
			last_pub = now;
		}
	}
	final_flush(o);
	return NULL;
}

/* ---- the sink ------------------------------------------------------- */

static void sink_emit(void *ctx, struct span *s)
{
	struct otlp *o = ctx;

	if (!s || !o->url[SIG_TRACES])
		return;
	pthread_mutex_lock(&o->lock);
	if (o->stopping) {
		o->q.dropped++; /* too late: the final flush has begun */
	} else if (otlp_queue_push(&o->q, s) == 0) {
		if (o->q.len == 1) {
			o->batch_due_ms = mono_ms() + OTLP_BATCH_DELAY_MS;
			pthread_cond_signal(&o->cond);
		} else if (o->q.len == OTLP_BATCH_MAX) {
			pthread_cond_signal(&o->cond);
		}
	}
	pthread_mutex_unlock(&o->lock);
}

static void sink_flush(void *ctx)
{
	struct otlp *o = ctx;

	pthread_mutex_lock(&o->lock);
	o->batch_due_ms = 0; /* due now */
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

struct span_sink *otlp_span_sink(struct otlp *o)
{
	return o ? &o->sink : NULL;
}

void otlp_get_stats(struct otlp *o, struct otlp_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	*out = o->st;
	out->dropped[SIG_TRACES] += o->q.dropped;
	pthread_mutex_unlock(&o->lock);
}

/* ---- start and stop ------------------------------------------------- */

static bool url_ok(const char *u)
{
	return strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0;
}

/* base + "/v1/<signal>", without doubling the slash. */
static char *signal_url(const char *base, const char *path)
{
	size_t n = strlen(base);
	char *u;

	while (n && base[n - 1] == '/')
		n--;
	u = malloc(n + strlen(path) + 1);
	if (!u)
		return NULL;
	memcpy(u, base, n);
	strcpy(u + n, path);
	return u;
}

static bool header_ok(const char *s)
{
	return !strpbrk(s, "\r\n");
}

static int build_headers(struct otlp *o, const struct otlp_cfg *cfg, char *err, size_t errlen)
{
	struct curl_slist *l = NULL, *nl;
	char line[1024];

	for (size_t i = 0; i < cfg->n_headers; i++) {
		const struct kv *h = &cfg->headers[i];
		const char *v = h->n_values ? h->values[0] : "";

		if (!h->key || !*h->key || strpbrk(h->key, ": \t") || !header_ok(h->key) ||
		    !header_ok(v)) {
			/* never echo the value: it may be a credential */
			snprintf(err, errlen, "otlp: invalid header name or value for '%.64s'",
			         h->key ? h->key : "");
			goto fail;
		}
		if ((size_t)snprintf(line, sizeof(line), "%s: %s", h->key, v) >= sizeof(line)) {
			snprintf(err, errlen, "otlp: header '%.64s' is too long", h->key);
			goto fail;
		}
		nl = curl_slist_append(l, line);
		if (!nl)
			goto oom;
		l = nl;
	}
	nl = curl_slist_append(l, cfg->protocol == OTLP_JSON ? "Content-Type: application/json"
	                                                     : "Content-Type: application/x-protobuf");
	if (!nl)
		goto oom;
	l = nl;
	if (cfg->gzip) {
		nl = curl_slist_append(l, "Content-Encoding: gzip");
		if (!nl)
			goto oom;
		l = nl;
	}
	nl = curl_slist_append(l, "Expect:"); /* no 100-continue round trip */
	if (!nl)
		goto oom;
	o->headers = nl;
	return 0;
oom:
	snprintf(err, errlen, "otlp: out of memory");
fail:
	curl_slist_free_all(l);
	return -EINVAL;
}

static void otlp_free(struct otlp *o)
{
	for (int s = 0; s < SIG_N; s++) {
		free(o->url[s]);
		otlp_buf_free(&o->pend[s].body);
	}
	curl_slist_free_all(o->headers);
	if (o->curl)
		curl_easy_cleanup(o->curl);
	if (o->curl_global)
		curl_global_cleanup();
	otlp_queue_free(&o->q);
	otlp_delta_free(o->delta);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	free(o);
}

static int resolve_urls(struct otlp *o, const struct otlp_cfg *cfg, struct metrics *m,
                        char *err, size_t errlen)
{
	const char *base = cfg->endpoint;
	const char *full[SIG_N] = { cfg->traces_endpoint, cfg->metrics_endpoint };
	static const char *const path[SIG_N] = { "/v1/traces", "/v1/metrics" };

	if (base && !*base)
		base = OTLP_DEFAULT_ENDPOINT;
	for (int s = 0; s < SIG_N; s++) {
		if (full[s] && *full[s])
			o->url[s] = strdup(full[s]);
		else if (base)
			o->url[s] = signal_url(base, path[s]);
		else
			continue;
		if (!o->url[s]) {
			snprintf(err, errlen, "otlp: out of memory");
			return -ENOMEM;
		}
		if (!url_ok(o->url[s])) {
			snprintf(err, errlen, "otlp: %s endpoint '%.200s' is not an http:// or "
			         "https:// URL", sig_name[s], o->url[s]);
			return -EINVAL;
		}
	}
	if (!m && o->url[SIG_METRICS]) {
		free(o->url[SIG_METRICS]);
		o->url[SIG_METRICS] = NULL;
	}
	return 0;
}

struct otlp *otlp_start(const struct otlp_cfg *cfg, struct metrics *m, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	struct otlp *o;

	if (errlen)
		err[0] = '\0';
	if (!cfg || (!cfg->endpoint && !(cfg->traces_endpoint && *cfg->traces_endpoint) &&
	             !(cfg->metrics_endpoint && *cfg->metrics_endpoint)))
		return NULL;
	o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(err, errlen, "otlp: out of memory");
		return NULL;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	o->cfg = *cfg;
	o->cfg.endpoint = o->cfg.traces_endpoint = o->cfg.metrics_endpoint = NULL;
	o->cfg.headers = NULL;
	o->cfg.n_headers = 0;
	if (!o->cfg.interval_ms)
		o->cfg.interval_ms = OTLP_DEFAULT_INTERVAL_MS;
	if (!o->cfg.timeout_ms)
		o->cfg.timeout_ms = OTLP_DEFAULT_TIMEOUT_MS;
	if (!o->cfg.queue_size)
		o->cfg.queue_size = OTLP_DEFAULT_QUEUE;
	o->m = m;
	o->rng = real_ns() | 1;
	o->next_metrics_ms = mono_ms() + o->cfg.interval_ms;
	o->sink = (struct span_sink){ .name = "otlp", .emit = sink_emit, .flush = sink_flush,
	                              .ctx = o };
	if (resolve_urls(o, cfg, m, err, errlen) < 0 || build_headers(o, cfg, err, errlen) < 0)
		goto fail;
	if (otlp_queue_init(&o->q, o->cfg.queue_size) < 0) {
		snprintf(err, errlen, "otlp: cannot allocate a queue of %u spans", o->cfg.queue_size);
		goto fail;
	}
	if (cfg->temporality == TEMP_DELTA && !(o->delta = otlp_delta_new())) {
		snprintf(err, errlen, "otlp: out of memory");
		goto fail;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "otlp: cannot initialise libcurl");
		goto fail;
	}
	o->curl_global = true;
	if (curl_setup(o, err, errlen) < 0)
		goto fail;
	if (pthread_create(&o->thread, NULL, otlp_thread, o) != 0) {
		snprintf(err, errlen, "otlp: cannot start the exporter thread");
		goto fail;
	}
	return o;
fail:
	otlp_free(o);
	return NULL;
}

void otlp_stop(struct otlp *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	atomic_store(&o->hard_deadline_ms, mono_ms() + o->cfg.timeout_ms);
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	pthread_join(o->thread, NULL);
	otlp_free(o);
}
