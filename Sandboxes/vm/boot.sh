#!/usr/bin/env bash
# Boots the VM guest kit with QEMU on a TAP that gatewayd made (gatewayctl attach ID --vm): virtio-net
# with the MAC gatewayd printed, the serial console on stdout, and an exit when the guest powers off.
#
# Usage: boot.sh TAP MAC [CMD]
#   TAP  the VM TAP gatewayd created (gwv-N)
#   MAC  the MAC gatewayd expects from the guest (anything else is dropped as spoofed)
#   CMD  a shell command run in the guest after DHCP; without it, a shell on the console
# With CMD, boot.sh exits with CMD's status (the guest prints "gw-exit: N" before powering off).
# Environment: GW_VM_KIT (kit directory, built on first use), GW_VM_MEMORY (MiB, default 256),
#   GW_VM_TIMEOUT (seconds before the VM is killed, default 300), GW_VM_ACCEL (kvm, tcg or auto).
set -euo pipefail

if (($# < 2)); then
    sed -n '4,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
fi
tap=$1
mac=$2
cmd=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
kit=${GW_VM_KIT:-/var/tmp/gateway-vm-kit}

if ! command -v qemu-system-x86_64 >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "boot.sh: qemu-system-x86_64 is missing: apt-get install qemu-system-x86" >&2
        exit 1
    fi
    echo "installing: qemu-system-x86" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi
GW_VM_KIT=$kit "$here/build-initramfs.sh" -o "$kit" >/dev/null

if [[ ! -d /sys/class/net/$tap ]]; then
    echo "boot.sh: no device $tap: attach the sandbox first (gatewayctl attach ID --vm)" >&2
    exit 1
fi

accel=${GW_VM_ACCEL:-auto}
if [[ $accel == auto ]]; then
    # KVM needs a usable /dev/kvm and a CPU that shows its virtualisation extensions: nested KVM
    # without them (a VM whose hypervisor hides vmx/svm) hangs the guest's early boot.
    if [[ -r /dev/kvm && -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
fi
cpu=max
[[ $accel == kvm ]] && cpu=host
append="console=ttyS0 panic=1 quiet loglevel=3"
# A short command rides on the kernel command line (2048 bytes in all on x86); a longer one goes
# through QEMU's firmware configuration device.
fw_cfg=()
cmd_file=
if [[ -n $cmd ]]; then
    encoded=$(printf '%s\n' "$cmd" | base64 -w0)
    if ((${#encoded} <= 1024)); then
        append+=" gw.cmd=$encoded"
    else
        cmd_file=$(mktemp)
        printf '%s\n' "$cmd" > "$cmd_file"
        fw_cfg=(-fw_cfg "name=opt/gateway/cmd,file=$cmd_file")
    fi
fi

# shellcheck disable=SC2054  # the commas are QEMU's option syntax
qemu=(qemu-system-x86_64
    -accel "$accel" -cpu "$cpu" -m "${GW_VM_MEMORY:-256}" -smp 1
    -nodefaults -no-user-config -nographic -serial stdio -monitor none -no-reboot
    # SeaBIOS would otherwise reset and clear the terminal on the serial console.
    -fw_cfg name=etc/sercon-port,string=0
    -kernel "$kit/vmlinuz" -initrd "$kit/initramfs.cpio.gz" -append "$append"
    -netdev "tap,id=net0,ifname=$tap,script=no,downscript=no,vnet_hdr=on"
    -device "virtio-net-pci,netdev=net0,mac=$mac,romfile="
    "${fw_cfg[@]}")

# QEMU warns about the SeaBIOS setting's name; nothing else of its stderr is hidden.
quiet_stderr() { grep -v --line-buffered 'fw_cfg item names should be prefixed' >&2 || true; }
if [[ -z $cmd ]]; then
    exec "${qemu[@]}" 2> >(quiet_stderr)
fi
# The guest's console goes to stdout line by line as it comes (sed -u: no block buffering in the
# pipe); its last "gw-exit: N" becomes our status. QEMU runs in the background so that a TERM to
# this script (bash defers traps while a foreground job runs) can reach it.
work=$(mktemp -d)
trap 'rm -rf "$work" $cmd_file' EXIT
log=$work/console
( timeout --kill-after=5 "${GW_VM_TIMEOUT:-300}" "${qemu[@]}" -pidfile "$work/qemu.pid" </dev/null \
    2> >(quiet_stderr) | sed -u 's/\r$//' | tee "$log" ) &
runner=$!
trap 'kill -TERM "$(cat "$work/qemu.pid" 2>/dev/null)" 2>/dev/null; wait "$runner"; exit 143' TERM INT HUP
status=0
wait "$runner" || status=$?
if ((status)); then
    echo "boot.sh: qemu exited with status $status" >&2
    exit "$status"
fi
exit_line=$(grep -a '^gw-exit: ' "$log" | tail -n1 || true)
if [[ -z $exit_line ]]; then
    echo "boot.sh: the guest powered off without reporting its command's status" >&2
    exit 1
fi
exit "${exit_line#gw-exit: }"
