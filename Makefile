# berth — common targets. Everything a test needs is installed by `make deps`.
SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
RELEASE := target/$(TARGET)/release
PREFIX ?= /usr/local
# Debian packages the tests and peers need.
DEB_PACKAGES := busybox-static runc crun umoci skopeo hyperfine jq zstd

.PHONY: all deps build test demo install bench clippy fmt clean conformance

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build:
	$(CARGO) build --release --workspace

# Runs a real container: a busybox bundle built from Debian's busybox-static.
demo: deps build
	@scripts/demo.sh $(RELEASE)/berth

test: deps build
	$(CARGO) test --release --workspace -- --test-threads=2

install: build
	install -m 0755 $(RELEASE)/berth $(PREFIX)/bin/berth
	install -m 0755 $(RELEASE)/berth-bundle $(PREFIX)/bin/berth-bundle

# OCI runtime-spec conformance: berth (skipped with a reason while it cannot
# run a container) side by side with runc and crun; regenerates
# oci-conformance/RESULTS.md. Fails when berth fails what a peer passes.
BERTH ?= $(RELEASE)/berth
CONFORMANCE_ARGS ?=
conformance: deps
	$(CARGO) build --release -p oci-conformance
	@$(CARGO) build --release --bin berth || echo "conformance: berth does not build; its column will be skipped"
	oci-conformance/conformance.sh $(RELEASE)/oci-conformance $(BERTH) $(CONFORMANCE_ARGS)

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all -- --check

clean:
	$(CARGO) clean
