/*
 * kafka_mock_broker.c - a Kafka broker for the live tier: librdkafka's mock
 * cluster (rd_kafka_mock_cluster_new, librdkafka-dev), which speaks the real
 * Kafka wire protocol over TCP, in a process of its own.
 *
 * The one idea: the mock cluster lives inside an rd_kafka_t handle and
 * listens on 127.0.0.1 on a port the kernel picks; this program creates
 * it, creates the topics asked for, prints "bootstrap=HOST:PORT" on stdout
 * and waits for SIGTERM/SIGINT. With -d the handle logs the mock's own
 * debug lines ("Sending ProduceResponseV7 ...") on stderr: the broker's own
 * count of what it answered.
 *
 * Usage: kafka_mock_broker [-d] [-t TOPIC[:PARTITIONS]]... [-e API_KEY:COUNT:ERROR]...
 *   -t  create a topic (default 1 partition)
 *   -e  answer the next COUNT requests of API_KEY with the Kafka error code ERROR
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	fprintf(stderr, "%d|%s|%s\n", level, fac, buf);
}

static int add_topic(rd_kafka_mock_cluster_t *mc, char *arg)
{
	char *colon = strchr(arg, ':');
	int parts = 1;

	if (colon) {
		*colon = 0;
		parts = atoi(colon + 1);
	}
	if (parts < 1 || rd_kafka_mock_topic_create(mc, arg, parts, 1)) {
		fprintf(stderr, "cannot create topic %s\n", arg);
		return -1;
	}
	return 0;
}

static int add_errors(rd_kafka_mock_cluster_t *mc, const char *arg)
{
	int api, cnt, err;
	rd_kafka_resp_err_t *errs;

	if (sscanf(arg, "%d:%d:%d", &api, &cnt, &err) != 3 || cnt < 1 || cnt > 10000) {
		fprintf(stderr, "bad -e %s (API_KEY:COUNT:ERROR)\n", arg);
		return -1;
	}
	errs = calloc((size_t)cnt, sizeof(*errs));
	if (!errs)
		return -1;
	for (int i = 0; i < cnt; i++)
		errs[i] = (rd_kafka_resp_err_t)err;
	rd_kafka_mock_push_request_errors_array(mc, (int16_t)api, (size_t)cnt, errs);
	free(errs);
	return 0;
}

int main(int argc, char **argv)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *rk;
	int opt, debug = 0;

	while ((opt = getopt(argc, argv, "dt:e:")) != -1)
		if (opt == 'd')
			debug = 1;
	if (debug && rd_kafka_conf_set(conf, "debug", "mock", errstr, sizeof(errstr)))
		fprintf(stderr, "%s\n", errstr);
	rd_kafka_conf_set_log_cb(conf, on_log);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "rd_kafka_new: %s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, 1);
	if (!mc) {
		fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
		return 1;
	}
	optind = 1;
	while ((opt = getopt(argc, argv, "dt:e:")) != -1) {
		if (opt == 't' && add_topic(mc, optarg))
			return 2;
		if (opt == 'e' && add_errors(mc, optarg))
			return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	while (!stop)
		pause();
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
