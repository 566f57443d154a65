#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need; quiet when all are present.
set -euo pipefail

# qemu-system-x86 and linux-image-cloud-amd64: the VM guest kit (Sandboxes/vm) and its test.
# libseccomp-dev: the worker's system-call filter (Sources/Confinement).
# podman, runc, containernetworking-plugins: gatewayd-cni under a real runtime (PodmanCNITests) and
# the standard plugins it is measured beside (Tools/bench-cni.sh).
# etcd-server and etcd-client (etcd 3.4): the cluster view's tests and benchmark (docs/cluster.md).
packages=(libnl-3-dev libnl-route-3-dev iproute2 iperf3 busybox-static curl ethtool netcat-openbsd iputils-ping
          tcpdump python3 pkg-config qemu-system-x86 linux-image-cloud-amd64 cpio libseccomp-dev
          podman runc containernetworking-plugins etcd-server etcd-client)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift not found on PATH: install Swift 6.3 first" >&2; exit 1; }
