"""Markdown table from a pytest-benchmark JSON: extension vs reference per group.

    python benchmarks/report.py benchmarks/results/<name>.json
"""

import json
import sys
from collections import defaultdict


def table(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    for bench in data["benchmarks"]:
        impl = bench["params"].get("impl", bench["name"])
        groups[bench["group"]][impl] = bench["stats"]["median"] * 1e3
    impls = sorted({i for g in groups.values() for i in g}, key=lambda i: i != "extension")
    head = "| case | " + " | ".join(f"{i} median (ms)" for i in impls)
    lines = [head + (" | speed-up |" if "extension" in impls and "reference" in impls else " |")]
    lines.append("|" + "---|" * (lines[0].count("|") - 1))
    for group, by_impl in groups.items():
        cells = [f"{by_impl[i]:.3f}" if i in by_impl else "—" for i in impls]
        row = f"| {group} | " + " | ".join(cells) + " |"
        if "extension" in by_impl and "reference" in by_impl:
            row += f" {by_impl['reference'] / by_impl['extension']:.2f}× |"
        lines.append(row)
    machine = data.get("machine_info", {})
    lines.append("")
    lines.append(f"Measured {data.get('datetime', '')[:10]} on {machine.get('cpu', {}).get('brand_raw', '?')}"
                 f" ({machine.get('cpu', {}).get('count', '?')} logical CPUs)"
                 + (f", GPU {machine['gpu']}" if "gpu" in machine else "")
                 + f", torch {machine.get('torch', '?')}, torch threads as default.")
    return "\n".join(lines)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(table(p))
