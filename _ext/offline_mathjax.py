"""Sphinx extension: serve MathJax 3 from the build itself, so the book renders offline.

MathJax comes from the ``django-static-mathjax`` wheel (installed by
``requirements.txt``; it ships the official ``es5`` build as the package
``mathjax``). After the build, its ``es5`` folder is copied to
``_static/mathjax`` in the output, which ``mathjax_path: mathjax/tex-chtml.js``
in ``_config.yml`` points at. Nothing third-party is committed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx

# Combined bundles we do not load: only tex-chtml.js and what it fetches lazily are needed.
_UNUSED = ("tex-mml-*", "tex-svg*", "mml-*", "tex-chtml-full*", "startup.js", "node-main.js")


def mathjax_source() -> Path:
    """The ``es5`` folder of the installed MathJax 3 distribution."""
    try:
        import mathjax  # the django-static-mathjax wheel
    except ImportError as error:
        raise RuntimeError(
            "MathJax is not installed: run `python -m pip install -r requirements.txt` "
            "(it provides django-static-mathjax, the offline MathJax 3)"
        ) from error
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "tex-chtml.js").exists():
        shutil.copytree(mathjax_source(), target, ignore=shutil.ignore_patterns(*_UNUSED), dirs_exist_ok=True)


def setup(app: Sphinx) -> dict[str, bool]:
    mathjax_source()  # fail early, with the install hint, when MathJax is missing
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
