"""The ``--out`` / ``--report`` options of the ablation scripts beside this file (the papers'
tables themselves run through ``python -m pydeepclust reproduce``). Rows are written and read
by the runner's own functions, so both kinds of results file are the same JSON lines.

A script is run as ``python benchmarks/<name>.py``, so this module is imported from beside it.
"""

from __future__ import annotations

import argparse

from pydeepclust.experiments import append_row, read_rows

__all__ = ["add_results_options", "append_row", "read_rows"]


def add_results_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    """``--out`` (the file each finished run appends its row to) and ``--report``."""
    parser.add_argument("--out", default=default_out,
                        help=f"results file each run appends a JSON row to (default: {default_out})")
    parser.add_argument("--report", metavar="JSONL", help="print the table of a results file")
