"""Unit tests of dae_tutor.full_book (plan, estimate, CPU refusal, one real notebook run) and of the
full-profile column that its records add to dae_tutor.report's tables."""

import json

import nbformat
import pytest
import torch

from dae_tutor import full_book, profiles, report

ROWS = [("Table 1: GSN-2", "214 ± 1.1", "120.0 ± 2.0", "quick profile"), ("Thm 1", "stated", "exact", "—")]


def write_book(root, names=("02_b", "01_a")):
    (root / "chapters").mkdir()
    for name in names:
        nbformat.write(nbformat.v4.new_notebook(), root / "chapters" / f"{name}.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), root / "how_to_use.ipynb")


def test_notebooks_in_reading_order(tmp_path):
    write_book(tmp_path)
    assert [p.name for p in full_book.notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "how_to_use.ipynb"]
    with pytest.raises(ValueError, match="root"):
        full_book.notebooks(tmp_path / "chapters")


def test_estimate_is_the_recorded_total_or_none(tmp_path):
    (tmp_path / "01_a.json").write_text(json.dumps({"seconds": 600.0, "rows": []}))
    seconds = full_book.recorded_seconds(tmp_path, ["01_a", "02_b"])
    assert seconds == {"01_a": 600.0, "02_b": None}
    assert full_book.estimate(seconds) is None  # no estimate while a chapter has never run
    (tmp_path / "02_b.json").write_text(json.dumps({"seconds": 30.5, "rows": []}))
    assert full_book.estimate(full_book.recorded_seconds(tmp_path, ["01_a", "02_b"])) == 630.5
    with pytest.raises(ValueError, match="seconds"):
        full_book.estimate({})
    with pytest.raises(TypeError, match="names"):
        full_book.recorded_seconds(tmp_path, "01_a")


def test_refuses_the_cpu_without_opt_in(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--allow-cpu"):
        full_book.check_device(allow_cpu=False)
    full_book.check_device(allow_cpu=True)  # opted in: no refusal
    write_book(tmp_path)
    with pytest.raises(SystemExit, match="--allow-cpu"):
        full_book.main(["--root", str(tmp_path)])
    assert full_book.main(["--root", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 notebooks in the full profile on cpu; estimate: unknown (3 never run)" in out and "01_a" in out
    with pytest.raises(SystemExit):
        full_book.main(["--root", str(tmp_path), "--dry-run", "--only", "nope"])


def test_a_full_profile_table_is_recorded_and_becomes_a_column(monkeypatch, tmp_path):
    record = tmp_path / "02_gsn.json"
    monkeypatch.setenv(report.RECORD_ENV_VAR, str(record))
    profiles.use("full")
    try:
        report.paper_vs_book([(*ROWS[0][:2], "210.0 ± 1.0", "full profile")])
    finally:
        profiles.use(None)
    run = json.loads(record.read_text())
    assert run["profile"] == "full" and run["rows"] == [[*ROWS[0][:2], "210.0 ± 1.0", "full profile"]]
    run.update(device="NVIDIA H100", date="2026-12-08")
    record.write_text(json.dumps(run))
    monkeypatch.setenv(report.RESULTS_ENV_VAR, str(tmp_path))
    profiles.use("quick")
    try:
        table = report.paper_vs_book(ROWS).markdown
        other = report.paper_vs_book(
            [("another claim", "—", "1", "—")]
        ).markdown  # none of its claims recorded
        record.unlink()  # the control: without a recorded run there is no column
        plain = report.paper_vs_book(ROWS).markdown
    finally:
        profiles.use(None)
    assert "| claim | paper | this book | full profile (NVIDIA H100, 2026-12-08) | why they differ |" in table
    assert "| Table 1: GSN-2 | 214 ± 1.1 | 120.0 ± 2.0 | 210.0 ± 1.0 | quick profile |" in table
    assert "| Thm 1 | stated | exact | not run | — |" in table
    for markdown in (plain, other):
        assert (
            "full profile (" not in markdown and "| claim | paper | this book | why they differ |" in markdown
        )


def test_run_notebook_executes_in_the_full_profile_and_records(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from dae_tutor import profiles, report\n"
            "report.paper_vs_book([('claim', 'paper', profiles.current(), 'why')])"
        )
    ]
    path = tmp_path / "01_tiny.ipynb"
    nbformat.write(nb, path)
    seconds = full_book.run_notebook(path, tmp_path / "out", timeout=120)
    run = json.loads((tmp_path / "out" / "01_tiny.json").read_text())
    assert run["rows"] == [["claim", "paper", "full", "why"]] and run["seconds"] == pytest.approx(seconds)
    assert run["device"] == full_book.device_name() and len(run["date"]) == 10
    executed = nbformat.read(tmp_path / "out" / "01_tiny.ipynb", as_version=4)
    assert "*profile: full*" in executed.cells[0].outputs[0]["data"]["text/markdown"]


def test_a_failing_notebook_is_saved_and_the_book_goes_on(monkeypatch, tmp_path, capsys):
    write_book(tmp_path, names=("01_a",))
    broken = nbformat.v4.new_notebook()
    broken.cells = [nbformat.v4.new_code_cell("raise RuntimeError('cell 0 fails')")]
    nbformat.write(broken, tmp_path / "chapters" / "01_a.ipynb")
    with pytest.raises(ValueError, match="path"):
        full_book.run_notebook(tmp_path / "missing.ipynb", tmp_path)
    with pytest.raises(ValueError, match="timeout"):
        full_book.run_notebook(tmp_path / "how_to_use.ipynb", tmp_path, timeout=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert full_book.main(["--root", str(tmp_path), "--allow-cpu"]) == 1  # 01_a fails, how_to_use runs
    out = capsys.readouterr().out
    assert "1 of 2 notebooks failed: 01_a" in out
    results = tmp_path / "results" / "full"
    saved = nbformat.read(results / "01_a.ipynb", as_version=4)
    assert saved.cells[0].outputs[0]["ename"] == "RuntimeError"  # the partial notebook shows where it stopped
    assert (results / "how_to_use.json").is_file() and not (results / "01_a.json").exists()


def test_the_full_column_follows_the_first_book_column_of_a_table_with_its_own_columns(monkeypatch, tmp_path):
    # chapter 3's table: paper, two protocols, budget, why; the full run's first book cell is the one shown
    columns = ("paper", "real-valued", "binarised", "budget", "why they differ")
    row = ("GSN-2", "214 ± 1.1", "120.0", "-20.5", "40 s", "quick")
    run = {"rows": [["GSN-2", "214 ± 1.1", "230.0", "-10.0", "900 s", "full"]], "device": "GPU", "date": "d"}
    (tmp_path / "03_evaluation.json").write_text(json.dumps(run))
    monkeypatch.setenv(report.RESULTS_ENV_VAR, str(tmp_path))
    profiles.use("quick")
    try:
        table = report.paper_vs_book([row], columns=columns).markdown
    finally:
        profiles.use(None)
    heading = "| claim | paper | real-valued | full profile (GPU, d) | binarised | budget | why they differ |"
    assert heading in table
    assert "| GSN-2 | 214 ± 1.1 | 120.0 | 230.0 | -20.5 | 40 s | quick |" in table
