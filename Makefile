# Thin front door over CMake + Ninja. Every target installs what it is missing first.
#   make          build (build/)
#   make run      build the gateway alone and start it on examples/gatehouse.yaml (with auth on,
#                 the first start creates the administrator "admin" and prints its password
#                 once, in a box, after the build output and before the gateway's log)
#   make check    build and run every test: unit, fuzz-corpus replay, integration, interop, lint
#   make asan     the same suite under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   make fuzz     run every libFuzzer target for FUZZ_SECONDS each (build-fuzz/, clang)
#   make bench    the benchmarks in bench/ (figures printed, see docs/performance.md and
#                 docs/openapi.md for the OpenAPI token counts)
#   make format   clang-format the C sources
CONFIG ?= examples/gatehouse.yaml
FUZZ_SECONDS ?= 60
BUILD_TYPE ?= RelWithDebInfo

.PHONY: all build run check asan fuzz bench format clean deps

all: build

deps:
	@scripts/deps.sh build

build: deps
	@[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build build

# Only what `run` needs: the gatehouse target, not the tests, fuzzers and benchmarks.
run:
	@scripts/deps.sh run
	@[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build build --target gatehouse
	@./build/gatehouse user bootstrap -c $(CONFIG)
	@./build/gatehouse run -c $(CONFIG)

check: build
	@scripts/deps.sh test
	@scripts/check.sh build

asan:
	@scripts/deps.sh test
	@[ -f build-asan/build.ninja ] || CC=clang cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGH_SANITIZE=ON >/dev/null
	@cmake --build build-asan
	@scripts/check.sh build-asan

fuzz:
	@scripts/deps.sh test
	@[ -f build-fuzz/build.ninja ] || CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGH_FUZZ=ON >/dev/null
	@cmake --build build-fuzz
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

bench: build
	@scripts/deps.sh bench
	@bench/run.sh build
	@bench/replicas.sh build
	@cmake --build build --target store_scale && tests/unit/store/with-postgres.sh build/store_scale
	@node bench/search_tokens.mjs || echo "search recall skipped (cd bench/node && npm ci)"
	@node bench/openapi_tokens.mjs || echo "openapi token measurement skipped (cd bench/node && npm ci)"

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
