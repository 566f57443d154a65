# The figures of bench-many.sh's crr and fetch workloads, from what bench-many-guest.py and the
# script left in its work directory: one row per path and workload, and the line printed as each ends.
#
#   python3 Tools/bench_many_rounds.py WORK PATH KIND N CLK_TCK    (prints the line)
import json
import os
import statistics
import sys


def jain(xs):
    """Jain's fairness index (Σx)² / (N·Σx²): 1 = all equal, 1/N = one took everything."""
    squares = sum(x * x for x in xs)
    return sum(xs) ** 2 / (len(xs) * squares) if xs and squares else None


def spread(xs):
    return dict(min=min(xs), median=statistics.median(xs), max=max(xs)) if xs else {}


def load_meta(path):
    """The script's .meta: a first line of totals, then each round's start and end (µs)."""
    lines = [line.split() for line in open(path).read().splitlines() if line.strip()]
    keys = ("clients_start_s", "started", "net_ticks", "machine_ticks", "server_ticks", "net_wait_ns", "late")
    head = dict(zip(keys, (float(x) for x in lines[0])))
    return head, [(int(a), int(b)) for a, b in lines[1:]]


def summarize(work, path, kind, n, clk, cpus=2):
    base = os.path.join(work, f"{path}-{kind}")
    head, marks = load_meta(base + ".meta")
    clients, missing = [], 0
    for i in range(1, n + 1):
        try:
            clients.append(json.loads(open(f"{base}-{i}.json").read())["rounds"])
        except (OSError, ValueError, KeyError):
            clients.append(None)
            missing += 1
    rounds, first_error = [], None
    for r, (release_us, collected_us) in enumerate(marks):
        per = [c[r] for c in clients if c is not None and len(c) > r]
        release_ns = release_us * 1000
        row = dict(round=r + 1, reported=len(per), errors=sum(x["errors"] for x in per) + n - len(per),
                   done=sum(x["done"] for x in per), bytes=sum(x["bytes"] for x in per),
                   client_cpu_s=sum(x["cpu_ns"] for x in per) / 1e9,
                   script_wall_s=(collected_us - release_us) / 1e6)
        first_error = first_error or next((x["first_error"] for x in per if x["first_error"]), None)
        if per:
            last = max(x["end_ns"] for x in per)
            row["wall_s"] = (last - release_ns) / 1e9
            # How long after the start the last client began (200 wake-ups on a few CPUs).
            row["start_spread_ms"] = (max(x["start_ns"] for x in per) - release_ns) / 1e6
            own = [max(x["end_ns"] - x["start_ns"], 1) / 1e9 for x in per]
            if kind == "crr":
                rates = [x["done"] / s for x, s in zip(per, own)]
                row.update(per_second=row["done"] / row["wall_s"], per_sandbox=rates)
            else:
                rates = [x["bytes"] * 8 / 1e9 / s for x, s in zip(per, own)]
                row.update(aggregate_gbps=row["bytes"] * 8 / 1e9 / row["wall_s"], per_sandbox=rates)
            row.update({f"{k}_sandbox": v for k, v in spread(rates).items()}, jain=jain(rates))
        rounds.append(row)
    out = dict(path=path, workload=kind, sandboxes=n, rounds=rounds, clients_missing=missing,
               clients_started=int(head["started"]), clients_start_s=head["clients_start_s"],
               late=bool(head["late"]), first_error=first_error,
               errors=sum(r["errors"] for r in rounds) if rounds else n)
    if not marks:
        return out
    # The CPU readings span the waits before each round's start too, in which the paths idle.
    wall = sum(b - a for a, b in marks) / 1e6
    done, nbytes = sum(r["done"] for r in rounds), sum(r["bytes"] for r in rounds)
    net_s, machine_s, server_s = (head[k] / clk for k in ("net_ticks", "machine_ticks", "server_ticks"))
    # The clients' own CPU time over their rounds (each measured it): what the load generator costs.
    client_s = sum(r["client_cpu_s"] for r in rounds)
    out.update(cpu_wall_s=wall, machine_busy=machine_s / wall / cpus, server_busy=server_s / wall)
    if path != "veth":
        out.update(net_busy=net_s / wall, net_wait=head["net_wait_ns"] / 1e9 / wall)
    if kind == "crr" and done:
        r = rounds[0]
        out.update(connections=done, wall_s=r.get("wall_s"), per_second=r.get("per_second"),
                   min_sandbox=r.get("min_sandbox"), median_sandbox=r.get("median_sandbox"),
                   max_sandbox=r.get("max_sandbox"), jain=r.get("jain"), start_spread_ms=r.get("start_spread_ms"),
                   server_us_per_conn=server_s * 1e6 / done, client_us_per_conn=client_s * 1e6 / done,
                   machine_us_per_conn=machine_s * 1e6 / done)
        if path != "veth":
            out["net_us_per_conn"] = net_s * 1e6 / done
    elif kind == "fetch" and nbytes:
        aggs = [r["aggregate_gbps"] for r in rounds if "aggregate_gbps" in r]
        jains = [r["jain"] for r in rounds if r.get("jain") is not None]
        gb = nbytes / 1e9
        out.update(bytes=nbytes, median_aggregate_gbps=statistics.median(aggs) if aggs else None,
                   lowest_jain=min(jains) if jains else None,
                   server_cpu_s_per_gb=server_s / gb, client_cpu_s_per_gb=client_s / gb,
                   machine_cpu_s_per_gb=machine_s / gb)
        if path != "veth":
            out["net_cpu_s_per_gb"] = net_s / gb
    return out


def line(s):
    """One line saying how the workload went."""
    text = f"{s['path']} {s['workload']}: "
    if s["clients_started"] < s["sandboxes"]:
        return text + f"only {s['clients_started']} of {s['sandboxes']} clients started; not run"
    if s["workload"] == "crr" and s.get("per_second"):
        text += (f"{s['connections']} connections, {s['per_second']:.0f}/s (one sandbox {s['min_sandbox']:.1f}"
                 f"–{s['max_sandbox']:.1f}/s, Jain {s['jain']:.3f})")
    elif s["workload"] == "fetch" and s.get("median_aggregate_gbps") is not None:
        text += "rounds " + ", ".join(f"{r['aggregate_gbps']:.2f}" for r in s["rounds"] if "aggregate_gbps" in r)
        text += f" Gbps, lowest Jain {s['lowest_jain']:.3f}"
    else:
        text += "nothing completed"
    if s["errors"]:
        text += f"; {s['errors']} errors (first: {s['first_error']})"
    if s["late"]:
        text += "; a round did not end in time"
    return text + f"; clients started in {s['clients_start_s']:.1f} s"


if __name__ == "__main__":
    work, path, kind, n, clk = sys.argv[1:6]
    print(line(summarize(work, path, kind, int(n), int(clk))))
