/*
 * main.c - the sonde command: settings resolved in one place
 * (config_resolve), then the agent runs. Every failure is one sentence on
 * stderr and a non-zero exit.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>

#include "agent/agent.h"
#include "config/config.h"

int main(int argc, char **argv)
{
	struct config cfg;
	char err[1024] = "";
	int rc, ret;

	signal(SIGPIPE, SIG_IGN);
	config_init(&cfg);
	rc = config_resolve(&cfg, argc, argv, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "sonde: %s\n", err);
		config_free(&cfg);
		return 1;
	}
	ret = rc > 0 ? 0 : agent_run(&cfg);
	config_free(&cfg);
	fflush(stdout);
	return ret;
}
