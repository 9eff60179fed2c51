/*
 * core_config_fuzz.c - libFuzzer harness for the YAML config loader.
 *
 * The input is a config file. It is loaded into a fresh config, which is
 * then queried and freed, so ASan sees every allocation the loader makes on
 * both the success and the error path. The same bytes, cut at the first NUL
 * or newline, also go through config_parse_ports. Any failure must come with
 * a "NAME:LINE: " message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static void check_ports(const uint8_t *data, size_t size)
{
	struct port_range *r = NULL;
	size_t n = 0, len = 0, i;
	char buf[256];

	while (len < size && len < sizeof(buf) - 1 && data[len] && data[len] != '\n')
		len++;
	memcpy(buf, data, len);
	buf[len] = '\0';
	if (config_parse_ports(buf, &r, &n) == 0) {
		for (i = 0; i < n; i++) {
			if (!r[i].lo || r[i].lo > r[i].hi)
				abort();
		}
	} else if (n || r) {
		abort(); /* errors must append nothing */
	}
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char err[512];
	size_t i;

	config_init(&c);
	if (config_load_string(&c, (const char *)data, size, "fuzz.yaml", err, sizeof(err)) < 0) {
		if (strncmp(err, "fuzz.yaml:", 10) != 0)
			abort();
	} else {
		for (i = 0; i < c.n_services; i++)
			config_plugin_get(&c, &c.services[i], "redis", "query_text");
		if (c.payload_cap && (c.payload_cap < 64 || c.payload_cap > 16384))
			abort();
	}
	config_free(&c);
	check_ports(data, size);
	return 0;
}
