"""Sphinx configuration for hubext's documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

project = "hubext"
copyright = "2026, the hubext developers"
author = "the hubext developers"

extensions = ["myst_parser", "traitsref"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
