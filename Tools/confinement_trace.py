#!/usr/bin/env python3
# Reads strace -f traces of gatewayd (Tools/confinement-trace.sh) and splits each one's system calls
# into the supervisor's (netlink sockets and every call on them, /dev/net/tun, /run/netns, setns,
# TUN and interface ioctls) and the worker's (the rest), then checks the worker's against the
# allow-list that `confinement-probe list` prints.
import argparse
import collections
import re
import sys

CALL = re.compile(r'^(\d+)\s+(\w+)\((.*)')
RESUMED = re.compile(r'^(\d+)\s+<\.\.\. (\w+) resumed>.*=\s+(-?\d+)')
RESULT = re.compile(r'=\s+(-?\d+)(?:\s|$)')
# TUNSETIFF and friends, SIOCGIFINDEX (if_nametoindex), NS_GET_NSTYPE (checking a netns file).
SUPERVISOR_IOCTL = re.compile(r'TUN|SIOC|NS_GET')
SUPERVISOR_CALLS = {'setns', 'unshare', 'mount', 'umount2'}
# The dynamic loader and libc's start-up, done before main and so before any filter exists.
LOADER = re.compile(r'^(arch_prctl|set_tid_address)$|^access .*ld\.so\.preload')


def split(path, executable):
    """Counters for one trace: supervisor ('call detail'), worker and loader (call names)."""
    netlink = set()          # descriptors of open netlink sockets
    ifreq = set()            # if_nametoindex's AF_UNIX datagram sockets
    pending = {}             # tid -> kind of the descriptor an unfinished socket() will return
    supervisor = collections.Counter()
    worker = collections.Counter()
    loader = collections.Counter()
    # A trace started before exec holds the launching shell's calls: skip to gatewayd's execve.
    started = executable is None
    for line in open(path, errors='replace'):
        if not started:
            started = f'execve("{executable}"' in line
            continue
        m = CALL.match(line)
        if not m:
            r = RESUMED.match(line)
            if r and r.group(1) in pending and int(r.group(3)) >= 0:
                (netlink if pending.pop(r.group(1)) == 'netlink' else ifreq).add(int(r.group(3)))
            continue
        tid, name, args = m.groups()
        first = re.match(r'\s*(\d+)', args.split(',')[0])
        fd = int(first.group(1)) if first else None
        kind = None
        if name == 'socket' and args.startswith('AF_NETLINK'):
            kind, what = 'netlink', 'socket(AF_NETLINK)'
        elif name == 'socket' and args.startswith('AF_UNIX, SOCK_DGRAM'):
            kind, what = 'ifreq', 'socket(AF_UNIX, SOCK_DGRAM) for if_nametoindex'
        elif name in SUPERVISOR_CALLS:
            what = name
        elif name == 'ioctl' and SUPERVISOR_IOCTL.search(args):
            what = 'ioctl ' + re.split(r'[,)]', args)[1].strip()
        elif '/dev/net/tun' in args:
            what = f'{name} /dev/net/tun'
        elif '/run/netns' in args:
            what = f'{name} /run/netns/NAME'
        elif name == 'fstatfs' and 'NSFS_MAGIC' in args:
            what = 'fstatfs (a netns file)'
        elif fd is not None and fd in netlink and name != 'epoll_wait':
            detail = ' ' + ', '.join(a.strip() for a in args.split(',')[1:3]) if name == 'setsockopt' else ''
            what = f'{name} on netlink{detail}'
        elif fd is not None and fd in ifreq and name == 'close':
            what = 'close (if_nametoindex socket)'
        else:
            what = None
        if name == 'close' and fd is not None:
            netlink.discard(fd)
            ifreq.discard(fd)
        if what:
            supervisor[what] += 1
        elif LOADER.search(name + ('' if name != 'access' else ' ' + args)):
            loader[name] += 1
        else:
            worker[name] += 1
        if kind:
            if '<unfinished' in line:
                pending[tid] = kind
            else:
                r = RESULT.search(line[line.rfind(')'):])
                if r and int(r.group(1)) >= 0:
                    (netlink if kind == 'netlink' else ifreq).add(int(r.group(1)))
    return supervisor, worker, loader


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--allow-list', help='`confinement-probe list` output')
    parser.add_argument('--executable', help='gatewayd path as execve names it (skip what precedes it)')
    parser.add_argument('traces', nargs='+')
    options = parser.parse_args()
    every = collections.Counter()
    for path in options.traces:
        supervisor, worker, loader = split(path, options.executable if 'startup' in path or 'restart' in path else None)
        every.update(worker)
        print(f'== {path.rsplit("/", 1)[-1].removesuffix(".trace")}')
        print('   supervisor: ' + (', '.join(f'{k} ×{v}' for k, v in sorted(supervisor.items())) or '-'))
        print('   worker:     ' + ' '.join(sorted(worker)))
        if loader:
            print('   before main: ' + ' '.join(sorted(loader)))
    print(f'== worker, all workloads ({len(every)}): ' + ' '.join(sorted(every)))
    if options.allow_list:
        allowed = set(re.findall(r'^\| `(\w+)`', open(options.allow_list).read(), re.M))
        missing = sorted(set(every) - allowed)
        print('== seen but not on the allow-list: ' + (' '.join(missing) or 'none'))
        print('== on the allow-list but not seen: ' + (' '.join(sorted(allowed - set(every))) or 'none'))


if __name__ == '__main__':
    sys.exit(main())
