"""Sphinx configuration of hybridml's site (``make docs``).

The build is offline (no intersphinx, no downloads). Importing this file loads
neither keras nor TensorFlow: the API pages import the public names when they
are read, and the gallery runs the fast recipes in the recipes' fast mode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT / "src"))

# Recipes run in their fast mode; the default models load offline; quiet TF.
os.environ.setdefault("HYBRIDML_FAST", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hybridml  # noqa: E402  (light: imports no keras)

project = "hybridml"
author = "hybridml developers"
copyright = "hybridml developers"
release = version = hybridml.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "myst_parser",
    "hybridml_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "benchmarks/_plots",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "auto_examples/*.pickle",
    "auto_examples/*.codeobj.json",
]
templates_path = ["_templates"]
nitpicky = False

# --- API: autodoc + numpydoc ------------------------------------------------
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters section carries the types
autodoc_member_order = "bysource"
python_maximum_signature_line_length = 60  # one parameter a line in long signatures
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Validation, scoped to the public names: every one needs a summary line, its
# parameters documented, a Returns section (functions) and Examples (which run
# as doctests in `make test`). Methods and the version string are out of scope.
numpydoc_validation_checks = {
    "GL08",  # no docstring
    "SS01",  # no summary line
    "SS03",  # summary does not end with a period
    "PR01",  # a parameter not documented
    "PR02",  # a documented parameter that does not exist
    "PR10",  # "param:type" without a space
    "RT01",  # no Returns section
    "EX01",  # no Examples section
}
numpydoc_validation_exclude = {
    r"^hybridml\.[A-Za-z_]+\.",  # methods and attributes of the public classes
    r"^hybridml\.__version__$",  # a string
    r"^(?!hybridml\.)",  # anything autodoc reaches outside the public names
}

# --- gallery: recipes/ --------------------------------------------------------
RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.py"))
# Run at build time, in fast mode: only the recipes that take seconds once
# TensorFlow is loaded (`HYBRIDML_FAST=1` timings on 2 shared cores, TensorFlow's
# import included: gridsearch_keras_classifier 12 s; every other recipe 18-60 s,
# text_embedding_svc 27 s inside the gallery). The others are shown without
# running, and their pages say so; tests/test_recipes.py runs them all.
EXECUTED = ["gridsearch_keras_classifier"]
hybridml_all_recipes = RECIPES
hybridml_executed_recipes = EXECUTED
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "recipes"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/(" + "|".join(EXECUTED) + r")\.py$",
    "ignore_pattern": r"__init__\.py",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "show_signature": False,
    "min_reported_time": 1,
    "reset_modules": (),
    "plot_gallery": "True",
    "image_scrapers": ("matplotlib",),
}

# --- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"hybridml {release}"
html_static_path = ["_static"]
html_css_files = ["hybridml.css"]
# Wide pages: side-by-side code, the benchmarks' tables (no left navigation).
html_sidebars = {"guide/coming_from": [], "benchmarks/index": [], "index": []}
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_prev_next": False,
    "secondary_sidebar_items": {"**": ["page-toc"], "guide/coming_from": []},
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
html_last_updated_fmt = None
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
myst_heading_anchors = 3
