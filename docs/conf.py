"""Sphinx configuration for the shmsock documentation.

Build it with ``tox -e docs`` (warnings are errors there), or by hand:
``sphinx-build -W --keep-going -b html docs /tmp/docs-html``.  The pages
are Markdown, read by MyST; the API reference imports the installed
``shmsock`` package, so install it first (``pip install -e '.[docs]'``).
"""

from __future__ import annotations

from importlib.metadata import version as _version

project = "shmsock"
author = "the shmsock authors"
copyright = "the shmsock authors"
release = _version("shmsock")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

# The socket's docstrings are Google style: "Raises:" and "On cancel:"
# sections (tests/tools/test_docstrings.py holds every method to them).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["On cancel"]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Links like [text](#section-title) to headings within and across pages.
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

# A reference that leads nowhere is an error (the build runs with -W),
# except to the modules outside shmsock that the signatures name: without
# intersphinx (the build needs no network) Sphinx cannot link them.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(collections\.abc|contextlib|os|pathlib|prometheus_client|trio|typing)\..+"),
    # A "Raises:" section of a method that never raises says "Nothing".
    (r"py:exc", r"Nothing"),
    # The serialization helpers' type variable (the object sent and received).
    (r"py:class", r"shmsock\._serializing\.T"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

html_theme = "furo"
html_title = f"shmsock {release}"
