#!/usr/bin/env bash
# Builds gatewayd_VERSION_amd64.deb: gatewayd, gatewayctl (and gatewayd-cni when the package has
# that product), the systemd unit, the default config, shell completions and man pages.
#
#   Tools/build-deb.sh                       # release build with the Swift runtime linked in
#   Tools/build-deb.sh --debug --skip-build  # the debug build as it is (tests: Tools/test-deb.sh)
#   Tools/build-deb.sh --output DIR --version 1.2.3
#
# The version is the VERSION file's, with ~gitN.gHASH after it unless HEAD is tagged vVERSION.
# The last line printed is the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

configuration=release
build=1
output=$root/.build/deb
version=
while (($#)); do
    case $1 in
        --debug) configuration=debug ;;
        --skip-build) build=0 ;;
        --output) output=$2; shift ;;
        --version) version=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

for tool in dpkg-deb dpkg-shlibdeps fakeroot gzip; do
    command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool not found (apt-get install dpkg-dev fakeroot)" >&2; exit 1; }
done

if [[ -z $version ]]; then
    version=$(tr -d ' \n' < VERSION)
    if git rev-parse --git-dir >/dev/null 2>&1 && [[ $(git tag --points-at HEAD) != *"v$version"* ]]; then
        # Sorts before VERSION itself (~), and later commits after earlier ones.
        version="$version~git$(git rev-list --count HEAD).g$(git rev-parse --short=10 HEAD)"
    fi
fi
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "build-deb.sh: '$version' is not a Debian version" >&2; exit 1; }

# gatewayd-cni is packaged once the package defines it.
products=(gatewayd gatewayctl)
if swift package dump-package 2>/dev/null | python3 -c '
import json, sys
sys.exit(0 if any(p["name"] == "gatewayd-cni" for p in json.load(sys.stdin)["products"]) else 1)'; then
    products+=(gatewayd-cni)
fi

flags=(-c "$configuration")
# A release package carries the Swift runtime inside its executables: no toolchain on the target.
[[ $configuration == release ]] && flags+=(--static-swift-stdlib)
if ((build)); then
    for product in "${products[@]}"; do
        swift build "${flags[@]}" --product "$product" >&2
    done
fi
bin=$(swift build "${flags[@]}" --show-bin-path)
# The generator swift-argument-parser's generate-manual plugin runs, run here on the very
# executables packaged and with a section each (the plugin gives every page the same one).
manual=$(swift build --show-bin-path)/generate-manual
if ((build)) || [[ ! -x $manual ]]; then
    swift build --product generate-manual >&2
fi
for product in "${products[@]}"; do
    [[ -x $bin/$product ]] || { echo "build-deb.sh: $bin/$product is missing: build it first (or drop --skip-build)" >&2; exit 1; }
done
[[ -x $manual ]] || { echo "build-deb.sh: $manual is missing: swift build --product generate-manual" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/gatewayd
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/gatewayd" \
    "$pkg/usr/share/doc/gatewayd" "$pkg/usr/share/man/man1" "$pkg/usr/share/man/man8" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d"

install -m 0755 "$bin/gatewayd" "$bin/gatewayctl" "$pkg/usr/bin/"
if [[ " ${products[*]} " == *" gatewayd-cni "* ]]; then
    # Where CNI runtimes look for plugins (containernetworking-plugins puts its own there too).
    install -d "$pkg/usr/lib/cni"
    install -m 0755 "$bin/gatewayd-cni" "$pkg/usr/lib/cni/gatewayd-cni"
fi
executables=("$pkg"/usr/bin/*)
[[ -d $pkg/usr/lib/cni ]] && executables+=("$pkg"/usr/lib/cni/*)
[[ $configuration == release ]] && strip --strip-unneeded "${executables[@]}"
install -m 0644 Tools/packaging/gatewayd.service "$pkg/lib/systemd/system/gatewayd.service"
install -m 0644 Tools/packaging/gatewayd.toml "$pkg/etc/gatewayd/gatewayd.toml"

for shell in bash zsh fish; do
    case $shell in
        bash) dir=usr/share/bash-completion/completions; name=%s ;;
        zsh) dir=usr/share/zsh/vendor-completions; name=_%s ;;
        fish) dir=usr/share/fish/vendor_completions.d; name=%s.fish ;;
    esac
    for command in gatewayctl gatewayd; do
        # shellcheck disable=SC2059
        file=$pkg/$dir/$(printf "$name" "$command")
        # bash-completion sources the file: a #! line would only mislead.
        "$bin/$command" --generate-completion-script "$shell" | sed '1{/^#!/d}' > "$file"
    done
done
chmod 0644 "$pkg"/usr/share/*/*completion*/* "$pkg"/usr/share/zsh/vendor-completions/*

date=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
pages=$stage/man
mkdir -p "$pages/1" "$pages/8"
"$manual" "$bin/gatewayctl" --section 1 --date "$date" --authors "the gatewayd authors" --output-directory "$pages/1" >&2
"$manual" "$bin/gatewayd" --section 8 --date "$date" --authors "the gatewayd authors" --output-directory "$pages/8" >&2
for page in "$pages"/1/*.1; do gzip -9n < "$page" > "$pkg/usr/share/man/man1/$(basename "$page").gz"; done
for page in "$pages"/8/*.8; do gzip -9n < "$page" > "$pkg/usr/share/man/man8/$(basename "$page").gz"; done

gzip -9n < README.md > "$pkg/usr/share/doc/gatewayd/README.md.gz"
gzip -9n < docs/control-api.md > "$pkg/usr/share/doc/gatewayd/control-api.md.gz"
# Who built it, as Debian's tools take it: DEBFULLNAME and DEBEMAIL, else git's user.
maintainer="${DEBFULLNAME:-$(git config user.name 2>/dev/null || echo gatewayd)} <${DEBEMAIL:-$(git config user.email 2>/dev/null || echo root@localhost)}>"
when=$(git log -1 --format=%ct 2>/dev/null || date +%s)
cat > "$pkg/usr/share/doc/gatewayd/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: gatewayd

Files: *
Copyright: $(date -u -d "@$when" +%Y) the gatewayd authors
License: other
 See the source repository this package was built from.
EOF
# A native package (no Debian revision): changelog.gz, not changelog.Debian.gz.
cat <<EOF | gzip -9n > "$pkg/usr/share/doc/gatewayd/changelog.gz"
gatewayd ($version) unstable; urgency=medium

  * Built by Tools/build-deb.sh from $(git rev-parse --short HEAD 2>/dev/null || echo "a source tree").

 -- $maintainer  $(date -u -R -d "@$when")
EOF

install -m 0755 Tools/packaging/debian/postinst Tools/packaging/debian/prerm Tools/packaging/debian/postrm "$pkg/DEBIAN/"
install -m 0644 Tools/packaging/debian/conffiles "$pkg/DEBIAN/conffiles"

# Runtime libraries, as dpkg-shlibdeps finds them from the executables' NEEDED entries. A debug
# build's Swift runtime belongs to no package (it is the toolchain's): it runs where that is.
mkdir -p "$stage/debian"
printf 'Source: gatewayd\n\nPackage: gatewayd\nArchitecture: any\n' > "$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O --ignore-missing-info --warnings=0 "${executables[@]#"$stage"/}" 2>/dev/null \
    | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
note=
if [[ $configuration == debug ]]; then
    note=$'\n .\n A debug build: it needs the Swift toolchain it was built with, where it\n was.'
fi
cat > "$pkg/DEBIAN/control" <<EOF
Package: gatewayd
Version: $version
Architecture: $(dpkg --print-architecture)
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser, $depends
Section: net
Priority: optional
Description: network gateway for many sandboxes, in one process
 gatewayd gives network namespaces and VMs an Ethernet link each (a TAP
 device) behind which a userspace TCP/IP stack carries their TCP and UDP
 over host sockets under an egress policy, answers DNS, DHCP and ping, and
 publishes host ports into them. gatewayctl drives it over a Unix socket.
 A privileged supervisor does only what needs root; a confined worker does
 the rest.$note
EOF

mkdir -p "$output"
deb=$output/gatewayd_${version}_$(dpkg --print-architecture).deb
# A debug package is a test's, made and thrown away at once: fast compression over small.
compression=(-Zxz)
[[ $configuration == debug ]] && compression=(-Zgzip -z1)
fakeroot dpkg-deb "${compression[@]}" --build "$pkg" "$deb" >&2
echo "$deb"
