#!/bin/bash
# Boot the cgroup v2 test guest and run a command in it (its root the host's
# / shared read-only over 9p). Exit status is the command's.
#
#   guest/run.sh 'cd /work/x && target/.../cgroups_v2-abc --test-threads=1'
#   guest/run.sh --systemd CMD      systemd as PID 1 (cgroup v2), CMD a unit
#   guest/run.sh --systemd-v1 CMD   the same with systemd.unified_cgroup_hierarchy=0
#   guest/run.sh --cgroup-v1 CMD    cgroup v1 hierarchies (hybrid) instead of cgroup2
#
# Needs qemu-system-x86 (TCG; KVM is not relied upon), the Debian 6.1 kernel
# package (fetched with `apt-get download`, unpacked with dpkg -x, never
# installed) and busybox-static. Everything is cached under target/guest/.
# Exits 77 with "SKIP: ..." only when qemu cannot run at all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${BERTH_GUEST_CACHE:-$root/target/guest}
timeout_s=${BERTH_GUEST_TIMEOUT:-600}
extra=""
case ${1:-} in
--systemd) extra="berth.mode=systemd systemd.unit=berth-test.target"; shift ;;
--systemd-v1) extra="berth.mode=systemd systemd.unit=berth-test.target systemd.unified_cgroup_hierarchy=0"; shift ;;
--cgroup-v1) extra="berth.cgroups=v1"; shift ;;
esac
[ $# -ge 1 ] || { echo "usage: $0 [--systemd|--systemd-v1|--cgroup-v1] COMMAND" >&2; exit 2; }
cmd=$1

qemu=$(command -v qemu-system-x86_64 || true)
if [ -z "$qemu" ]; then
	echo "SKIP: qemu-system-x86_64 not installed (make deps installs qemu-system-x86)"
	exit 77
fi
if ! "$qemu" -machine help 2>/dev/null | grep -q '^microvm'; then
	echo "SKIP: $qemu has no microvm machine"
	exit 77
fi

"$here/build.sh" "$cache" >&2

mhz=$(awk -F: '/^cpu MHz/{printf "%d", $2; exit}' /proc/cpuinfo)
khz=$(( ${mhz:-2000} * 1000 ))
b64=$(printf '%s' "$cmd" | base64 -w0)
# The repository is shared on its own too: the guest's /tmp is a fresh
# tmpfs, which would hide a checkout (and its test binaries) under /tmp.
repo64=$(printf '%s' "$root" | base64 -w0)
log=$cache/console.log
set +e
timeout --foreground "$timeout_s" "$qemu" \
	-machine microvm,accel=tcg,rtc=on \
	-cpu max -smp 2 -m 1024 \
	-nodefaults -no-user-config -nographic -no-reboot \
	-serial stdio \
	-kernel "$cache/vmlinux" -initrd "$cache/initramfs.cpio.gz" \
	-append "console=ttyS0 earlyprintk=ttyS0 quiet loglevel=3 panic=-1 tsc_early_khz=$khz rdinit=/init berth.cmd=$b64 berth.repo=$repo64 $extra" \
	-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
	-device virtio-9p-device,fsdev=hostroot,mount_tag=hostroot \
	-fsdev "local,id=repo,path=$root,security_model=none,readonly=on,multidevs=remap" \
	-device virtio-9p-device,fsdev=repo,mount_tag=repo \
	-fsdev "local,id=modules,path=$(echo "$cache"/pkg/lib/modules/*),security_model=none,readonly=on,multidevs=remap" \
	-device virtio-9p-device,fsdev=modules,mount_tag=modules \
	</dev/null 2>&1 | tee "$log"
qrc=${PIPESTATUS[0]}
set -e
code=$(sed -n 's/.*BERTH-GUEST-EXIT=\([0-9]*\).*/\1/p' "$log" | tail -1)
if [ -z "$code" ]; then
	echo "guest did not report an exit status (qemu status $qrc; console in $log)" >&2
	exit 1
fi
exit "$code"
