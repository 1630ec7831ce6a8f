# berth — common targets. Everything a test needs is installed by `make deps`.
SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
RELEASE := target/$(TARGET)/release
PREFIX ?= /usr/local
# Debian packages the tests and peers need.
DEB_PACKAGES := busybox-static runc crun umoci skopeo podman hyperfine jq zstd qemu-system-x86 cpio xz-utils bc libcap2-bin strace

.PHONY: all deps build test test-cgroup2 demo install bench bench-unpack bench-commit clippy fmt clean conformance

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
	@scripts/demo.sh $(CURDIR)/$(RELEASE)/berth $(CURDIR)/$(RELEASE)/berth-bundle

# Everything: unit and integration tests on this host (cgroup v1), the
# cgroup suite again on cgroup v2 in the guest, then the conformance suite
# (fails if berth fails an assertion runc or crun passes here).
test: deps build
	$(CARGO) test --release --workspace -- --test-threads=2
	guest/test-cgroup2.sh
	oci-conformance/conformance.sh $(RELEASE)/oci-conformance $(RELEASE)/berth
	guest/conformance-cgroup2.sh $(RELEASE)/oci-conformance $(RELEASE)/berth

# The cgroup suite on cgroup v2, inside a throwaway qemu guest (this host is
# cgroup v1; see guest/run.sh). Skips with the reason only if qemu cannot run.
test-cgroup2: deps
	guest/test-cgroup2.sh

# Start-up time side by side with runc and crun (hyperfine, one run).
bench: deps build
	scripts/bench-run.sh $(CURDIR)/$(RELEASE)/berth
	bundle-tools/bench/unpack.sh $(RELEASE)/berth-bundle
	bundle-tools/bench/commit.sh $(RELEASE)/berth-bundle

install: build
	install -m 0755 $(RELEASE)/berth $(PREFIX)/bin/berth
	install -m 0755 $(RELEASE)/berth-bundle $(PREFIX)/bin/berth-bundle

# berth-bundle unpack vs umoci unpack vs gzip|tar on a ~650 MB multi-layer image.
bench-unpack: deps
	$(CARGO) build --release -p berth-bundle
	bundle-tools/bench/unpack.sh $(RELEASE)/berth-bundle

# Overlay bundle of a cached image, and commit of 100 changed files vs
# umoci repack, on a ~300 MB image.
bench-commit: deps
	$(CARGO) build --release -p berth-bundle
	bundle-tools/bench/commit.sh $(RELEASE)/berth-bundle

# OCI runtime-spec conformance: berth (skipped with a reason while it cannot
# run a container) side by side with runc and crun; regenerates
# oci-conformance/RESULTS.md. Fails when berth fails what a peer passes.
BERTH ?= $(RELEASE)/berth
CONFORMANCE_ARGS ?=
conformance: deps
	$(CARGO) build --release -p oci-conformance
	@$(CARGO) build --release --bin berth || echo "conformance: berth does not build; its column will be skipped"
	oci-conformance/conformance.sh $(RELEASE)/oci-conformance $(BERTH) $(CONFORMANCE_ARGS)
	guest/conformance-cgroup2.sh $(RELEASE)/oci-conformance $(BERTH)

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all -- --check

clean:
	$(CARGO) clean
