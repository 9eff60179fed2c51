/*
 * sonde/plugin.h - the sonde plugin ABI, version 1.1.
 *
 * This is the only header a plugin needs. A plugin is a shared object that
 * exports one symbol, sonde_plugin_entry(), returning a const descriptor.
 * The host hands the plugin a table of function pointers (struct
 * sonde_host_api); plugins never link against the agent's own symbols, so
 * the same .so runs inside the agent, inside `sonde --replay` and inside a
 * unit test that supplies its own table.
 *
 * The one idea needed to read this file: everything that crosses the
 * boundary is either an opaque handle owned by the host, or a struct that
 * starts with its own size and only ever grows at the end.
 *
 * ABI rules (see docs/plugin-guide.md for the long form):
 *   - The host refuses a plugin whose abi_major differs from its own, or whose
 *     abi_minor is newer than its own.
 *   - Structs carry struct_size as their first field. Fields are only ever
 *     appended; a reader checks struct_size before touching a later field
 *     (SONDE_HAS_FIELD).
 *   - Functions are never changed: a new behaviour gets a new name (_v2).
 *   - Errors are negative enum sonde_err values; sonde_strerror() names them
 *     through the host table (host->strerror).
 *
 * Memory ownership is stated on every call below. In short: the host owns
 * every handle it gives out and every buffer it passes in; a plugin owns its
 * own state and must not keep host buffers past the call that passed them.
 */
#ifndef SONDE_PLUGIN_H
#define SONDE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SONDE_ABI_MAJOR 1
#define SONDE_ABI_MINOR 2
/* What each minor added is marked "1.1" or "1.2" below; a plugin that uses
 * such a member checks host->abi_minor (or SONDE_HAS_FIELD) first. */

/* Name of the one symbol a plugin exports. */
#define SONDE_PLUGIN_ENTRY_SYMBOL "sonde_plugin_entry"

/* True when a struct of the given (runtime) size contains FIELD. */
#define SONDE_HAS_FIELD(ptr, type, field)                                      \
	((ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

enum sonde_err {
	SONDE_OK = 0,
	SONDE_ERR_NOMEM = -1,     /* allocation failed */
	SONDE_ERR_INVAL = -2,     /* bad argument */
	SONDE_ERR_PROTO = -3,     /* bytes do not follow the protocol */
	SONDE_ERR_AGAIN = -4,     /* not enough bytes yet */
	SONDE_ERR_UNSUPPORTED = -5,
	SONDE_ERR_ABI = -6,       /* version or size mismatch */
	SONDE_ERR_NOENT = -7,     /* not found */
	SONDE_ERR_IO = -8,
	SONDE_ERR_LIMIT = -9,     /* a bound was reached (too many spans, too long) */
};

/* Direction of a chunk, seen from the watched process. */
enum sonde_dir {
	SONDE_DIR_INGRESS = 0, /* bytes the process read (received) */
	SONDE_DIR_EGRESS = 1,  /* bytes the process wrote (sent) */
};

/* Who opened the connection, seen from the watched process. */
enum sonde_role {
	SONDE_ROLE_UNKNOWN = 0,
	SONDE_ROLE_SERVER = 1, /* the process accepted it */
	SONDE_ROLE_CLIENT = 2, /* the process connected it */
};

/* Values match OTLP's Span.SpanKind. */
enum sonde_span_kind {
	SONDE_SPAN_INTERNAL = 1,
	SONDE_SPAN_SERVER = 2,
	SONDE_SPAN_CLIENT = 3,
	SONDE_SPAN_PRODUCER = 4,
	SONDE_SPAN_CONSUMER = 5,
};

/* Values match OTLP's Status.StatusCode. */
enum sonde_status {
	SONDE_STATUS_UNSET = 0,
	SONDE_STATUS_OK = 1,
	SONDE_STATUS_ERROR = 2,
};

enum sonde_log_level {
	SONDE_LOG_ERROR = 0,
	SONDE_LOG_WARN = 1,
	SONDE_LOG_INFO = 2,
	SONDE_LOG_DEBUG = 3,
};

/* Opaque host-owned handles. */
struct sonde_plugin_handle; /* this plugin, as the host knows it */
struct sonde_conn;          /* one connection; valid from conn_open to conn_close */
struct sonde_span;          /* a span being built; valid until span_end/span_drop */
struct sonde_metric;        /* a registered instrument; valid until fini */

/* What the host knows about a connection. Host-owned, read-only, valid for
 * the duration of the call it is passed to (copy what you keep). */
struct sonde_conn_info {
	uint32_t struct_size;
	uint32_t pid;              /* process (tgid) that owns the socket */
	uint64_t conn_id;          /* unique for the agent's lifetime */
	enum sonde_role role;
	uint16_t family;           /* AF_INET or AF_INET6 */
	uint16_t local_port;
	uint16_t peer_port;
	uint8_t tls;               /* 1: bytes are plaintext from a TLS library */
	uint8_t reserved0;
	char local_addr[48];       /* numeric text form */
	char peer_addr[48];
	const char *service_name;  /* the service this process belongs to */
	const char *exe_name;      /* basename of the executable */
	/* 1.1 */
	uint32_t flags;            /* SONDE_CONN_* */
	uint8_t transport;         /* enum sonde_transport */
	uint8_t reserved1[3];
	const char *unix_path;     /* SONDE_TRANSPORT_UNIX: path of the server end's
	                              socket ("@name": abstract), "" if unnamed */
};

/* conn_info.flags (1.1). */
#define SONDE_CONN_MIDSTREAM (1u << 0)     /* open before capture began: its first
                                              bytes were not seen */
#define SONDE_CONN_ROLE_INFERRED (1u << 1) /* role guessed (listening ports), not
                                              seen at accept() or connect() */

/* 1.1 */
enum sonde_transport {
	SONDE_TRANSPORT_TCP = 0,
	SONDE_TRANSPORT_UNIX = 1,  /* AF_UNIX stream socket: no addresses or ports */
};

/* Chunk flags. */
#define SONDE_CHUNK_GAP (1u << 0)       /* an unknown number of bytes in this
                                           direction was lost before this chunk */
#define SONDE_CHUNK_TRUNCATED (1u << 1) /* len < orig_len: only the first len
                                           bytes of this transfer were captured */
#define SONDE_CHUNK_SKIPPED (1u << 2)   /* 1.1: payload left out because the capture
                                           policy said it is not needed */
#define SONDE_CHUNK_NOBUF (1u << 3)     /* 1.1: bytes moved without a user buffer
                                           (sendfile, splice): never any payload */

/* Where a chunk's bytes come from (1.1). Byte positions count per source
 * and direction. */
enum sonde_source {
	SONDE_SRC_SOCKET = 0,  /* read/write-family syscalls on the socket */
	SONDE_SRC_TLS = 1,     /* plaintext from the TLS library uprobes (OpenSSL) */
	SONDE_SRC_RUNTIME = 2, /* plaintext a runtime plugin delivered (Go crypto/tls,
	                          Java JSSE ...) */
};

/* One read or write of the watched process. Host-owned; data is valid only
 * during the call. */
struct sonde_chunk {
	uint32_t struct_size;
	enum sonde_dir dir;
	uint64_t ts_unix_ns;     /* when the syscall returned (wall clock) */
	const uint8_t *data;     /* captured bytes */
	size_t len;              /* number of captured bytes */
	size_t orig_len;         /* bytes really transferred (>= len) */
	uint32_t flags;          /* SONDE_CHUNK_* */
	uint32_t tid;            /* thread that did the transfer */
	/* 1.1 */
	uint64_t pos;            /* bytes of this source and direction before this
	                            chunk (stream offset of data[0]) */
	uint8_t source;          /* enum sonde_source; TLS-ness is per chunk, not
	                            per connection */
	uint8_t reserved1[7];
	uint64_t context;        /* runtime context of the thread at the transfer
	                            (a goroutine id, an async id ...), 0: none */
};

/* Detection results: 0 = not mine, 1..100 = confidence. */
#define SONDE_DETECT_NO 0
#define SONDE_DETECT_MAYBE 50
#define SONDE_DETECT_SURE 100
#define SONDE_DETECT_NEED_MORE (-4) /* == SONDE_ERR_AGAIN: ask again with more bytes */

/*
 * A protocol parser. The host calls detect() on a new connection's first
 * chunks for every protocol enabled for the connection's service; the
 * highest confidence wins and becomes the connection's sticky owner. The
 * owner then gets conn_open, every chunk in order through conn_data, and
 * conn_close. Calls for one connection never overlap; the host may call
 * different connections from one thread only (v1 host is single-threaded).
 */
struct sonde_protocol {
	uint32_t struct_size;
	const char *name;        /* e.g. "http"; the name used in YAML `protocols:` */

	/* Must not keep `c->data`. plugin_state is what init() returned. */
	int (*detect)(void *plugin_state, const struct sonde_conn_info *ci,
	              const struct sonde_chunk *c);

	/* Create per-connection state in *conn_state (plugin-owned). Return
	 * SONDE_OK or a negative sonde_err; on error the connection is ignored. */
	int (*conn_open)(void *plugin_state, struct sonde_conn *conn,
	                 const struct sonde_conn_info *ci, void **conn_state);

	/* Bytes, in order, per direction. Return SONDE_OK, or SONDE_ERR_PROTO if
	 * the stream cannot be followed any more (the host then stops feeding
	 * this connection and counts it). */
	int (*conn_data)(void *conn_state, struct sonde_conn *conn,
	                 const struct sonde_chunk *c);

	/* The connection closed (or the process went away). Finish or drop open
	 * spans, then free conn_state. `conn` is still valid during the call. */
	void (*conn_close)(void *conn_state, struct sonde_conn *conn,
	                   uint64_t ts_unix_ns);
};

/* What the host knows about a newly watched process (runtime plugins). */
struct sonde_process_info {
	uint32_t struct_size;
	uint32_t pid;
	const char *exe_path;    /* /proc/PID/exe target */
	const char *service_name;
	/* 1.1 */
	uint32_t flags;          /* SONDE_PROC_* */
	uint32_t reserved;
};
#define SONDE_PROC_EXISTED (1u << 0) /* it ran before the agent watched it (attach
                                        to a running process) */

/* Histogram description. Host copies everything; the plugin may free it
 * after histogram_register returns. A host reads a description only up to
 * its struct_size (a 1.0 one ends after n_attr_keys). */
struct sonde_histogram_desc {
	uint32_t struct_size;
	const char *name;        /* semantic-convention name, e.g. "db.client.operation.duration" */
	const char *unit;        /* UCUM unit, e.g. "s" */
	const char *description;
	const double *bounds;    /* explicit bucket upper bounds, ascending */
	size_t n_bounds;
	const char *const *attr_keys; /* attribute keys recorded with each value */
	size_t n_attr_keys;
};

/* --- 1.1 types ----------------------------------------------------------- */

/* A W3C trace context: what identifies a span across processes. */
struct sonde_span_context {
	uint32_t struct_size;
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t trace_flags;
	uint8_t remote;          /* it came from another process (a traceparent) */
	uint8_t reserved[2];
};

/* span_start_v2 flags */
#define SONDE_SPAN_NO_PARENT (1u << 0)  /* the host must not pick a parent */
#define SONDE_SPAN_NOT_ACTIVE (1u << 1) /* a SERVER/CONSUMER span that must not
                                           become its thread's active span
                                           (multiplexed or event-loop servers) */

/* How to start a span. Parent precedence: parent, then parent_ctx, then
 * context (the runtime context's active span), then, unless
 * SONDE_SPAN_NO_PARENT, the host's own conservative choice (the thread's
 * active server span when exactly one is open on that thread). */
struct sonde_span_opts {
	uint32_t struct_size;
	enum sonde_span_kind kind;
	const char *name;
	uint64_t start_unix_ns;
	uint32_t flags;                         /* SONDE_SPAN_* */
	uint32_t reserved;
	struct sonde_span *parent;              /* a live span of this host, or NULL */
	const struct sonde_span_context *parent_ctx; /* or an explicit context */
	uint64_t context;                       /* runtime context (chunk->context):
	                                           a SERVER span becomes its active
	                                           span, a CLIENT span's parent is the
	                                           one active there (or up its links) */
};

/* A monotonic counter or an up-down counter. */
struct sonde_counter_desc {
	uint32_t struct_size;
	uint32_t up_down;             /* 0: monotonic (sum), 1: up-down */
	const char *name;             /* semantic-convention name */
	const char *unit;             /* UCUM, e.g. "{message}" */
	const char *description;
	const char *const *attr_keys;
	size_t n_attr_keys;
};

/* What the kernel should capture of a connection from now on. Positions
 * are chunk->pos of the SONDE_SRC_SOCKET source. */
#define SONDE_CAPTURE_MUTE (1u << 0)   /* send nothing more (the plugin gave up) */
struct sonde_capture_policy {
	uint32_t struct_size;
	uint32_t flags;               /* SONDE_CAPTURE_* */
	uint32_t cap;                 /* payload cap for this connection, 0: the
	                                 agent's; at most 16384 */
	uint32_t reserved;
	uint64_t skip_to[2];          /* per enum sonde_dir: no payload needed for
	                                 bytes before this position (0: none) */
};

struct sonde_timer;             /* host-owned; valid until timer_stop or fini */
typedef void (*sonde_timer_fn)(void *arg, uint64_t now_unix_ns);

/* Runtime plugins: a BPF object built with the plugin (CO-RE), loaded by the
 * host. Maps named like the host's shared maps (sonde/bpf.h: sonde_pids,
 * events, conns, sonde_thread_ctx) are the host's own, reused; every other
 * map and every program is the plugin's. */
struct sonde_bpf;               /* host-owned; valid until fini */
struct sonde_bpf_opts {
	uint32_t struct_size;
	uint32_t reserved;
	const char *name;             /* for messages */
	const void *obj;              /* the ELF object's bytes (copied) */
	size_t obj_len;
};

struct sonde_uprobe_opts {
	uint32_t struct_size;
	uint32_t pid;                 /* only this process (0: every process that
	                                 maps the file) */
	const char *prog;             /* program name in the object */
	const char *path;             /* binary or library */
	const char *symbol;           /* attach at this symbol (+ offset), or NULL */
	uint64_t offset;              /* file offset when symbol is NULL */
	int retprobe;                 /* a uretprobe (never use on Go code: its
	                                 stacks move; attach at each RET instead) */
	uint32_t reserved;
	uint64_t cookie;              /* bpf_get_attach_cookie() */
};

/*
 * The host API. Every pointer is non-NULL in a host of the minor version
 * given in abi_minor; fields beyond struct_size do not exist.
 */
struct sonde_host_api {
	uint32_t struct_size;
	uint32_t abi_major;
	uint32_t abi_minor;

	/* printf-style log line, prefixed with the plugin name. */
	void (*log)(struct sonde_plugin_handle *self, enum sonde_log_level lvl,
	            const char *fmt, ...) __attribute__((format(printf, 3, 4)));
	const char *(*strerror)(int err);

	/* Plugin settings. Looks in the service section of `conn`'s service
	 * (when conn != NULL), then in the plugin's global section
	 * (`plugins: <name>: <key>:`). A scalar gives one value, a sequence
	 * gives n. *values points to host-owned strings valid until fini.
	 * Returns the number of values, 0 if the key is absent. */
	size_t (*config_get)(struct sonde_plugin_handle *self, struct sonde_conn *conn,
	                     const char *key, const char *const **values);

	/* Information about a connection (host-owned, valid while conn is). */
	const struct sonde_conn_info *(*conn_info)(struct sonde_conn *conn);

	/* --- Span builder -------------------------------------------------
	 * span_start returns a host-owned span or NULL (out of memory or the
	 * per-connection limit of open spans). Parenting is the host's job:
	 * a SERVER span starts a trace (or continues an incoming traceparent
	 * set with span_set_traceparent); a CLIENT span started while its
	 * thread is serving a request becomes that server span's child.
	 * The thread is the one of the chunk being handled, so call span_start
	 * from conn_data when the first byte of the request is seen. Many spans
	 * may be open per connection (HTTP/2 streams, pipelines, Kafka
	 * correlation ids) and they may end in any order. */
	struct sonde_span *(*span_start)(struct sonde_conn *conn, const char *name,
	                                 enum sonde_span_kind kind,
	                                 uint64_t start_unix_ns);
	void (*span_set_name)(struct sonde_span *s, const char *name);
	/* Attribute setters copy key and value. A key set twice keeps the last
	 * value. Keys are semantic-convention names. */
	void (*span_attr_str)(struct sonde_span *s, const char *key,
	                      const char *val, size_t len);
	void (*span_attr_int)(struct sonde_span *s, const char *key, int64_t val);
	void (*span_attr_double)(struct sonde_span *s, const char *key, double val);
	void (*span_attr_bool)(struct sonde_span *s, const char *key, int val);
	/* W3C traceparent header value, e.g. "00-<32 hex>-<16 hex>-01".
	 * Returns SONDE_OK, or SONDE_ERR_INVAL when malformed (ignored).
	 * On a SERVER span: the incoming context it continues. On a CLIENT
	 * span (1.1 hosts): the context the outgoing request carries, as a
	 * proxy forwards it; the host uses it to find the server span of this
	 * process that received the same one, and takes it as the parent when
	 * exactly one is open (docs/architecture.md, "Trace context"). */
	int (*span_set_traceparent)(struct sonde_span *s, const char *val, size_t len);
	void (*span_set_status)(struct sonde_span *s, enum sonde_status st,
	                        const char *description);
	/* Record the span's duration into `m` when it ends, in the histogram's
	 * time unit ("s", "ms", "us", "ns"; seconds for any other unit), with
	 * the attribute values taken from the span's attributes of the same
	 * keys. */
	void (*span_add_metric)(struct sonde_span *s, struct sonde_metric *m);
	/* Finish the span; the host takes it over, the handle is dead after. */
	void (*span_end)(struct sonde_span *s, uint64_t end_unix_ns);
	/* Abandon the span without exporting it; the handle is dead after. */
	void (*span_drop)(struct sonde_span *s);

	/* --- Metrics ------------------------------------------------------- */
	/* Register (or find, by name) a histogram. Host-owned result. */
	struct sonde_metric *(*histogram_register)(struct sonde_plugin_handle *self,
	                                           const struct sonde_histogram_desc *d);
	/* Record one value. attr_values has n_attr_keys entries (NULL = absent).
	 * `conn` (may be NULL) supplies service.name and resource. */
	void (*histogram_record)(struct sonde_metric *m, struct sonde_conn *conn,
	                         double value, const char *const *attr_values);

	/* --- 1.1 ------------------------------------------------------------ */

	/* span_start with options (parent, flags, runtime context). Same
	 * ownership and limits as span_start. */
	struct sonde_span *(*span_start_v2)(struct sonde_conn *conn,
	                                    const struct sonde_span_opts *o);
	/* The span's own context, to pass on (injection, links). SONDE_OK. */
	int (*span_context)(struct sonde_span *s, struct sonde_span_context *out);
	/* Link s to another span's context (batch receives, fan-in). Copied. */
	int (*span_add_link)(struct sonde_span *s, const struct sonde_span_context *ctx);

	/* Counters. Register (or find by name) like histograms; add a value
	 * (>= 0 for a monotonic counter) with attribute values as for
	 * histogram_record. Host-owned result. */
	struct sonde_metric *(*counter_register)(struct sonde_plugin_handle *self,
	                                         const struct sonde_counter_desc *d);
	void (*counter_add)(struct sonde_metric *m, struct sonde_conn *conn, double value,
	                    const char *const *attr_values);

	/* Timers, run on the host's thread between chunks (never during a
	 * callback of yours). period_ns 0: once. fn must not block. */
	struct sonde_timer *(*timer_start)(struct sonde_plugin_handle *self, uint64_t delay_ns,
	                                   uint64_t period_ns, sonde_timer_fn fn, void *arg);
	void (*timer_stop)(struct sonde_timer *t);

	/* Tell the kernel what to capture of conn from now on (copied). Takes
	 * effect at the connection's next syscall. SONDE_OK, or
	 * SONDE_ERR_UNSUPPORTED when there is no kernel (replays). */
	int (*conn_set_capture)(struct sonde_conn *conn, const struct sonde_capture_policy *p);

	/* Runtime plugins. The connection a process has on fd now (NULL if the
	 * host does not know it); valid during the call only. */
	struct sonde_conn *(*conn_lookup)(struct sonde_plugin_handle *self, uint32_t pid,
	                                  uint32_t fd);
	/* Feed plaintext into conn's stream as if captured (source
	 * SONDE_SRC_RUNTIME unless c->source says otherwise); the owning
	 * protocol plugin sees it like any chunk. c and its data are copied. */
	int (*conn_inject)(struct sonde_conn *conn, const struct sonde_chunk *c);
	/* Load a BPF object (its shared maps reuse the host's). *out is
	 * host-owned. SONDE_ERR_UNSUPPORTED without a kernel (replays). */
	int (*bpf_load)(struct sonde_plugin_handle *self, const struct sonde_bpf_opts *o,
	                struct sonde_bpf **out);
	/* Attach one of its programs as a uprobe (or uretprobe). Links live
	 * until process_gone of that pid (pid != 0) or fini. */
	int (*bpf_uprobe)(struct sonde_bpf *b, const struct sonde_uprobe_opts *o);
	/* The fd of one of the object's own maps, for user-space updates
	 * (bpf(2) map calls). Negative sonde_err if absent. */
	int (*bpf_map_fd)(struct sonde_bpf *b, const char *map);
	/* Records of types [first, first + count) written by your BPF programs
	 * into the shared ring buffer come back to desc->record (first >=
	 * SONDE_RECORD_PLUGIN_FIRST). SONDE_ERR_LIMIT if taken by another. */
	int (*records_claim)(struct sonde_plugin_handle *self, uint32_t first, uint32_t count);
	/* Runtime contexts: child was created by parent (a goroutine started by
	 * another, an async resource by its trigger), so a span under child
	 * finds its parent through parent. end forgets key. */
	void (*context_link)(struct sonde_plugin_handle *self, uint32_t pid, uint64_t child,
	                     uint64_t parent);
	void (*context_end)(struct sonde_plugin_handle *self, uint32_t pid, uint64_t key);
	/* Say what the host's kernel side should do for pid (SONDE_PROCESS_*).
	 * SONDE_PROCESS_CONTEXTS: your BPF programs keep sonde_thread_ctx
	 * (tid -> context) current for this process, so its chunks carry a
	 * context. */
	int (*process_set)(struct sonde_plugin_handle *self, uint32_t pid, uint32_t flags);

	/* Where the span's request starts: its first byte is byte pos of the
	 * connection's stream from source (chunk->source, chunk->pos
	 * coordinates) - the outgoing stream for a CLIENT or PRODUCER span, the
	 * incoming one for a SERVER or CONSUMER span. Call it right after
	 * span_start. With it the host links the two ends of a connection it
	 * watches on one host: the server span of a request becomes the child
	 * of the client span that sent it (docs/architecture.md, "Trace
	 * context"). Check SONDE_HAS_FIELD(host, struct sonde_host_api,
	 * span_set_pos) first: hosts of early 1.1 builds lack it. */
	int (*span_set_pos)(struct sonde_span *s, uint8_t source, uint64_t pos);

	/* 1.2. Multiplexed connections (HTTP/2 ...), where one write carries
	 * requests of several contexts and the thread's context cannot tell
	 * them apart. A runtime plugin that knows which context opened stream
	 * `stream` of conn says so (key 0 forgets it); the protocol plugin takes
	 * it when it starts that stream's span and passes it as
	 * sonde_span_opts.context. A connection keeps the last
	 * SONDE_STREAM_CTX_MAX given and not taken (older ones are forgotten and
	 * counted). set: SONDE_OK or SONDE_ERR_INVAL; take: the key, or 0 when
	 * none was given for that stream. */
	int (*conn_stream_context_set)(struct sonde_conn *conn, uint64_t stream, uint64_t key);
	uint64_t (*conn_stream_context_take)(struct sonde_conn *conn, uint64_t stream);
};

#define SONDE_STREAM_CTX_MAX 32

/* 1.2. A sonde_thread_ctx value with this bit is the user address of the
 * thread's current key, not a key (sonde/bpf.h has it for BPF programs;
 * here for a plugin's user space that writes such entries). */
#define SONDE_CTX_INDIRECT (1ull << 63)

#define SONDE_PROCESS_CONTEXTS (1u << 0)

/* Record types 1..99 are the host's, 100..999 its recordings'; plugins
 * claim theirs from here on (1.1). */
#define SONDE_RECORD_PLUGIN_FIRST 1000

/* The plugin descriptor: static const storage in the plugin. */
struct sonde_plugin {
	uint32_t abi_major;       /* SONDE_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;       /* SONDE_ABI_MINOR the plugin was built with */
	uint32_t struct_size;     /* sizeof(struct sonde_plugin) */
	uint32_t reserved0;
	const char *name;         /* unique, [a-z0-9_-]+ */
	const char *version;
	const char *license;      /* SPDX identifier */
	const char *description;

	/* Called once after loading. *plugin_state is the plugin's (may stay
	 * NULL). `host` and `self` live until fini returns. Return SONDE_OK or a
	 * negative error: the plugin is then refused and unloaded. May be NULL. */
	int (*init)(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
	            void **plugin_state);
	/* Called once before unloading. May be NULL. */
	void (*fini)(void *plugin_state);

	/* NULL-terminated list of protocol parsers (may be NULL). */
	const struct sonde_protocol *const *protocols;

	/* Runtime plugins (Go, Node, Java): called when a watched process
	 * appears or goes (also for processes already watched when the plugin
	 * loads). Both may be NULL. process_new's result is only logged: a
	 * process a runtime plugin cannot instrument stays watched through the
	 * generic layer. */
	int (*process_new)(void *plugin_state, const struct sonde_process_info *pi);
	void (*process_gone)(void *plugin_state, uint32_t pid);

	/* 1.1: records claimed with records_claim, as written by the plugin's
	 * BPF programs (a struct sonde_ev_hdr first, bpf.h). rec is valid during
	 * the call only. May be NULL. */
	void (*record)(void *plugin_state, const void *rec, size_t len);
};

/* Every plugin defines this, e.g. with SONDE_PLUGIN_DEFINE(desc). */
typedef const struct sonde_plugin *(*sonde_plugin_entry_fn)(void);

#define SONDE_PLUGIN_DEFINE(desc)                                              \
	__attribute__((visibility("default"))) const struct sonde_plugin *     \
	sonde_plugin_entry(void)                                               \
	{                                                                      \
		return &(desc);                                                \
	}

#ifdef __cplusplus
}
#endif

#endif /* SONDE_PLUGIN_H */
