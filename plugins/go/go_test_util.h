/*
 * go_test_util.h - for the Go plugin's unit tests only: build the Go
 * programs of tests/live/go_peers with Debian's go (offline: standard
 * library only, GO111MODULE=off), once per test run, before the check
 * runner forks.
 *
 * The one idea: the tests read real executables, made now by the Go on
 * this machine, in each form a user may ship (plain, stripped with -s -w,
 * without DWARF with -w, PIE), so what they check is what the plugin meets.
 * Without go the test cannot run: it exits 77 (skip) with the reason.
 */
#ifndef SONDE_GO_TEST_UTIL_H
#define SONDE_GO_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef GO_PEERS_DIR
#error "GO_PEERS_DIR must name tests/live/go_peers"
#endif
#ifndef GO_TEST_WORK
#error "GO_TEST_WORK must name a scratch directory"
#endif

struct gt_build {
	const char *name;  /* key: "tlsserver", "tlsserver_stripped" ... */
	const char *peer;  /* go_peers/<peer>/main.go */
	const char *flags; /* go build flags */
	int built;
};

static struct gt_build gt_builds[] = {
	{ "tlsserver", "tlsserver", "", 0 },
	{ "tlsserver_stripped", "tlsserver", "-ldflags='-s -w'", 0 },
	{ "tlsserver_nodwarf", "tlsserver", "-ldflags=-w", 0 },
	{ "tlsserver_pie", "tlsserver", "-buildmode=pie", 0 },
	{ "plain", "plain", "", 0 },
};

static char gt_goversion[64];

static int gt_have(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static const char *gt_path(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", GO_TEST_WORK, name);
	return buf;
}

/* The path of a built program (see gt_builds), or NULL. */
static const char *gt_binary(const char *name, const char *unused)
{
	static char paths[sizeof(gt_builds) / sizeof(gt_builds[0])][512];

	(void)unused;
	for (size_t i = 0; i < sizeof(gt_builds) / sizeof(gt_builds[0]); i++)
		if (!strcmp(gt_builds[i].name, name))
			return gt_builds[i].built ? gt_path(name, paths[i], sizeof(paths[i])) : NULL;
	return NULL;
}

static int gt_run(const char *cmd)
{
	int rc = system(cmd);

	if (rc != 0)
		fprintf(stderr, "go_test_util: failed (%d): %s\n", rc, cmd);
	return rc;
}

/* Build everything; exit 77 when go or objdump is missing. */
static void gt_setup(void)
{
	char cmd[2048], out[512];
	FILE *f;

	if (!gt_have("go")) {
		printf("SKIP: Debian's go (golang-go) is not installed: the Go plugin's tests build "
		       "real Go programs\n");
		exit(77);
	}
	if (!gt_have("objdump")) {
		printf("SKIP: objdump (binutils) is not installed\n");
		exit(77);
	}
	mkdir(GO_TEST_WORK, 0755);
	setenv("GO111MODULE", "off", 1);
	setenv("GOFLAGS", "", 1);
	setenv("GOPROXY", "off", 1);
	setenv("GOTOOLCHAIN", "local", 1);
	snprintf(cmd, sizeof(cmd), "%s/cache", GO_TEST_WORK);
	setenv("GOCACHE", cmd, 1);
	snprintf(cmd, sizeof(cmd), "%s/gopath", GO_TEST_WORK);
	setenv("GOPATH", cmd, 1);
	setenv("HOME", GO_TEST_WORK, 1);
	for (size_t i = 0; i < sizeof(gt_builds) / sizeof(gt_builds[0]); i++) {
		snprintf(cmd, sizeof(cmd), "cd '%s' && go build %s -o '%s' '%s/%s/main.go'", GO_TEST_WORK,
			 gt_builds[i].flags, gt_path(gt_builds[i].name, out, sizeof(out)), GO_PEERS_DIR,
			 gt_builds[i].peer);
		gt_builds[i].built = gt_run(cmd) == 0;
	}
	f = popen("go env GOVERSION", "r");
	if (f) {
		if (fgets(gt_goversion, sizeof(gt_goversion), f))
			gt_goversion[strcspn(gt_goversion, "\n")] = 0;
		pclose(f);
	}
	/* The field-offset oracle: Go's own type checker (go/types). */
	snprintf(cmd, sizeof(cmd), "cd '%s' && go run '%s/offsets/main.go' > '%s/offsets.txt'",
		 GO_TEST_WORK, GO_PEERS_DIR, GO_TEST_WORK);
	gt_run(cmd);
}

#endif /* SONDE_GO_TEST_UTIL_H */
