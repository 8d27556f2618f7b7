# passthru: entry points. `make demo` and `make test` work from a fresh clone.

CARGO ?= cargo
# Where cargo puts binaries (honours CARGO_TARGET_DIR).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# Debian packages the tests, the demo and the benchmarks use.
DEBIAN_PACKAGES := openssl curl socat haproxy nginx libnginx-mod-stream tinyproxy iproute2 util-linux systemd chromium wrk strace
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all build test lint import-cycles fmt demo demo-fleet bench bench-quick bench-idle bench-micro bench-syscalls deps clean soak audit fuzz package package-deps package-test

all: build

# Debian packages `make package` and its test use: dpkg-shlibdeps (dpkg-dev)
# and strip (binutils) for cargo-deb, man and groff to render the pages,
# systemd-analyze to verify the units.
PACKAGE_DEBIAN_PACKAGES := dpkg-dev binutils man-db groff-base systemd

# $(call apt_install_missing,PACKAGES): apt-get install the ones not installed,
# with service starts blocked (policy-rc.d) so nothing is left running.
define apt_install_missing
@missing=""; \
for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
	echo "make: installing$$missing"; \
	guard=""; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
		printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
		$(SUDO) chmod +x /usr/sbin/policy-rc.d; guard=1; \
	fi; \
	$(SUDO) apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	rc=$$?; \
	if [ -n "$$guard" ]; then $(SUDO) rm -f /usr/sbin/policy-rc.d; fi; \
	exit $$rc; \
fi
endef

## deps: install missing Debian packages (openssl, curl, socat, haproxy, nginx + stream module, tinyproxy, iproute2 (ip, tc, ss), util-linux (unshare, setpriv), systemd (systemd-socket-activate), chromium, wrk, strace)
deps:
	$(call apt_install_missing,$(DEBIAN_PACKAGES))

## package-deps: install what `make package` and `make package-test` need (cargo-deb, dpkg-dev, binutils, man-db, groff, systemd)
package-deps:
	$(call apt_install_missing,$(PACKAGE_DEBIAN_PACKAGES))
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked

## package: the Debian package target/debian/passthru_VERSION-1_ARCH.deb (release build; binaries, man pages, completions, units, conffile)
package: package-deps
	$(CARGO) build --release -p passthru -p passthru-certs -p lb-sim -p passthru-packaging --bins
	rm -rf $(TARGET_DIR)/release/packaging
	$(TARGET_DIR)/release/passthru-packaging $(TARGET_DIR)/release/packaging
	gzip -9n $(TARGET_DIR)/release/packaging/man/*
	rm -f $(TARGET_DIR)/debian/passthru_*.deb
	$(CARGO) deb -p passthru --no-build

## package-test: build the package, check its contents, install, check, render, remove and purge it on this machine (root or sudo)
package-test: package
	./packaging/test-package.sh $(TARGET_DIR)/debian/passthru_*.deb

## build: compile every crate, tests and benches included
build:
	$(CARGO) build --workspace --all-targets

## test: unit, integration and command-line tests (real TLS, loopback only); the package test too when cargo-deb is installed
test: deps
	$(CARGO) test --workspace
	@if command -v cargo-deb >/dev/null 2>&1; then $(MAKE) --no-print-directory package-test; \
	else echo "make test: cargo-deb is not installed, so the package test is left to make package-test"; fi

## lint: formatting, clippy (warnings are errors), no import cycle between files, and the dependency audit
lint: audit import-cycles
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## import-cycles: fail on any import cycle between the source files of a crate (docs/architecture.md)
import-cycles:
	./scripts/import-cycles.sh

## audit: licences, bans and sources of every dependency (cargo-deny, installed when missing)
audit:
	@command -v cargo-deny >/dev/null 2>&1 || $(CARGO) install cargo-deny --locked
	$(CARGO) deny check licenses bans sources

fmt:
	$(CARGO) fmt --all

## demo: lab PKI, the real passthru in front of a mutual-TLS gateway; Chromium's post-quantum hello split over a small-MTU path; then every lb-sim scenario, table and HTML report
demo: deps
	$(CARGO) build -p passthru -p passthru-tests -p lb-sim --bins
	$(TARGET_DIR)/debug/passthru-demo --passthru $(TARGET_DIR)/debug/passthru
	$(CARGO) test -q -p passthru-tests --test it -- post_quantum --nocapture
	$(TARGET_DIR)/debug/lb-sim --html $(TARGET_DIR)/lb-sim-report.html --json $(TARGET_DIR)/lb-sim-report.json
	@echo "Optional: make demo-fleet (three instances behind HAProxy: a rolling upgrade and a rolling restart under load)"

## demo-fleet: optional part of the demo: three passthru instances behind a real HAProxy and a mutual-TLS gateway, agents connecting continuously; a rolling upgrade (--takeover) and a rolling restart, with their counts (~15 s)
demo-fleet: deps
	$(CARGO) build -p passthru -p passthru-tests --bins
	$(TARGET_DIR)/debug/passthru-fleet --passthru $(TARGET_DIR)/debug/passthru

# Open files for 10,000 idle connections through a proxy (two sockets each):
# raise the soft limit as far as the hard limit allows.
RAISE_NOFILE := ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn)

## bench: load-generator table (direct, passthru, HAProxy, nginx stream; ~6 min), then the same comparison with wrk and curl against the goals, idle memory at 5,000 and 10,000 connections included (~15 min in all)
bench: deps
	$(CARGO) build --release -p passthru -p passthru-benches --bins
	$(TARGET_DIR)/release/loadgen run
	$(RAISE_NOFILE); $(TARGET_DIR)/release/loadgen compare

## bench-quick: both tables in about 4 minutes (shorter runs, smaller downloads, 500 and 1,000 idle connections)
bench-quick: deps
	$(CARGO) build --release -p passthru -p passthru-benches --bins
	$(TARGET_DIR)/release/loadgen run --quick
	$(RAISE_NOFILE); $(TARGET_DIR)/release/loadgen compare --quick

## bench-idle: 10,000 idle TLS connections through each proxy, RSS per connection
bench-idle: deps
	$(CARGO) build --release -p passthru -p passthru-benches --bins
	$(RAISE_NOFILE); $(TARGET_DIR)/release/loadgen idle --connections 10000

## bench-syscalls: system calls and context switches per keep-alive request, then per new TLS connection, by call, for passthru, HAProxy and nginx (perf stat, or strace -c -f; ~2 min)
BENCH_SYSCALLS_SECONDS ?= 5
bench-syscalls: deps
	$(CARGO) build --release -p passthru -p passthru-benches --bins
	$(TARGET_DIR)/release/loadgen syscalls --seconds $(BENCH_SYSCALLS_SECONDS)
	$(TARGET_DIR)/release/loadgen syscalls --seconds $(BENCH_SYSCALLS_SECONDS) --close

## bench-micro: criterion micro-benchmarks (ClientHello parse, route lookup, PROXY headers)
bench-micro:
	$(CARGO) bench -p passthru-benches

## soak: the full connection storms (waves of 2,000 TLS connections; 2,000 agents reconnecting to a gateway of 50 with and without server limits), release build
soak: deps
	$(CARGO) test --release -p passthru-tests --test it -- --ignored soak --nocapture

## fuzz: coverage-guided fuzzing of every parser that reads network input, FUZZ_SECONDS (default 60) per target; not part of test (docs/reliability.md)
FUZZ_SECONDS ?= 60
fuzz:
	CARGO=$(CARGO) ./fuzz/run.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
