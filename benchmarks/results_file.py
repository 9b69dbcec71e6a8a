"""The JSON-lines results files that the table scripts append to as runs finish, and report from.

A script is run as ``python benchmarks/<name>.py``, so this module is imported from beside it.
"""

from __future__ import annotations

import argparse
import json
import os


def add_results_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    """``--out`` (the file each finished run appends its row to) and ``--report``."""
    parser.add_argument("--out", default=default_out,
                        help=f"results file each run appends a JSON row to (default: {default_out})")
    parser.add_argument("--report", metavar="JSONL", help="print the table of a results file")


def append_row(path: str | None, row: dict) -> None:
    """Print ``row`` and append it to ``path`` as one JSON line (its folder made if missing);
    with ``path`` None, print only."""
    line = json.dumps(row)
    print(line, flush=True)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a") as f:
            f.write(line + "\n")


def read_rows(path: str) -> list[dict]:
    """Every row of a results file, blank lines skipped."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
