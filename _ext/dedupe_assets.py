"""Sphinx extension: drop repeated <script> tags from every page.

With Sphinx 7.4, sphinx-thebe and sphinx-togglebutton register their inline config scripts
twice; the second `const THEBE_JS_URL = ...` throws "Identifier has already been declared".
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _key(asset: Any) -> tuple:
    # an inline script is stored once with filename None and once with "": treat both as ""
    filename = getattr(asset, "filename", asset) or ""
    attributes = getattr(asset, "attributes", {}) or {}
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def dedupe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    for name in ("script_files", "css_files"):
        assets = context.get(name)
        if not assets:
            continue
        seen: set = set()
        unique = []
        for asset in assets:
            key = _key(asset)
            if key not in seen:
                seen.add(key)
                unique.append(asset)
        context[name] = unique


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("html-page-context", dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
