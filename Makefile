# tern — the two commands of README.md and what they stand on.
#   make run    install what is missing, build, start `tern serve` with etc/tern.toml
#   make test   install what is missing, build, run every test (unit, integration, fuzz)
#   make install    build/tern into $(DESTDIR)$(PREFIX)/sbin, with the sendmail and mailq links
# Other targets: build, asan, bench, fuzz, clean.

JOBS ?= $(shell nproc)
PYTHON := /usr/bin/python3
CMAKE_FLAGS := -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
FUZZ_SECONDS ?= 20

PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_ROOT := $(DESTDIR)$(PREFIX)
BINARY ?= build/tern

.PHONY: all deps build asan fuzz-build run test unit integration fuzz-smoke fuzz bench clean install

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

# Installs what `make build` made (run that first; install never builds, so
# `sudo make install` does not write root's files into build/): the binary,
# sendmail and mailq as relative links to it (as Postfix installs them), the
# example configuration only where none is yet, and the systemd unit where the
# tree has one. Running it again changes nothing that is there.
install:
	@test -x "$(BINARY)" || { echo "make install: $(BINARY) is missing: run make build first" >&2; exit 1; }
	install -d "$(INSTALL_ROOT)/sbin" "$(INSTALL_ROOT)/bin" "$(INSTALL_ROOT)/etc/tern"
	install -m 0755 "$(BINARY)" "$(INSTALL_ROOT)/sbin/tern"
	ln -sfn tern "$(INSTALL_ROOT)/sbin/sendmail"
	ln -sfn ../sbin/tern "$(INSTALL_ROOT)/bin/mailq"
	@if [ -e "$(INSTALL_ROOT)/etc/tern/tern.toml" ]; then \
	  echo "kept $(INSTALL_ROOT)/etc/tern/tern.toml"; \
	else \
	  sed -e 's#"\.\./var/log"#"/var/log/tern"#' -e 's#"\.\./var/#"/var/lib/tern/#g' etc/tern.toml \
	    > "$(INSTALL_ROOT)/etc/tern/tern.toml" && chmod 0644 "$(INSTALL_ROOT)/etc/tern/tern.toml"; \
	  echo "installed $(INSTALL_ROOT)/etc/tern/tern.toml"; \
	fi
	@if [ -f etc/tern.service ]; then \
	  install -d "$(INSTALL_ROOT)/lib/systemd/system" && \
	  sed 's#/usr/local/#$(PREFIX)/#g' etc/tern.service > "$(INSTALL_ROOT)/lib/systemd/system/tern.service" && \
	  chmod 0644 "$(INSTALL_ROOT)/lib/systemd/system/tern.service" && \
	  echo "installed $(INSTALL_ROOT)/lib/systemd/system/tern.service"; \
	fi
