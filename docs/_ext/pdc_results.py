"""Sphinx extension: render the papers' tables from the runner's results files.

At ``builder-inited`` every table of :data:`TABLES` whose results file exists is rendered by
the runner's own command, ``python -m pydeepclust reproduce TABLE --report --out FILE --png
PNG`` (run in-process through :func:`pydeepclust.cli.main`, the same argument parsing and
:func:`pydeepclust.experiments.report`, without starting torch five more times), into
``docs/_generated/TABLE.md`` and its bar chart ``TABLE.png``. The pages include those files
with ``{include}`` (``:relative-images:``), so a table is never pasted by hand: append runs to
the results file and rebuild.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

DOCS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(DOCS)
GENERATED = os.path.join(DOCS, "_generated")

# table name -> its results file, relative to the repository root
TABLES = {
    "genksc": "benchmarks/results/genksc.jsonl",
    "rsm": "benchmarks/results/rsm.jsonl",
    "acedec-mnist": "benchmarks/results/acedec-mnist.jsonl",
    "spectral": "benchmarks/results/spectral.jsonl",
    "acedec": "benchmarks/results/acedec.jsonl",
}


def render(table: str, results: str) -> str:
    """The markdown of ``reproduce TABLE --report``; the chart lands beside it."""
    from pydeepclust import cli

    png = os.path.join(GENERATED, f"{table}.png")
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)  # the report names the results file as given: relative to the checkout
    try:
        with contextlib.redirect_stdout(out):
            status = cli.main(["reproduce", table, "--report", "--out", results, "--png", png])
    finally:
        os.chdir(cwd)
    if status:
        raise RuntimeError(f"pydeepclust reproduce {table} --report exited with {status}")
    # the chart is written next to the generated page: link it by its bare name
    text = re.sub(r"\]\(" + re.escape(png) + r"\)", f"]({table}.png)", out.getvalue())
    # keep "0.881 ± 0.007" on one line in the narrow cells of an 11-column table
    return text.replace(" ± ", "\u00a0±\u00a0")


def generate(app) -> None:
    os.makedirs(GENERATED, exist_ok=True)
    for table, results in TABLES.items():
        target = os.path.join(GENERATED, f"{table}.md")
        if not os.path.exists(os.path.join(ROOT, results)):
            text = f"*No results file `{results}` yet: run `python -m pydeepclust reproduce " \
                   f"{table} --out {results}`.*\n"
        else:
            text = render(table, results)
        old = open(target).read() if os.path.exists(target) else None
        if text != old:  # unchanged files keep their time stamp: no needless rebuild
            with open(target, "w") as f:
                f.write(text)


def setup(app):
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
