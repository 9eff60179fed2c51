# Thin wrapper around CMake. Every user-facing target bootstraps first, so a
# fresh Debian machine needs nothing but `make demo` or `make test`.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build bootstrap demo test test-unit test-live test-asan bench clean install

all: build

bootstrap:
	@scripts/bootstrap.sh build

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The sanitizer build: unit tests under ASan/UBSan, and the libFuzzer
# harnesses (clang) with a short smoke run each.
$(ASAN_BUILD)/CMakeCache.txt:
	@CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSONDE_SANITIZE=ON \
	    -DSONDE_FUZZ=ON -DSONDE_LIVE_TESTS=OFF >/dev/null

test-asan: $(ASAN_BUILD)/CMakeCache.txt
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L 'unit|fuzz|replay'

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -L 'unit|replay'

test-live: build
	@cd $(BUILD) && ctest --output-on-failure -L live

# Everything: unit + replay (normal build), unit + fuzz smoke (sanitizers),
# live tier (root, real eBPF).
test:
	@scripts/bootstrap.sh test
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory test-asan
	@cd $(BUILD) && ctest --output-on-failure

demo:
	@scripts/bootstrap.sh demo
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh $(BUILD)

bench:
	@scripts/bootstrap.sh bench
	@$(MAKE) --no-print-directory build
	@bench/run.sh $(BUILD)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
