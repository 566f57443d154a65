#!/usr/bin/env bash
# Builds the VM guest kit: a Debian cloud kernel and a busybox-static initramfs whose /init loads
# virtio-net, takes an address by DHCP (IPv6 by SLAAC), runs the command boot.sh passed, powers off.
#
# Usage: build-initramfs.sh [-o DIR] [-f]
#   -o DIR  where vmlinuz and initramfs.cpio.gz go (default $GW_VM_KIT or /var/tmp/gateway-vm-kit)
#   -f      rebuild even when the kit is up to date
# Installs linux-image-cloud-amd64 and busybox-static with apt when they are missing (needs root).
set -euo pipefail

out=${GW_VM_KIT:-/var/tmp/gateway-vm-kit}
force=0
while getopts "o:fh" opt; do
    case $opt in
        o) out=$OPTARG ;;
        f) force=1 ;;
        *) sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//'; exit 64 ;;
    esac
done

need=()
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || need+=(busybox-static)
dpkg-query -W -f='${Status}' linux-image-cloud-amd64 2>/dev/null | grep -q "install ok installed" \
    || need+=(linux-image-cloud-amd64)
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "build-initramfs.sh: missing ${need[*]}: run as root, or apt-get install ${need[*]}" >&2
        exit 1
    fi
    echo "installing: ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The newest cloud kernel that has both its image and its modules on disk.
version=
for dir in $(find /lib/modules -mindepth 1 -maxdepth 1 -name '*-cloud-amd64' 2>/dev/null | sort -V -r); do
    v=${dir##*/}
    if [[ -r /boot/vmlinuz-$v ]]; then version=$v; break; fi
done
if [[ -z $version ]]; then
    echo "build-initramfs.sh: no cloud kernel found (/boot/vmlinuz-*-cloud-amd64 with /lib/modules): reinstall linux-image-cloud-amd64" >&2
    exit 1
fi
moddir=/lib/modules/$version
# busybox-static installs /bin/busybox; a dynamic one would not run in the initramfs.
busybox=/bin/busybox
if [[ ! -x $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
    echo "build-initramfs.sh: $busybox is missing or not static: install busybox-static" >&2
    exit 1
fi

stamp="$version $(sha256sum "$0" "$busybox" | cut -c1-16 | tr '\n' ' ')"
if ((!force)) && [[ -f $out/initramfs.cpio.gz && -f $out/vmlinuz && "$(cat "$out/stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "$out"
    exit 0
fi

# Module files with their dependencies, dependencies first (modules.dep lists each module's
# dependencies, nearest last). virtio_pci is the transport QEMU's virtio-net-pci device sits on;
# qemu_fw_cfg lets boot.sh hand over a command too long for the kernel command line.
declare -A seen=()
order=()
add_module() {
    local path=$1 line deps dep
    [[ -n ${seen[$path]:-} ]] && return
    seen[$path]=1
    line=$(grep -m1 "^${path}:" "$moddir/modules.dep") || { echo "build-initramfs.sh: $path not in $moddir/modules.dep" >&2; exit 1; }
    deps=${line#*:}
    local reversed=()
    for dep in $deps; do reversed=("$dep" "${reversed[@]}"); done
    for dep in "${reversed[@]}"; do add_module "$dep"; done
    order+=("$path")
}
for name in virtio_pci virtio_net qemu_fw_cfg; do
    path=$(grep -m1 -E "(^|/)${name}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | cut -d: -f1) || true
    if [[ -z $path ]]; then
        # Built into this kernel: nothing to load.
        grep -qE "(^|/)${name}\.ko" "$moddir/modules.builtin" && continue
        [[ $name == qemu_fw_cfg ]] && continue
        echo "build-initramfs.sh: module $name not found for $version" >&2
        exit 1
    fi
    add_module "$path"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,etc/udhcpc,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
if [[ $(id -u) -eq 0 ]]; then
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3
fi

: > "$root/etc/modules"
for path in "${order[@]}"; do
    base=${path##*/}
    case $base in
        *.ko.xz) xz -dc "$moddir/$path" > "$root/lib/modules/${base%.xz}"; base=${base%.xz} ;;
        *.ko.zst) zstd -qdc "$moddir/$path" > "$root/lib/modules/${base%.zst}"; base=${base%.zst} ;;
        *.ko.gz) gzip -dc "$moddir/$path" > "$root/lib/modules/${base%.gz}"; base=${base%.gz} ;;
        *) cp "$moddir/$path" "$root/lib/modules/$base" ;;
    esac
    echo "$base" >> "$root/etc/modules"
done

cat > "$root/etc/udhcpc/default.script" <<'SCRIPT'
#!/bin/sh
# udhcpc's hook: applies the lease (address, default route, resolvers) to the interface.
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
        : > /etc/resolv.conf
        [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        echo "gw-dhcp: $interface $ip/${mask:-24} router ${router:-none} dns ${dns:-none}"
        ;;
esac
exit 0
SCRIPT
chmod 755 "$root/etc/udhcpc/default.script"

cat > "$root/init" <<'INIT'
#!/bin/sh
# PID 1 of the guest: virtio-net up, DHCP and SLAAC, then the command boot.sh passed (QEMU fw_cfg
# opt/gateway/cmd, or gw.cmd=BASE64 on the kernel command line) or a shell on the console; powers
# the VM off when either ends.
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mkdir -p /root /dev/pts && mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1
for m in $(cat /etc/modules); do insmod "/lib/modules/$m" || echo "gw-init: insmod $m failed"; done
ip link set lo up
i=0
while ! ip link show eth0 >/dev/null 2>&1 && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
ip link set eth0 up
udhcpc -i eth0 -s /etc/udhcpc/default.script -O mtu -n -t 20 -T 1 -A 1 -x hostname:guest 2>/dev/null \
    || echo "gw-init: no DHCP lease on eth0"
# SLAAC runs in the kernel; give the router advertisement and duplicate address detection a moment.
i=0
while [ -z "$(ip -6 addr show dev eth0 scope global 2>/dev/null | grep -v tentative | grep inet6)" ] && [ $i -lt 30 ]; do
    usleep 100000; i=$((i + 1))
done
ip addr show dev eth0 | sed -n 's/^ *\(inet6\{0,1\} [^ ]*\).*/gw-addr: \1/p'
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/gateway/cmd/raw
encoded=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^gw\.cmd=//p')
if [ -r $fw ]; then
    cat $fw > /tmp/gw-cmd
elif [ -n "$encoded" ]; then
    echo "$encoded" | base64 -d > /tmp/gw-cmd
fi
if [ -s /tmp/gw-cmd ]; then
    sh /tmp/gw-cmd
    echo "gw-exit: $?"
else
    echo "gw-init: no gw.cmd: starting a shell (exit powers off)"
    setsid cttyhack sh -l
fi
sync
poweroff -f
INIT
chmod 755 "$root/init"

mkdir -p "$out"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
cp "/boot/vmlinuz-$version" "$out/vmlinuz"
echo "$stamp" > "$out/stamp"
echo "$out"
