"""The book build fails when a notebook cell raises (jupyter-book 1.x only warns by default)."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def make_book(folder: Path, *sources: str) -> None:
    """A book of one page per source (``page``, ``page1``, ...), with the project's config and extensions."""
    for name in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "_ext", folder / "_ext")
    pages = ["page"] + [f"page{i}" for i in range(1, len(sources))]
    chapters = "".join(f"  - file: {page}\n" for page in pages[1:])
    toc = "format: jb-book\nroot: page\n" + (f"chapters:\n{chapters}" if chapters else "")
    (folder / "_toc.yml").write_text(toc)
    for page, source in zip(pages, sources, strict=True):
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_markdown_cell(f"# {page}"), nbformat.v4.new_code_cell(source)]
        kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebook.metadata["kernelspec"] = kernel
        nbformat.write(notebook, folder / f"{page}.ipynb")


def build(folder: Path) -> subprocess.CompletedProcess:
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run([str(jupyter_book), "build", str(folder)], capture_output=True, text=True)


def test_a_raising_cell_fails_the_build(tmp_path, monkeypatch):
    monkeypatch.delenv("DAE_TUTOR_BOOK_EXECUTE", raising=False)
    make_book(tmp_path, "raise RuntimeError('this cell fails on purpose')")
    result = build(tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "this cell fails on purpose" in result.stdout + result.stderr


def wait_for_the_other(mine: str, other: str) -> str:
    """A cell that flags ``mine`` and raises unless ``other`` appears within 120 s."""
    return (
        "import pathlib, time\n"
        f"pathlib.Path('{mine}').touch()\n"
        f"for _ in range(1200):\n    if pathlib.Path('{other}').exists(): break\n    time.sleep(0.1)\n"
        f"else:\n    raise RuntimeError('{other} never appeared: the pages did not run concurrently')\n"
    )


def test_the_build_runs_two_notebooks_at_once_and_myst_nb_uses_their_cached_outputs(tmp_path, monkeypatch):
    """Each page waits for the other's flag: a serial build cannot finish (_ext/parallel_execution.py)."""
    monkeypatch.delenv("DAE_TUTOR_BOOK_EXECUTE", raising=False)
    monkeypatch.setenv("DAE_TUTOR_BOOK_JOBS", "2")
    make_book(tmp_path, wait_for_the_other("a.flag", "b.flag"), wait_for_the_other("b.flag", "a.flag"))
    result = build(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Executing 2 notebooks, 2 at a time" in result.stdout
    assert result.stdout.count("Using cached notebook") == 2, result.stdout[-3000:]


def test_one_job_builds_serially(tmp_path, monkeypatch):
    """The control: with one job the same two pages never meet, and the build fails on that cell."""
    monkeypatch.delenv("DAE_TUTOR_BOOK_EXECUTE", raising=False)
    monkeypatch.setenv("DAE_TUTOR_BOOK_JOBS", "1")
    waiting = wait_for_the_other("a.flag", "b.flag").replace("range(1200)", "range(20)")
    make_book(tmp_path, waiting, wait_for_the_other("b.flag", "a.flag").replace("range(1200)", "range(20)"))
    result = build(tmp_path)
    assert result.returncode != 0
    assert "did not run concurrently" in result.stdout + result.stderr
