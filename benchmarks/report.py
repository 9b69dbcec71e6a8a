"""Markdown table from a pytest-benchmark JSON: extension vs reference (and tuned) per group.

    python benchmarks/report.py benchmarks/results/<name>.json

Columns: each implementation's median; the speed-up of the extension over the reference;
``tuned / best``: the faster of extension and reference divided by the tuned dispatch's time
(1.00 = tuned matches the better one); ``limit``: the case's memory- or FLOP-bound time on the
machine that ran it (``run_case``'s ``bound_s``: least bytes / measured copy bandwidth, or
least flops / measured float32 GEMM rate, whichever is larger) and the fraction of it each
implementation reaches (limit / median).
"""

import json
import sys
from collections import defaultdict

ORDER = {"extension": 0, "tuned": 1, "reference": 2}


def table(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    limits, rates = {}, {}
    for bench in data["benchmarks"]:
        impl = bench["params"].get("impl", bench["name"])
        groups[bench["group"]][impl] = bench["stats"]["median"] * 1e3
        info = bench.get("extra_info", {})
        if "bound_s" in info:
            limits[bench["group"]] = (info["bound_s"] * 1e3, info["bound"])
            rates[bench["group"].rsplit("[", 1)[-1].rstrip("]")] = (
                info["bandwidth_GBps"], info["gemm_GFLOPs"], info.get("threads"))
    impls = sorted({i for g in groups.values() for i in g}, key=lambda i: (ORDER.get(i, 3), i))
    pair = "extension" in impls and "reference" in impls
    tuned = pair and "tuned" in impls
    head = "| case | " + " | ".join(f"{i} median (ms)" for i in impls)
    head += " | speed-up" if pair else ""
    head += " | tuned / best" if tuned else ""
    if limits:
        head += " | limit (ms) | " + " | ".join(f"{i} % of limit" for i in impls)
    lines = [head + " |"]
    lines.append("|" + "---|" * (lines[0].count("|") - 1))
    for group, by_impl in groups.items():
        cells = [f"{by_impl[i]:.3f}" if i in by_impl else "—" for i in impls]
        if pair:
            both = "extension" in by_impl and "reference" in by_impl
            cells.append(f"{by_impl['reference'] / by_impl['extension']:.2f}×" if both else "—")
        if tuned:
            best = min(by_impl.get("extension", float("inf")), by_impl.get("reference", float("inf")))
            cells.append(f"{best / by_impl['tuned']:.2f}" if "tuned" in by_impl else "—")
        if limits:
            bound = limits.get(group)
            cells.append(f"{bound[0]:.3g} ({bound[1]})" if bound else "—")
            cells += [f"{100 * bound[0] / by_impl[i]:.1f} %" if bound and i in by_impl else "—"
                      for i in impls]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    machine = data.get("machine_info", {})
    lines.append("")
    lines.append(f"Measured {data.get('datetime', '')[:10]} on {machine.get('cpu', {}).get('brand_raw', '?')}"
                 f" ({machine.get('cpu', {}).get('count', '?')} logical CPUs)"
                 + (f", GPU {machine['gpu']}" if "gpu" in machine else "")
                 + f", torch {machine.get('torch', '?')}.")
    for device, (bw, gemm, threads) in sorted(rates.items()):
        on = f" with {threads} torch thread(s)" if device == "cpu" and threads else ""
        lines.append(f"Limits on {device}: copy bandwidth {bw:.1f} GB/s (read + write), float32 "
                     f"GEMM {gemm:.1f} GFLOP/s, both measured by the harness in this run{on}.")
    return "\n".join(lines)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(table(p))
