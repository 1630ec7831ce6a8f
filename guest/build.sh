#!/bin/bash
# Build (once) the guest's kernel and initramfs into CACHE (target/guest):
#   vmlinux            uncompressed kernel from Debian's linux-image-*-amd64
#   initramfs.cpio.gz  busybox-static + guest/init + the virtio/9p modules
#   pkg/lib/modules    every module of the kernel package, with depmod's
#                      indexes, shared with the guest so the kernel can
#                      autoload what CRIU and nftables ask for
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$1
mkdir -p "$cache"
cd "$cache"

if [ ! -f vmlinux ] || [ ! -d pkg/lib/modules ]; then
	resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}' || true; }
	pkgname=$(resolve)
	if [ -z "$pkgname" ]; then
		apt-get update -qq >&2
		pkgname=$(resolve)
	fi
	[ -n "$pkgname" ] || { echo "guest: cannot resolve the linux-image-amd64 package" >&2; exit 1; }
	if ! ls "${pkgname}"_*.deb >/dev/null 2>&1; then
		echo "guest: downloading $pkgname" >&2
		apt-get download "$pkgname" >&2
	fi
	rm -rf pkg && dpkg -x "$(ls "${pkgname}"_*.deb | head -1)" pkg
	vmlinuz=$(ls pkg/boot/vmlinuz-* | head -1)
	# bzImage = setup code + compressed payload; find the xz stream.
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
	[ -n "$off" ] || { echo "no xz payload in $vmlinuz" >&2; exit 1; }
	tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream > vmlinux.tmp 2>/dev/null || true
	head -c 4 vmlinux.tmp | grep -q 'ELF' || { echo "extracting vmlinux from $vmlinuz failed" >&2; exit 1; }
	mv vmlinux.tmp vmlinux
	rm -f initramfs.cpio.gz
fi

kver=$(ls pkg/lib/modules | head -1)
if [ ! -f "pkg/lib/modules/$kver/modules.dep" ]; then
	depmod=$(PATH=/usr/sbin:/sbin:$PATH command -v depmod || true)
	[ -n "$depmod" ] || { echo "guest: depmod missing (make deps installs kmod)" >&2; exit 1; }
	"$depmod" -b pkg "$kver"
fi

if [ ! -f initramfs.cpio.gz ] || [ "$here/init" -nt initramfs.cpio.gz ]; then
	bb=/bin/busybox
	file -L "$bb" 2>/dev/null | grep -q 'statically linked' || bb=$(command -v busybox)
	rm -rf initramfs && mkdir -p initramfs/{bin,proc,sys,dev,modules,host,tmp}
	cp "$bb" initramfs/bin/busybox
	cp "$here/init" initramfs/init
	kver=$(ls pkg/lib/modules | head -1)
	for m in virtio_ring virtio virtio_mmio netfs fscache 9pnet 9pnet_virtio 9p loop overlay; do
		f=$(find "pkg/lib/modules/$kver" -name "$m.ko*" | head -1)
		[ -n "$f" ] || { echo "module $m not in the kernel package" >&2; exit 1; }
		case $f in
		*.xz) xz -dc "$f" > "initramfs/modules/$m.ko" ;;
		*.zst) zstd -qdc "$f" > "initramfs/modules/$m.ko" ;;
		*) cp "$f" "initramfs/modules/$m.ko" ;;
		esac
	done
	(cd initramfs && find . | cpio -o -H newc --quiet | gzip -1) > initramfs.cpio.gz
fi
