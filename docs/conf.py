"""Sphinx configuration of the pydeepclust documentation (``make docs``)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))      # the checkout, for autodoc
sys.path.insert(0, os.path.join(HERE, "_ext"))

import pydeepclust  # noqa: E402

project = "pydeepclust"
author = "pydeepclust developers"
copyright = "2026, " + author
release = version = pydeepclust.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",      # the Google-style "Args:" / "Returns:" docstrings
    "sphinx.ext.viewcode",
    "myst_parser",              # the pages are markdown
    "sphinxarg.ext",            # the command line, from pydeepclust.cli.build_parser()
    "pdc_results",              # the results tables, rendered from benchmarks/results/*.jsonl
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated/*", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# Math stays in the Unicode form the docstrings and the README use (‖UᵀU − I‖, Φ(Φᵀ1)):
# the site must read offline, MathJax from a CDN is not reachable here and CI has no TeX
# for imgmath. No page uses a math role, so no MathJax script is added.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # scikit-learn adds these metadata-routing setters to every estimator class; their
    # docstrings point into scikit-learn's own glossary, which this site does not have.
    # The model modules' command-line hooks are the fit subcommand's (cli.rst), not API.
    "exclude-members": "set_fit_request, set_predict_request, set_transform_request, "
                       "set_score_request, set_partial_fit_request, "
                       "add_cli_arguments, from_cli, cli_outputs",
}
autodoc_mock_imports = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Nitpicky for the project's own names. The site is built offline (no intersphinx
# inventories can be fetched), so references into other packages' documentation
# (torch, numpy, scikit-learn, the standard library) cannot resolve: ignore those only.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|np|numpy|sklearn|scipy|matplotlib|argparse|os|pathlib|typing|"
               r"collections|dataclasses|enum|abc)(\..*)?"),
    (r"py:class", r"(Tensor|ndarray|ArrayLike|Module|Optimizer|Path|Generator|Callable|"
                  r"Sequence|Iterable|Iterator|Mapping|Any|optional|callable|array-like)"),
]
# A private base class named in the inheritance line of DCN and ACeDeC:
nitpick_ignore = [
    ("py:class", "pydeepclust.models.acedec._CentroidDeepClusterer"),
]

html_theme = "furo"
html_title = f"pydeepclust {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}

# Curly quotes and ellipses, but no "--" -> en dash: the CLI pages show options like --data-path.
smartquotes_action = "qe"


def _ops_other():
    """docs/_generated/ops_other.rst: autodoc entries for what pydeepclust.ops exports beyond
    the functions api/ops.rst lists by section (a new op must not break the -W build)."""
    import re

    import pydeepclust.ops as ops

    with open(os.path.join(HERE, "api", "ops.rst")) as f:
        listed = set(re.findall(r"(?:auto\w+|py:data)::\s+pydeepclust\.ops\.(\w+)", f.read()))
    lines = []
    for name in ops.__all__:
        if name in listed:
            continue
        kind = ("autoexception" if isinstance(getattr(ops, name), type)
                and issubclass(getattr(ops, name), BaseException)
                else "autoclass" if isinstance(getattr(ops, name), type)
                else "autofunction" if callable(getattr(ops, name)) else "autodata")
        lines.append(f".. {kind}:: pydeepclust.ops.{name}\n")
    text = "\n".join(lines) if lines else "(None: every export has its section.)\n"
    os.makedirs(os.path.join(HERE, "_generated"), exist_ok=True)
    path = os.path.join(HERE, "_generated", "ops_other.rst")
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)


_ops_other()
