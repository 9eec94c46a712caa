#!/bin/sh
# Builds a bootable Dialbridge appliance disk image without loop mounts (and so without any
# privilege beyond what debootstrap needs: run as root).
#
#   deploy/vm/build-image.sh [OUTDIR]          (default OUTDIR: target/vm)
#
# Steps: debootstrap Debian bookworm (minbase + linux-image-amd64 + systemd), install the release
# `dialbridge` binary, deploy/dialbridge.service and deploy/dialbridge.toml, add the `dialbridge`
# system user, add the VM's overrides (console on 0.0.0.0:8080, DHCP on the first NIC, serial
# console; dbus so that logind handles the ACPI power button), then `mke2fs -d ROOTDIR` writes
# the tree into an ext4 image and `qemu-img convert` makes a compressed qcow2 of it. The kernel
# and initrd are copied next to the image: the image holds a root file system, not a boot
# loader, and is booted with qemu's direct kernel boot (deploy/vm/boot-check.sh).
#
# Outputs in OUTDIR: dialbridge.raw, dialbridge.qcow2, vmlinuz, initrd.img.
# Environment: MIRROR (Debian mirror), IMAGE_SIZE (default 2G), DIALBRIDGE_BIN (a prebuilt binary;
# default: cargo build --release of the working tree), DIALBRIDGE_REV (build that committed
# revision instead, e.g. HEAD, from `git archive`), KEEP_ROOTDIR=1 keeps the unpacked tree.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/vm}
mirror=${MIRROR:-http://deb.debian.org/debian}
size=${IMAGE_SIZE:-2G}

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-image: $1 is missing (apt-get install $2)" >&2; exit 1; }; }
[ "$(id -u)" = 0 ] || { echo "build-image: run as root (debootstrap needs it)" >&2; exit 1; }
need debootstrap debootstrap
need mke2fs e2fsprogs
need qemu-img qemu-utils

mkdir -p "$out"
out=$(cd "$out" && pwd)
root="$out/rootdir"
started=$(date +%s)
step() { echo "build-image: [$(( $(date +%s) - started ))s] $*"; }

# 1. The root file system.
rm -rf "$root"
step "debootstrap bookworm into $root"
# espeak-ng and sox: spoken prompts and the demo carrier's voices (without them, tones).
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,udev,linux-image-amd64,initramfs-tools,iproute2,ca-certificates,curl,espeak-ng,sox \
    bookworm "$root" "$mirror"

# 2. The binary (built after debootstrap, which needs no build).
if [ -n "${DIALBRIDGE_BIN:-}" ]; then
    bin=$DIALBRIDGE_BIN
elif [ -n "${DIALBRIDGE_REV:-}" ]; then
    # A committed revision, exported with git archive: a half-edited working tree stays out.
    step "cargo build --release of $DIALBRIDGE_REV"
    rm -rf "$out/src" && mkdir -p "$out/src"
    git -C "$repo" archive "$DIALBRIDGE_REV" | tar -x -C "$out/src"
    (cd "$out/src" && cargo build --release -p dialbridge)
    bin="${CARGO_TARGET_DIR:-$out/src/target}/release/dialbridge"
else
    step "cargo build --release"
    (cd "$repo" && cargo build --release -p dialbridge)
    bin="${CARGO_TARGET_DIR:-$repo/target}/release/dialbridge"
fi
[ -x "$bin" ] || { echo "build-image: no binary at $bin" >&2; exit 1; }

# 3. Dialbridge: binary, unit, configuration, user.
step "installing dialbridge"
install -m 0755 "$bin" "$root/usr/local/bin/dialbridge"
install -D -m 0644 "$repo/deploy/dialbridge.toml" "$root/etc/dialbridge/dialbridge.toml"
install -m 0644 "$repo/deploy/dialbridge.service" "$root/etc/systemd/system/dialbridge.service"
install -D -m 0644 "$repo/README.md" "$root/usr/share/doc/dialbridge/README.md"
# The VM's override: the console must answer on the NIC (qemu forwards host port -> 8080), and
# SIP on all interfaces. An environment drop-in leaves the shipped config file untouched.
install -d "$root/etc/systemd/system/dialbridge.service.d"
cat > "$root/etc/systemd/system/dialbridge.service.d/vm.conf" <<'CONF'
# Written by deploy/vm/build-image.sh: listen on the VM's NIC.
[Service]
Environment=DIALBRIDGE_HTTP_LISTEN=0.0.0.0:8080
Environment=DIALBRIDGE_SIP_UDP_LISTEN=0.0.0.0:5060
Environment=DIALBRIDGE_SIP_TCP_LISTEN=0.0.0.0:5060
CONF
chroot "$root" useradd --system --home-dir /var/lib/dialbridge --no-create-home --shell /usr/sbin/nologin dialbridge
chroot "$root" systemctl enable dialbridge.service systemd-networkd.service >/dev/null 2>&1 \
    || { echo "build-image: systemctl enable failed" >&2; exit 1; }

# 4. The system: hostname, root file system, network (qemu user networking hands out DHCP),
# serial console, no root password (console login disabled; use the service's journal).
step "configuring the system"
echo dialbridge > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdialbridge\n' > "$root/etc/hosts"
printf '/dev/vda\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' > "$root/etc/fstab"
cat > "$root/etc/systemd/network/20-wired.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
NET
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
chroot "$root" systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1 || true
chroot "$root" passwd -l root >/dev/null
# Smaller image: no package caches or lists.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log

cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"

# 5. The disk image: ext4 populated from the tree (no loop mount), then qcow2.
step "mke2fs -d ($size)"
rm -f "$out/dialbridge.raw" "$out/dialbridge.qcow2"
mke2fs -q -t ext4 -L dialbridge-root -d "$root" "$out/dialbridge.raw" "$size"
step "qemu-img convert to qcow2"
qemu-img convert -f raw -O qcow2 -c "$out/dialbridge.raw" "$out/dialbridge.qcow2"
[ "${KEEP_ROOTDIR:-0}" = 1 ] || rm -rf "$root"

step "done"
ls -lh "$out/dialbridge.raw" "$out/dialbridge.qcow2" "$out/vmlinuz" "$out/initrd.img"
echo "build-image: boot it with deploy/vm/boot-check.sh $out"
