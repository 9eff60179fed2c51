#!/bin/sh
# sdk_template_build_test.sh BUILD_DIR SOURCE_DIR
#
# Builds plugins/redis and sdk/template the way a third party would: copied
# out of the source tree, compiled with nothing but
# `pkg-config --cflags sonde-sdk` (the uninstalled sonde-sdk.pc the build
# writes into BUILD_DIR/pkgconfig), then loaded with dlopen(RTLD_NOW) by a
# program that links nothing but libc. It proves, in order:
#   1. the SDK's flags name one include directory, sdk/include;
#   2. no core header is reachable with those flags, while <sonde/plugin.h> is;
#   3. no plugin source includes anything from core/ (or climbs out of its
#      directory);
#   4. each plugin compiles out of tree, exports only sonde_plugin_entry, and
#      loads with every symbol resolved from libc alone;
#   5. the template's Makefile and CMakeLists.txt both work, and
#      `make install` puts example.so in the SDK's plugin directory;
#   6. the template plugin does what its comments say, driven by the real
#      host of tests/support (detection, pipelined spans, errors, loss).
set -eu

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
pcdir="$build/pkgconfig"
CC=${SDK_TEST_CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

fail() {
	echo "sdk_template_build_test: FAIL: $*" >&2
	exit 1
}
step() {
	echo "sdk_template_build_test: $*"
}

[ -f "$pcdir/sonde-sdk.pc" ] || fail "$pcdir/sonde-sdk.pc missing (configure the build first)"
sdk_cflags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags sonde-sdk) ||
	fail "pkg-config cannot read $pcdir/sonde-sdk.pc"
step "SDK flags: $sdk_cflags"

# 1. Exactly one -I, and it is the SDK's include directory.
n_inc=0
for f in $sdk_cflags; do
	case "$f" in
	-I*)
		n_inc=$((n_inc + 1))
		d=$(cd "${f#-I}" && pwd) || fail "include dir ${f#-I} does not exist"
		[ "$d" = "$src/sdk/include" ] || fail "include dir $d is not $src/sdk/include"
		;;
	-isystem* | -iquote* | -idirafter*)
		fail "unexpected include option $f"
		;;
	esac
done
[ "$n_inc" -eq 1 ] || fail "expected one -I in the SDK flags, found $n_inc"

# 2. What is reachable with those flags, from a directory outside the tree.
printf '#include <sonde/plugin.h>\nint x = SONDE_ABI_MAJOR;\n' >"$work/ok.c"
$CC $sdk_cflags -fsyntax-only "$work/ok.c" || fail "<sonde/plugin.h> not reachable"
for h in core/span.h core/agent.h core/plugin.h span.h agent.h host.h metrics.h \
	bpf/sonde_events.h sonde_events.h; do
	for form in "\"$h\"" "<$h>"; do
		printf '#include %s\n' "$form" >"$work/probe.c"
		if $CC $sdk_cflags -fsyntax-only "$work/probe.c" 2>/dev/null; then
			fail "core header $form is reachable with the SDK flags"
		fi
	done
done
step "only <sonde/...> is reachable"

# 3. Includes of the plugin sources: SDK, libc, or a file beside them.
check_includes() {
	dir=$1
	shift
	for f in "$@"; do
		grep -n 'core/' "$f" | grep -E '#[[:space:]]*include' &&
			fail "$f includes from core/"
		grep -E '#[[:space:]]*include' "$f" | while read -r line; do
			inc=$(printf '%s\n' "$line" | sed -E 's/^#[[:space:]]*include[[:space:]]*//')
			case "$inc" in
			'<sonde/'*) ;;
			'<'*/*'>')
				case "$inc" in
				'<sys/'*) ;;
				*) fail "$f: unexpected include $inc" ;;
				esac
				;;
			'<'*) ;;
			'"'*'"')
				name=$(printf '%s' "$inc" | tr -d '"')
				case "$name" in
				*/*) fail "$f: include $inc leaves its directory" ;;
				esac
				[ -f "$dir/$name" ] || fail "$f: include $inc is not beside it"
				;;
			*) fail "$f: cannot read include line: $line" ;;
			esac
		done
	done
}
check_includes "$src/plugins/redis" "$src"/plugins/redis/*.c "$src"/plugins/redis/*.h
check_includes "$src/sdk/template" "$src/sdk/template/example.c"
step "plugin sources include only the SDK, libc and their own headers"

# A loader that links libc only: RTLD_NOW fails on any unresolved symbol.
cat >"$work/load.c" <<'EOF'
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sonde/plugin.h>

int main(int argc, char **argv)
{
	void *h;
	sonde_plugin_entry_fn entry;
	const struct sonde_plugin *d;

	if (argc != 3)
		return 2;
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	entry = (sonde_plugin_entry_fn)dlsym(h, SONDE_PLUGIN_ENTRY_SYMBOL);
	d = entry ? entry() : NULL;
	if (!d || d->abi_major != SONDE_ABI_MAJOR || d->abi_minor > SONDE_ABI_MINOR ||
	    d->struct_size != sizeof(*d) || strcmp(d->name, argv[2]) != 0 || !d->protocols ||
	    !d->protocols[0]) {
		fprintf(stderr, "%s: bad descriptor\n", argv[1]);
		return 1;
	}
	printf("loaded %s %s (ABI %u.%u), protocol %s\n", d->name, d->version, d->abi_major,
	       d->abi_minor, d->protocols[0]->name);
	return 0;
}
EOF
$CC -std=gnu11 $sdk_cflags -o "$work/load" "$work/load.c" -ldl || fail "loader does not build"

check_so() {
	so=$1
	name=$2
	exports=$(nm -D --defined-only "$so" | awk 'NF == 3 && $2 ~ /[TDBRVWi]/ { print $3 }' | sort -u)
	[ "$exports" = "sonde_plugin_entry" ] ||
		fail "$so exports more than sonde_plugin_entry: $(echo $exports)"
	"$work/load" "$so" "$name" || fail "$so does not load on its own"
}

# 4. plugins/redis, out of tree.
mkdir "$work/redis"
cp "$src"/plugins/redis/*.c "$src"/plugins/redis/*.h "$work/redis/"
(cd "$work/redis" &&
	$CC -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
		-Werror $sdk_cflags -shared -o redis.so ./*.c) || fail "plugins/redis does not build out of tree"
check_so "$work/redis/redis.so" redis

# 5. The template: Makefile, then CMake, then make install.
cp -r "$src/sdk/template" "$work/tmpl-make"
PKG_CONFIG_PATH="$pcdir" make -s -C "$work/tmpl-make" CC="$CC" CFLAGS="-O2 -Wall -Wextra -Werror -Wno-unused-parameter" ||
	fail "sdk/template does not build with its Makefile"
check_so "$work/tmpl-make/example.so" example
PKG_CONFIG_PATH="$pcdir" make -s -C "$work/tmpl-make" install DESTDIR="$work/dest" ||
	fail "make install failed"
plugindir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=plugindir sonde-sdk)
[ -f "$work/dest$plugindir/example.so" ] || fail "make install did not put example.so in $plugindir"

cp -r "$src/sdk/template" "$work/tmpl-cmake"
rm -f "$work/tmpl-cmake/example.so"
PKG_CONFIG_PATH="$pcdir" CC="$CC" cmake -S "$work/tmpl-cmake" -B "$work/tmpl-cmake/build" \
	-DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 || {
	cat "$work/cmake.log" >&2
	fail "sdk/template does not configure with CMake"
}
cmake --build "$work/tmpl-cmake/build" >"$work/build.log" 2>&1 || {
	cat "$work/build.log" >&2
	fail "sdk/template does not build with CMake"
}
check_so "$work/tmpl-cmake/build/example.so" example

# 6. The template's behaviour, through the test host.
cat >"$work/drive.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void);

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "drive.c:%d: %s\n", __LINE__, #c);         \
			return 1;                                                  \
		}                                                                  \
	} while (0)

int main(void)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct th_conn *c;
	struct sonde_chunk ch = { 0 };
	const char *v[] = { "PING", "ECHO" };

	CHECK(th_set_config(h, NULL, "verbs", v, 2) == 0);
	CHECK(th_load(h, sonde_plugin_entry(), "line") == SONDE_OK);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	CHECK(th_detect(h, &ci, SONDE_DIR_EGRESS, "PING\r\n", 6) == 25);
	CHECK(th_detect(h, &ci, SONDE_DIR_EGRESS, "PIN", 3) == SONDE_DETECT_NEED_MORE);
	CHECK(th_detect(h, &ci, SONDE_DIR_EGRESS, "TIME\r\n", 6) == SONDE_DETECT_NO);
	CHECK(th_detect(h, &ci, SONDE_DIR_INGRESS, "PING\r\n", 6) == SONDE_DETECT_NO);
	c = th_conn_open(h, &ci);
	CHECK(c != NULL);
	/* Two pipelined requests, answers cut mid-line. */
	th_conn_feed(c, SONDE_DIR_EGRESS, 100, "PING\r\necho hi\r\n", 15);
	th_conn_feed(c, SONDE_DIR_INGRESS, 200, "OK\r\nER", 6);
	th_conn_feed(c, SONDE_DIR_INGRESS, 300, "R nope\r\n", 8);
	CHECK(th_n_ended(h) == 2);
	CHECK(strcmp(th_ended(h, 0)->name, "PING") == 0);
	CHECK(th_ended(h, 0)->end_ns == 200);
	CHECK(strcmp(th_ended(h, 1)->name, "ECHO") == 0);
	CHECK(th_ended(h, 1)->status == SONDE_STATUS_ERROR);
	CHECK(th_ended(h, 1)->end_ns == 300);
	CHECK(th_n_records(h) == 2);
	CHECK(strcmp(th_record(h, 1)->m->name, "example.line.duration") == 0);
	/* A truncated write: the pending span is dropped, counting resumes. */
	ch.dir = SONDE_DIR_EGRESS;
	ch.ts_unix_ns = 400;
	ch.data = (const uint8_t *)"PING\r\nPI";
	ch.len = 8;
	ch.orig_len = 5000;
	th_conn_feed_chunk(c, &ch);
	th_conn_feed(c, SONDE_DIR_INGRESS, 500, "OK\r\n", 4);
	th_conn_feed(c, SONDE_DIR_EGRESS, 600, "PING\n", 5);
	th_conn_feed(c, SONDE_DIR_INGRESS, 700, "OK\n", 3);
	CHECK(th_n_ended(h) == 3);
	CHECK(th_ended(h, 2)->start_ns == 600);
	CHECK(th_n_dropped(h) == 1);
	/* Unanswered at close: dropped, nothing left open. */
	th_conn_feed(c, SONDE_DIR_EGRESS, 800, "ECHO x\n", 7);
	th_conn_close(c, 900);
	CHECK(th_n_open(h) == 0);
	CHECK(th_n_dropped(h) == 2);
	CHECK(th_misuse(h) == 0);
	th_free(h);
	printf("template plugin behaves\n");
	return 0;
}
EOF
# The driver links the real host as a library, the way an out-of-tree
# author does after `make install`: pkg-config sonde-testhost.
th_flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs sonde-testhost) ||
	fail "pkg-config does not know sonde-testhost"
# A sanitizer build's library needs the same runtime in the driver.
san=
drive_cc=$CC
if grep -q '^SONDE_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	san="-fsanitize=address,undefined"
	drive_cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
fi
$drive_cc -std=gnu11 -Wall $san -o "$work/drive" "$work/drive.c" "$src/sdk/template/example.c" \
	$th_flags || fail "template driver does not build"
"$work/drive" || fail "the template plugin misbehaves under the test host"
step "PASS"
