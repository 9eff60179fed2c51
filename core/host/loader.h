/*
 * loader.h - finding, checking, loading and listing plugins.
 *
 * A plugin directory is scanned for *.so files. Each file is first read as
 * ELF with libelf (right class and machine, a shared object, exporting
 * sonde_plugin_entry) before dlopen ever runs it, so a foreign or truncated
 * file is refused without executing a byte of it. The descriptor's ABI is
 * then checked against the agent's. Every file seen is remembered with its
 * verdict, so `--list-plugins` can say why something was refused and a
 * rescan (drop-in loading) only looks at files not seen before.
 */
#ifndef SONDE_PLUGIN_LOADER_H
#define SONDE_PLUGIN_LOADER_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include <sonde/plugin.h>

/* One file seen in a plugin directory; also the handle plugins get. */
struct sonde_plugin_handle {
	char *path;
	dev_t dev;
	ino_t ino;
	time_t mtime;
	void *dl;                        /* dlopen handle, NULL if refused */
	const struct sonde_plugin *desc; /* NULL if refused */
	void *state;                     /* what init() returned */
	bool loaded;
	char reason[256];                /* why it was refused */
	struct plugin_registry *reg;
};

/* One protocol offered by a loaded plugin. */
struct proto_entry {
	const struct sonde_protocol *proto;
	struct sonde_plugin_handle *plugin;
};

struct host;

struct plugin_registry {
	struct sonde_plugin_handle **files;
	size_t n_files;
	struct proto_entry **protos;     /* entries never move: connections
	                                    keep pointers to them */
	size_t n_protos;
	const struct sonde_host_api *host;
	char **dirs;
	size_t n_dirs;
	int inotify_fd;                  /* -1 if not watching */
	unsigned generation;             /* bumped when the protocol set changes */
	struct host *owner;              /* the host this registry belongs to */
};

void plugins_init(struct plugin_registry *r, const struct sonde_host_api *host);
/* Directories are copied. Nonexistent ones are noted on stderr, not fatal. */
void plugins_add_dir(struct plugin_registry *r, const char *dir);
/* Load every new *.so in the directories. Returns how many were loaded. */
int plugins_scan(struct plugin_registry *r, bool verbose);
/* Start watching the directories for new files (inotify). */
int plugins_watch(struct plugin_registry *r);
/* Call when plugins_watch's fd is readable: drains it and rescans. */
int plugins_on_notify(struct plugin_registry *r);
void plugins_free(struct plugin_registry *r);

const struct proto_entry *plugins_find_proto(const struct plugin_registry *r, const char *name);
void plugins_list(const struct plugin_registry *r, FILE *out);

/* Load a descriptor linked into the program (no file, no dlopen): the
 * same ABI, name and init checks as a file. SONDE_OK, or SONDE_ERR_ABI /
 * SONDE_ERR_NOMEM / init()'s error, with the reason in why. */
int plugins_load_builtin(struct plugin_registry *r, const struct sonde_plugin *desc,
                         const char *origin, char *why, size_t whylen);

/* Check one file without loading it: 0 if it looks like a sonde plugin,
 * else -1 with the reason. Exposed for tests. */
int plugin_elf_check(const char *path, char *why, size_t whylen);
/* Check a descriptor against the agent's ABI. Exposed for tests. */
int plugin_abi_check(const struct sonde_plugin *d, char *why, size_t whylen);

#endif
