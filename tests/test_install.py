"""The package as an installed library: a missing extension stays quiet, a broken one warns
once with the cause and the rebuild command; one version everywhere; py.typed shipped.

Each extension case runs in a fresh interpreter, where a meta path finder stands in for
``pydeepclust._C``: a junk file loaded by the real extension loader (the dlopen error a build
against another torch gives), or no module at all (a build with PYDEEPCLUST_SKIP_EXT=1).
The wheel itself is built, installed and used from outside the checkout by ``.ci/run``.
"""

import importlib.machinery
import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
import textwrap


import pydeepclust

ROOT = pathlib.Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import importlib.machinery, importlib.util, json, sys, warnings

    class StandIn:
        def find_spec(self, name, path=None, target=None):
            if name != "pydeepclust._C":
                return None
            if MODE == "missing":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            loader = importlib.machinery.ExtensionFileLoader(name, JUNK)
            return importlib.util.spec_from_file_location(name, JUNK, loader=loader)

    sys.meta_path.insert(0, StandIn())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")      # repeats would not be merged
        import pydeepclust
        import pydeepclust.nn, pydeepclust.optim   # more importers of the ops: no second warning
        from pydeepclust import ops
        codes = ops.simplex_codes(3)
        dist, label = ops.cosine_simplex_assign(2 * codes, codes)
        ops.build_info()
    try:
        ops.set_backend("extension")
        forced = "accepted"
    except RuntimeError as err:
        forced = str(err)
    print(json.dumps({
        "forced": forced,
        "warnings": [(w.category.__name__, str(w.message)) for w in caught],
        "build_info": pydeepclust.build_info(),
        "backend": ops.backend(),
        "labels": label.tolist(),
    }))
""")


def probe(mode, tmp_path, **env):
    """Import pydeepclust in a fresh interpreter with the stand-in ``_C``; what it saw."""
    junk = tmp_path / ("_C" + importlib.machinery.EXTENSION_SUFFIXES[0])
    junk.write_bytes(b"not a shared object\n")
    code = f"MODE = {mode!r}\nJUNK = {str(junk)!r}\n" + PROBE
    environ = {k: v for k, v in os.environ.items() if k != "PYDEEPCLUST_BACKEND"}
    environ.update(OMP_NUM_THREADS="1", **env)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environ,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_broken_extension_warns_once_with_cause_and_fix(tmp_path):
    result = probe("broken", tmp_path)
    assert len(result["warnings"]) == 1, result["warnings"]
    category, message = result["warnings"][0]
    assert category == "ExtensionLoadWarning"
    error = result["build_info"]["error"]
    assert error and error in message                  # the loader's own words
    assert "make build" in message and "setup.py build_ext --inplace" in message
    assert result["build_info"]["available"] is False
    assert result["build_info"]["status"] == "failed to load"
    assert "make build" in result["build_info"]["fix"]
    # everything still runs, on the references; asking for the extension names the fix
    assert result["backend"] == "reference"
    assert result["labels"] == [0, 1, 2]
    assert "make build" in result["forced"] and error in result["forced"]


def test_broken_extension_is_quiet_when_the_references_are_asked_for(tmp_path):
    result = probe("broken", tmp_path, PYDEEPCLUST_BACKEND="reference")
    assert result["warnings"] == []
    assert result["build_info"]["status"] == "failed to load"


def test_missing_extension_is_quiet_and_reported_as_not_built(tmp_path):
    result = probe("missing", tmp_path)
    assert result["warnings"] == []
    assert result["build_info"]["available"] is False
    assert result["build_info"]["status"] == "not built"
    assert "pydeepclust._C" in result["build_info"]["error"]
    assert result["backend"] == "reference" and result["labels"] == [0, 1, 2]


def test_one_version():
    """pyproject reads __version__ from pydeepclust/__init__.py; the installed metadata agrees."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "pydeepclust.__version__" }' in pyproject
    assert importlib.metadata.version("pydeepclust") == pydeepclust.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{pydeepclust.__version__}]" in changelog


def test_py_typed_is_package_data():
    assert (ROOT / "pydeepclust" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()
