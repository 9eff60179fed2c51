/*
 * agent.h - the agent: every module wired together in order, and the main
 * loop.
 *
 * The one idea: this is the top of the dependency graph. It owns the
 * configuration's consumers (metric registry, plugin host, pipeline,
 * capture, exporters) and is the only module that knows them all; nothing
 * below it calls back up except through the callbacks it installs.
 */
#ifndef SONDE_AGENT_H
#define SONDE_AGENT_H

struct config;

/* Run the command the configuration describes (features, list-plugins,
 * replay or live capture). Returns the process exit status. */
int agent_run(struct config *cfg);

#endif
