/*
 * sql_plugin.c - the sql plugin's descriptor: two protocols, `postgresql`
 * (pg.c) and `mysql` (mysql.c, MySQL and MariaDB), sharing one sanitiser
 * (sql_sanitize.c) and one span builder (sql_common.c).
 *
 * The one idea: init registers the one metric both protocols record,
 * db.client.operation.duration (client spans only); everything else is
 * per connection.
 */
#include <stdlib.h>
#include <string.h>

#include "sql_internal.h"

static const double duration_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10 };
static const char *const duration_keys[] = {
	"db.system",      "db.operation.name",       "db.collection.name", "db.namespace",
	"error.type",     "db.response.status_code", "server.address",     "server.port",
};

/* SDK 1.1 timer: each protocol's step (dark operations), then the counters. */
static void sql_tick(void *arg, uint64_t now)
{
	struct sql_plugin *pl = arg;

	for (struct sql_conn *sc = pl->conns; sc; sc = sc->next) {
		if (sc->tick)
			sc->tick(sc, now);
		sql_report_stats(sc);
	}
}

static void init_v11(struct sql_plugin *pl)
{
	static const char *const keys[] = { "db.system", "sonde.event" };
	struct sonde_counter_desc d = {
		.struct_size = sizeof(d),
		.name = "sonde.sql.events",
		.unit = "{event}",
		.description = "What the sql plugin counted per connection: operations, and what "
		               "did not become a span or was not followed (sonde.event).",
		.attr_keys = keys,
		.n_attr_keys = 2,
	};
	const struct sonde_host_api *h = pl->host;

	if (SQL_HOST_HAS(h, counter_add))
		pl->events = h->counter_register(pl->self, &d);
	if (SQL_HOST_HAS(h, timer_start))
		pl->tick = h->timer_start(pl->self, SQL_TICK_NS, SQL_TICK_NS, sql_tick, pl);
}

/* Totals for tests: reset at init, added as connections close. */
static struct sql_stats debug_totals;
static struct sql_plugin *current;

const struct sql_stats *sql_debug_totals(void)
{
	if (current)
		debug_totals = current->tot;
	return &debug_totals;
}

static int sql_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                    void **plugin_state)
{
	struct sonde_histogram_desc d = {
		.struct_size = sizeof(d),
		.name = "db.client.operation.duration",
		.unit = "s",
		.description = "Duration of database client operations.",
		.bounds = duration_bounds,
		.n_bounds = sizeof(duration_bounds) / sizeof(duration_bounds[0]),
		.attr_keys = duration_keys,
		.n_attr_keys = sizeof(duration_keys) / sizeof(duration_keys[0]),
	};
	struct sql_plugin *pl;

	if (host->abi_major != SONDE_ABI_MAJOR ||
	    host->struct_size < offsetof(struct sonde_host_api, histogram_record) +
	                                sizeof(host->histogram_record))
		return SONDE_ERR_ABI;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return SONDE_ERR_NOMEM;
	pl->host = host;
	pl->self = self;
	pl->duration = host->histogram_register(self, &d);
	if (!pl->duration)
		host->log(self, SONDE_LOG_WARN, "db.client.operation.duration not registered; "
		                                "client spans will have no metric");
	init_v11(pl);
	memset(&debug_totals, 0, sizeof(debug_totals));
	current = pl;
	*plugin_state = pl;
	return SONDE_OK;
}

static void sql_fini(void *plugin_state)
{
	struct sql_plugin *pl = plugin_state;
	const struct sql_stats *t;

	if (!pl)
		return;
	t = &pl->tot;
	if (t->ops || t->tls || t->compressed || t->cancels)
		pl->host->log(pl->self, SONDE_LOG_INFO,
		              "%llu operations, %llu spans (%llu errors), %llu dropped, "
		              "%llu unmatched responses, %llu sync losses, %llu resyncs, "
		              "%llu finished from their tail, %llu ended at the next request, "
		              "%llu unknown statements, %llu TLS, %llu compressed",
		              (unsigned long long)t->ops, (unsigned long long)t->spans,
		              (unsigned long long)t->errors, (unsigned long long)t->dropped,
		              (unsigned long long)t->unmatched, (unsigned long long)t->sync_lost,
		              (unsigned long long)t->resyncs, (unsigned long long)t->dark_done,
		              (unsigned long long)t->ended_unseen,
		              (unsigned long long)t->unknown_stmt, (unsigned long long)t->tls,
		              (unsigned long long)t->compressed);
	if (current == pl) {
		debug_totals = pl->tot;
		current = NULL;
	}
	free(pl);
}

static const struct sonde_protocol *const sql_protocols[] = { &sql_pg_protocol,
	                                                      &sql_mysql_protocol, NULL };

static const struct sonde_plugin sql_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "sql",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "PostgreSQL (v3) and MySQL/MariaDB: one span per statement, "
	               "sanitised db.query.text, db.client.operation.duration",
	.init = sql_init,
	.fini = sql_fini,
	.protocols = sql_protocols,
};

SONDE_PLUGIN_DEFINE(sql_plugin)
