# tern — the two commands of README.md and what they stand on.
#   make run    install what is missing, build, start `tern serve` with etc/tern.toml
#   make test   install what is missing, build, run every test (unit, integration, fuzz)
# Other targets: build, asan, bench, fuzz, clean.

JOBS ?= $(shell nproc)
PYTHON := /usr/bin/python3
CMAKE_FLAGS := -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
FUZZ_SECONDS ?= 20

.PHONY: all deps build asan fuzz-build run test unit integration fuzz-smoke fuzz bench clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B build $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)

# Unit tests and a tern binary under AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps
	@cmake -S . -B build-asan $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS) --target unit_tests tern

fuzz-build: deps
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_FUZZ=ON -DTERN_WERROR=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

run: build
	@./scripts/prepare-run.sh etc/tern.toml
	./build/tern serve --config etc/tern.toml

test: build asan fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/run-tests.sh

unit:
	@cd build-asan && ctest --output-on-failure

integration:
	@TERN_BINARY=$(CURDIR)/build/tern $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

fuzz-smoke:
	@./fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

fuzz: fuzz-build
	@./fuzz/run.sh build-fuzz 600

bench: build
	@$(PYTHON) bench/run.py

clean:
	rm -rf build build-asan build-fuzz
