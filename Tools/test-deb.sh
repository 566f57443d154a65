#!/usr/bin/env bash
# The .deb as an operator gets it: install it, check its files, user and conffile, start gatewayd
# by the unit's own command line (its capability set and open files limit; no systemd here), see
# READY=1, attach a namespace sandbox with the installed gatewayctl, stop it, purge, and find
# nothing left. Root; run by Tools/run-tests.sh after the debug build (it packages that build).
#
#   Tools/test-deb.sh            # package .build/debug (Tools/build-deb.sh --debug --skip-build)
#   Tools/test-deb.sh FILE.deb   # a package built before, e.g. a release one
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "test-deb.sh: needs root (dpkg, namespaces, devices)" >&2; exit 1; }
start=$(date +%s)
# One run at a time on a machine: the package and its user are the machine's.
# (What it starts closes the lock: a gatewayd left by a killed run must not keep it.)
exec 9>/run/lock/gatewayd-test-deb.lock
flock 9

tag=d$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
work=$(mktemp -d /tmp/gw-deb-XXXXXX)
# The worker runs as gatewayd and must reach its state directory inside.
chmod 0755 "$work"
ns=gwtest-deb-$tag
ns2=gwtest-deb2-$tag
holder=
unit=/lib/systemd/system/gatewayd.service
pid=
listener=

fail() {
    echo "test-deb.sh: FAIL: $*" >&2
    if [[ -s $work/gatewayd.log ]]; then
        echo "--- gatewayd's log:" >&2
        tail -n 40 "$work/gatewayd.log" >&2
    fi
    exit 1
}

installed() { [[ $(dpkg-query -W -f='${Status}' gatewayd 2>/dev/null) == "install ok installed" ]]; }

cleanup() {
    set +e
    # The worker dies with its supervisor (SIGKILL on the parent's death).
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    [[ -n $listener ]] && kill "$listener" 2>/dev/null
    [[ -n $holder ]] && kill "$holder" 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
    ip netns delete "$ns2" 2>/dev/null
    if dpkg-query -W gatewayd >/dev/null 2>&1; then dpkg --purge gatewayd >/dev/null 2>&1; fi
    ip -o link show 2>/dev/null | awk -F': ' -v t="-$tag-" 'index($2, t) {split($2, n, "@"); print n[1]}' \
        | xargs -r -n1 ip link delete 2>/dev/null
    rm -rf "$work"
    true
}
trap cleanup EXIT

if (($#)); then
    deb=$1
else
    deb=$(Tools/build-deb.sh --debug --skip-build --output "$work" | tail -n 1)
fi
[[ -f $deb ]] || fail "no package at '$deb'"

# A package left by a run that was killed is purged first; a user left without it is taken over
# by the install and removed by the purge.
if dpkg-query -W gatewayd >/dev/null 2>&1; then
    echo "test-deb.sh: purging the gatewayd package an earlier run left" >&2
    dpkg --purge gatewayd >/dev/null
fi
if getent passwd gatewayd >/dev/null; then
    echo "test-deb.sh: a gatewayd user exists already: the install keeps it, the purge removes it" >&2
fi

dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i $deb"; }
installed || fail "dpkg says gatewayd is not installed"
dpkg -L gatewayd > "$work/files"

# The files, each where the operator looks for it.
expected=(/usr/bin/gatewayd /usr/bin/gatewayctl "$unit" /etc/gatewayd/gatewayd.toml
    /usr/share/man/man1/gatewayctl.1.gz /usr/share/man/man8/gatewayd.8.gz
    /usr/share/bash-completion/completions/gatewayctl /usr/share/zsh/vendor-completions/_gatewayctl
    /usr/share/fish/vendor_completions.d/gatewayctl.fish /usr/share/doc/gatewayd/copyright)
# gatewayd-cni goes in once the package builds it.
# (grep reads all its input in pipes here: with -q it may stop early, and pipefail count that.)
if dpkg-deb -c "$deb" | grep '/usr/lib/cni/gatewayd-cni$' >/dev/null || [[ -x .build/debug/gatewayd-cni && $# -eq 0 ]]; then
    expected+=(/usr/lib/cni/gatewayd-cni)
fi
for f in "${expected[@]}"; do
    [[ -e $f ]] || fail "$f is not installed"
    grep -qx "$f" "$work/files" || fail "$f is not the package's (dpkg -L)"
done
dpkg-query -W -f='${Conffiles}\n' gatewayd | grep '^ /etc/gatewayd/gatewayd.toml ' >/dev/null \
    || fail "/etc/gatewayd/gatewayd.toml is not a conffile"
/usr/bin/gatewayctl --help | grep attach >/dev/null || fail "the installed gatewayctl does not run"
man -P cat gatewayctl 2>/dev/null | grep attach >/dev/null || fail "man gatewayctl shows no attach"
man -P cat 8 gatewayd 2>/dev/null | grep -- --config >/dev/null || fail "man 8 gatewayd shows no --config"
bash -c 'source /usr/share/bash-completion/completions/gatewayctl && complete -p gatewayctl' >/dev/null \
    || fail "the bash completion defines nothing for gatewayctl"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 || { cat "$work/verify.log" >&2; fail "systemd-analyze verify $unit"; }
fi

# The worker's system user and group, and the state directory it owns.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd gatewayd) || fail "no gatewayd user"
((uid < 1000)) || fail "gatewayd is not a system user (uid $uid)"
[[ $(getent group gatewayd | cut -d: -f3) == "$gid" ]] || fail "gatewayd's primary group is not gatewayd"
[[ $home == /var/lib/gatewayd ]] || fail "gatewayd's home is $home"
[[ $shell == */nologin || $shell == /bin/false ]] || fail "gatewayd's shell is $shell"
[[ $(stat -c %U /var/lib/gatewayd) == gatewayd ]] || fail "/var/lib/gatewayd is not gatewayd's"

# gatewayd by the unit's command line, under what systemd would give it: the bounding set of
# CapabilityBoundingSet (nothing inheritable), no_new_privs and LimitNOFILE. The socket, state
# directory and device tag are the test's own, so it cannot meet a gatewayd already running.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ $exec_start == /usr/bin/gatewayd\ * ]] || fail "ExecStart is '$exec_start'"
nofile=$(sed -n 's/^LimitNOFILE=//p' "$unit")
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
[[ -n $nofile && -n $caps ]] || fail "the unit sets no LimitNOFILE or CapabilityBoundingSet"
# Raising a hard limit takes CAP_SYS_RESOURCE, which a container may not have: then its own.
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < nofile)); then
    echo "test-deb.sh: open files limit $hard here, not the unit's $nofile (no CAP_SYS_RESOURCE to raise it)" >&2
    nofile=$hard
fi
python3 - "$work/notify.sock" "$work/notify.log" >/dev/null 2>&1 9>&- <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    message = s.recv(4096)
    with open(sys.argv[2], "ab") as log:
        log.write(message + b"\n\n")
PY
listener=$!
for _ in $(seq 50); do [[ -S $work/notify.sock ]] && break; sleep 0.1; done
# shellcheck disable=SC2086
NOTIFY_SOCKET=$work/notify.sock prlimit --nofile="$nofile:$nofile" \
    setpriv --bounding-set="-all,$caps" --inh-caps=-all --no-new-privs \
    $exec_start --control "$work/control.sock" --state-dir "$work/state" --host-device-tag "$tag" \
    >"$work/gatewayd.log" 2>&1 9>&- &
pid=$!
for _ in $(seq 300); do
    grep -q '^READY=1$' "$work/notify.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || fail "gatewayd exited before READY=1"
    sleep 0.1
done
grep -q '^READY=1$' "$work/notify.log" 2>/dev/null || fail "no READY=1 within 30 s"
grep -q "^MAINPID=$pid$" "$work/notify.log" || fail "READY=1 does not name the process started ($pid)"
[[ $(ps -o user= --ppid "$pid" | tr -d " ") == gatewayd ]] || fail "the worker does not run as gatewayd"

ctl=(/usr/bin/gatewayctl --control "$work/control.sock")
ip netns add "$ns"
"${ctl[@]}" attach "deb-$tag" --netns "$ns" >"$work/attach.log" 2>&1 || { cat "$work/attach.log" >&2; fail "attach"; }
"${ctl[@]}" list | grep "deb-$tag" >/dev/null || fail "the sandbox is not listed"
gateway=$(ip -n "$ns" -4 route show default | awk '{print $3}')
[[ -n $gateway ]] || fail "the sandbox has no default route"
ip netns exec "$ns" ping -c 1 -W 5 "$gateway" >/dev/null || fail "the gateway $gateway does not answer a ping"

# A namespace named by /proc/PID/ns/net of another user's process, as a rootless container's
# is: the supervisor opens it, which takes CAP_SYS_PTRACE.
ip netns add "$ns2"
ip netns exec "$ns2" setpriv --reuid=65534 --regid=65534 --clear-groups sleep 300 >/dev/null 2>&1 9>&- &
holder=$!
for _ in $(seq 50); do [[ $(stat -c %u "/proc/$holder" 2>/dev/null) == 65534 ]] && break; sleep 0.1; done
"${ctl[@]}" attach "deb2-$tag" --netns "/proc/$holder/ns/net" >"$work/attach.log" 2>&1 \
    || { cat "$work/attach.log" >&2; fail "attach by /proc/$holder/ns/net"; }
gateway=$(ip -n "$ns2" -4 route show default | awk '{print $3}')
ip netns exec "$ns2" ping -c 1 -W 5 "$gateway" >/dev/null || fail "the second sandbox's gateway does not answer"

kill -TERM "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "gatewayd still runs 30 s after SIGTERM (the unit's TimeoutStopSec)"
status=0
wait "$pid" || status=$?
pid=
((status == 0)) || fail "gatewayd exited with $status after SIGTERM"
grep -q '^STOPPING=1$' "$work/notify.log" || fail "no STOPPING=1 after SIGTERM"
for n in "$ns" "$ns2"; do
    [[ -z $(ip -n "$n" -o link show | grep -v ': lo:') ]] || fail "a device is left in namespace $n"
done

dpkg --purge gatewayd >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge"; }
! dpkg-query -W gatewayd >/dev/null 2>&1 || fail "dpkg still knows gatewayd after the purge"
while read -r f; do
    [[ -d $f ]] && continue
    [[ ! -e $f ]] || fail "$f is left after the purge"
done < "$work/files"
for d in /etc/gatewayd /var/lib/gatewayd /var/log/gatewayd /usr/share/doc/gatewayd; do
    [[ ! -e $d ]] || fail "$d is left after the purge"
done
if getent passwd gatewayd >/dev/null; then
    # userdel refuses a user with processes: other gatewayds on this machine may have taken up
    # the user while it existed (their workers run as gatewayd when it exists).
    others=$(pgrep -u gatewayd | paste -sd ' ')
    [[ -n $others ]] || fail "the gatewayd user is left after the purge"
    echo "test-deb.sh: the gatewayd user stays: processes not this test's run as it ($others)" >&2
else
    ! getent group gatewayd >/dev/null || fail "the gatewayd group is left after the purge"
fi
[[ -z $(ip -o link show | awk -F': ' -v t="-$tag-" 'index($2, t)') ]] || fail "a device of this run is left"

echo "test-deb.sh: ok: installed, served, attached, stopped and purged $(basename "$deb") in $(( $(date +%s) - start )) s"
