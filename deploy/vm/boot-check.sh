#!/bin/bash
# Boots the image built by deploy/vm/build-image.sh under qemu and checks that the appliance is
# healthy from the host, then powers the VM off.
#
#   deploy/vm/boot-check.sh [OUTDIR]          (default OUTDIR: target/vm)
#
# Direct kernel boot (the image's vmlinuz and initrd, root=/dev/vda), console on the serial port
# (saved to OUTDIR/console.log), user-mode networking with 127.0.0.1:PORT on the host forwarded
# to 8080 in the VM. The disk is opened with -snapshot, so the image stays pristine. Polls
# http://127.0.0.1:PORT/healthz until it answers 200 or TIMEOUT_S passes, then sends an ACPI
# power-down through the qemu monitor and waits for the guest to stop.
#
# Environment: PORT (default 18080), TIMEOUT_S (default 900), ACCEL (default tcg: software
# emulation; kvm when /dev/kvm is usable), MEM_MB (default 1024), IMAGE (default
# OUTDIR/dialbridge.qcow2). Exit 0 when /healthz answered, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/vm}
port=${PORT:-18080}
timeout_s=${TIMEOUT_S:-900}
accel=${ACCEL:-tcg}
mem=${MEM_MB:-1024}
image=${IMAGE:-$out/dialbridge.qcow2}

command -v qemu-system-x86_64 >/dev/null || { echo "boot-check: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)" >&2; exit 1; }
command -v curl >/dev/null || { echo "boot-check: curl is missing (apt-get install curl)" >&2; exit 1; }
for f in "$image" "$out/vmlinuz" "$out/initrd.img"; do
    [ -f "$f" ] || { echo "boot-check: $f is missing; run deploy/vm/build-image.sh $out first" >&2; exit 1; }
done
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "boot-check: 127.0.0.1:$port is in use; set PORT" >&2
    exit 1
fi
format=qcow2
case "$image" in *.raw) format=raw ;; esac
# The monitor listens on a free loopback port next to the forwarded one.
mon=$((port + 1))

console="$out/console.log"
rm -f "$console"
started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started )); }

qemu-system-x86_64 \
    -machine q35 -accel "$accel" -cpu max -smp 2 -m "$mem" \
    -kernel "$out/vmlinuz" -initrd "$out/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 systemd.show_status=1 net.ifnames=1" \
    -drive "file=$image,if=virtio,format=$format" -snapshot \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device virtio-net-pci,netdev=n0 \
    -serial "file:$console" -display none -monitor "tcp:127.0.0.1:$mon,server,nowait" -no-reboot &
qemu=$!
trap 'kill $qemu 2>/dev/null || true' EXIT
echo "boot-check: qemu pid $qemu ($accel), console in $console, polling http://127.0.0.1:$port/healthz (up to ${timeout_s}s)"

healthy=0
body=""
while [ "$(elapsed)" -lt "$timeout_s" ]; do
    if ! kill -0 $qemu 2>/dev/null; then
        echo "boot-check: qemu exited after $(elapsed)s" >&2
        break
    fi
    if body=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz" 2>/dev/null); then
        healthy=1
        break
    fi
    sleep 3
done
boot_s=$(elapsed)

if [ $healthy = 1 ]; then
    echo "boot-check: /healthz answered after ${boot_s}s: $body"
    grep -m1 -E "Linux version" "$console" | cut -c1-100 || true
else
    echo "boot-check: no healthy answer within ${timeout_s}s; the console ends with:" >&2
    tail -n 40 "$console" >&2 || true
fi

# Power off: ACPI power button through the monitor, then wait; kill if the guest hangs.
printf 'system_powerdown\n' > "/dev/tcp/127.0.0.1/$mon" 2>/dev/null || true
for _ in $(seq 1 60); do
    kill -0 $qemu 2>/dev/null || break
    sleep 2
done
if kill -0 $qemu 2>/dev/null; then
    echo "boot-check: the guest did not power off within 120 s; stopping qemu" >&2
    kill $qemu
else
    echo "boot-check: powered off after $(elapsed)s in all"
fi
wait $qemu 2>/dev/null || true
trap - EXIT
[ $healthy = 1 ]
