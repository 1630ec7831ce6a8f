# berth — common targets. Everything a test needs is installed by `make deps`.
SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
RELEASE := target/$(TARGET)/release
PREFIX ?= /usr/local
# Debian packages the tests and peers need. The caller suite (callers/)
# needs containerd (ctr, containerd-shim-runc-v2), podman (with conmon; as
# root on overlay it needs neither uidmap nor fuse-overlayfs; CNI plugins
# for its network backend) and docker.io (dockerd, /usr/bin/docker,
# docker-init from tini). The seccomp tests read containers-common's
# Docker-shaped profile (/usr/share/containers/seccomp.json) and compare
# berth's filters with libseccomp's (python3-seccomp, test-only).
# The netDevices tests make interfaces with iproute2's `ip`.
DEB_PACKAGES := build-essential file busybox-static runc crun umoci skopeo jq zstd qemu-system-x86 cpio xz-utils bc libcap2-bin strace uidmap \
	containerd podman conmon containernetworking-plugins docker.io tini \
	golang-github-containers-common python3-seccomp iproute2 \
	systemd dbus dbus-user-session criu kmod
# The differential test against runc (oci-diff) also runs cases under
# unshare (util-linux).
DEB_PACKAGES += util-linux

.PHONY: all deps build text-order test test-full test-diff test-callers test-cgroup2 test-cgroup1 test-systemd demo install bench bench-quick bench-build bench-profile bench-unpack bench-commit clippy fmt clean conformance

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@scripts/check-toolchain

build:
	$(CARGO) build --release --workspace

# Runs a real container: a busybox bundle built from Debian's busybox-static.
demo: deps build
	@scripts/demo.sh $(CURDIR)/$(RELEASE)/berth $(CURDIR)/$(RELEASE)/berth-bundle

# Everything: unit and integration tests on this host (cgroup v1), berth
# under its real callers (containerd, podman, Docker; fails if berth fails
# a check runc passes), the cgroup suite again on cgroup v2 in the guest,
# then the conformance suite (fails if berth fails an assertion runc or
# crun passes here).
# Each suite prints its time (scripts/timed); .ci/run sums them up.
TIMED := scripts/timed
# The cgroup suite runs on the host for the cgroup version the host has, and
# in the qemu guest for the other one (v1 hierarchies there on a cgroup v2
# host such as stock Debian 12). The conformance suite's cgroup v2 cases run
# in the guest only when the host is not already cgroup v2.
GUEST_CGROUPS := $(shell [ "$$(guest/host-cgroups)" = v2 ] && echo v1 || echo v2)
test: deps build
	$(TIMED) cargo-test $(CARGO) test --release --workspace --no-fail-fast -- --test-threads=2
	$(TIMED) callers $(RELEASE)/berth-callers --berth $(RELEASE)/berth $(CALLERS_ARGS)
	$(TIMED) oci-diff $(OCI_DIFF) $(DIFF_ARGS)
	$(TIMED) guest-cgroup$(GUEST_CGROUPS) guest/test-cgroups.sh $(GUEST_CGROUPS)
	$(TIMED) guest-systemd-criu guest/test-systemd.sh
	$(TIMED) conformance oci-conformance/conformance.sh $(RELEASE)/oci-conformance $(RELEASE)/berth
	$(if $(filter v2,$(GUEST_CGROUPS)),$(TIMED) guest-conformance-cgroup2 guest/conformance-cgroup2.sh $(RELEASE)/oci-conformance $(RELEASE)/berth)
	$(TIMED) bench-quick $(MAKE) --no-print-directory bench-quick

# berth under containerd's shim (ctr), podman's conmon and Docker, each
# check with runc too; the runtime calls they make are recorded in
# target/callers/records (see callers/README.md). CALLERS_ARGS: e.g.
# `--only docker`, `--full`.
CALLERS_ARGS ?=
test-callers: deps build
	$(RELEASE)/berth-callers --berth $(RELEASE)/berth $(CALLERS_ARGS)

# runc as the oracle: configs made by runc, crun, berth, ctr, podman and
# Docker (the latter two recorded by the callers suite just before, or
# recorded now) and field-by-field variations of each, run under runc and
# berth with a probe; every difference must be in
# oci-conformance/src/diff/known.rs. make test runs a sample (seed printed;
# OCI_DIFF_SEED=N OCI_DIFF_SAMPLE=N reproduce it), DIFF_ARGS=--full all.
DIFF_ARGS ?=
OCI_DIFF = $(RELEASE)/oci-diff --berth $(RELEASE)/berth --runc /usr/sbin/runc \
	--records target/callers/records --callers $(RELEASE)/berth-callers
test-diff: deps build
	$(OCI_DIFF) $(DIFF_ARGS)

# make test at full size: the longer loops of the caller suite (--full),
# the seccomp differential test's exhaustive argument sets, 60 kill
# points per command in the crash-safety tests (berth's and berth-bundle's)
# and the whole oci-diff corpus.
test-full:
	BERTH_SECCOMP_FULL=1 BERTH_CRASH_POINTS=60 $(MAKE) test CALLERS_ARGS="--full $(CALLERS_ARGS)" DIFF_ARGS="--full $(DIFF_ARGS)"

# The cgroup suite on cgroup v2, inside a throwaway qemu guest (this host is
# cgroup v1; see guest/run.sh). Skips with the reason only if qemu cannot run.
test-cgroup2: deps
	guest/test-cgroups.sh v2

# The cgroup v1 suite in the guest with v1 hierarchies (for cgroup v2 hosts).
test-cgroup1: deps
	guest/test-cgroups.sh v1

# The systemd cgroup driver (guest booted with systemd as PID 1, cgroup v2
# then v1) and checkpoint/restore with CRIU (v2 boot): one boot per mode.
test-systemd: deps
	guest/test-systemd.sh

# Benchmarks (bench/README.md): berth against runc and crun (run, create,
# start, delete, exec, 100 running containers, peak RSS, CPU, floors) and
# berth-bundle against umoci, in interleaved rounds; markdown on stdout,
# bench/RESULTS.md and bench/results.json. Two berth binaries side by side:
#   make bench BERTH_OLD=path/to/old/berth      (BERTH= for the new one)
# bench-quick: the same in fewer rounds on a small image (CI's smoke test;
# results in target/bench/). bench-profile: where `berth run` spends its
# time (perf, strace, callgrind) into bench/PROFILE.md.
BENCH := $(RELEASE)/berth-bench
BERTH_OLD ?=
BENCH_ARGS ?=
BENCH_RUNTIMES = --runtime berth=$(BERTH) $(if $(BERTH_OLD),--runtime berth-old=$(BERTH_OLD))
PROFILE_PACKAGES := valgrind linux-perf

bench-build:
	$(CARGO) build --release --manifest-path bench/Cargo.toml --target-dir target

bench: deps build bench-build
	$(BENCH) --repo $(CURDIR) $(BENCH_RUNTIMES) $(BENCH_ARGS)

bench-quick: deps build bench-build
	$(BENCH) --quick --strict --repo $(CURDIR) $(BENCH_RUNTIMES) $(BENCH_ARGS)

# text-order.txt: the functions berth's commands run, in the order they
# first run, for the linker (build.rs; bench/README.md). ~10 min.
text-order: deps build bench-build
	bench/text-order.sh $(RELEASE)/berth $(BENCH) text-order.txt
	$(MAKE) --no-print-directory build

bench-profile: deps build bench-build
	@missing=$$(for p in $(PROFILE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	PROFILE_DIR=$(CURDIR)/target/bench/profile $(BENCH) env --repo $(CURDIR) $(BENCH_RUNTIMES) -- bash bench/profile.sh $(CURDIR)/bench/PROFILE.md

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
	$(CARGO) clippy --release --manifest-path bench/Cargo.toml --target-dir target -- -D warnings -D clippy::undocumented_unsafe_blocks

fmt:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path bench/Cargo.toml -- --check

clean:
	$(CARGO) clean
