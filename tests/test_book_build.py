"""The book build fails when a notebook cell raises (jupyter-book 1.x only warns by default)."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def make_book(folder: Path, source: str) -> None:
    """A one-page book that uses the project's own _config.yml and extensions."""
    for name in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "_ext", folder / "_ext")
    (folder / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Page"), nbformat.v4.new_code_cell(source)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "page.ipynb")


def build(folder: Path) -> subprocess.CompletedProcess:
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run([str(jupyter_book), "build", str(folder)], capture_output=True, text=True)


def test_a_raising_cell_fails_the_build(tmp_path, monkeypatch):
    monkeypatch.delenv("DAE_TUTOR_BOOK_EXECUTE", raising=False)
    make_book(tmp_path, "raise RuntimeError('this cell fails on purpose')")
    result = build(tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "this cell fails on purpose" in result.stdout + result.stderr
