"""The whole book in the full profile, one chapter after another: ``python -m dae_tutor.full_book``.

Each notebook (``chapters/*.ipynb``, then ``how_to_use.ipynb``) is executed by nbclient with
``DAE_TUTOR_PROFILE=full`` into ``results/full/<name>.ipynb``, and its paper-vs-book table is recorded in
``results/full/<name>.json`` (``DAE_TUTOR_TABLE_RECORD``, read by :func:`dae_tutor.report.paper_vs_book`),
with the wall time, the device and the date. A quick-profile table then shows the full run's numbers in a
column of their own. Progress: a bar over the book (weighted by each chapter's last recorded full-run time,
equal weights when there is none: its ETA is the estimate of the total) and one over each chapter's cells.
Without CUDA it refuses to start unless ``--allow-cpu`` is given (the full profile is the papers' scale).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dae_tutor import checks
from dae_tutor.report import RECORD_ENV_VAR

CELL_TIMEOUT_S = 6 * 3600


def notebooks(root: Path) -> list[Path]:
    """The book's notebooks in reading order: ``chapters/*.ipynb`` sorted, then ``how_to_use.ipynb``."""
    root = Path(root)
    found = sorted((root / "chapters").glob("*.ipynb"))
    if (root / "how_to_use.ipynb").is_file():
        found.append(root / "how_to_use.ipynb")
    if not found:
        raise ValueError(f"root must be the book's folder (with chapters/*.ipynb), got {root}")
    return found


def recorded_seconds(results: Path, names: Sequence[str]) -> dict[str, float | None]:
    """Each notebook's wall time in its last recorded full run (``results/<name>.json``), else ``None``."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"names must be a sequence of notebook names (strings), got {names!r}")
    out: dict[str, float | None] = {}
    for name in names:
        path = Path(results) / f"{name}.json"
        out[name] = float(json.loads(path.read_text())["seconds"]) if path.is_file() else None
    return out


def estimate(seconds: dict[str, float | None]) -> float | None:
    """The total of the recorded times, or ``None`` when a notebook has none (no estimate before a run)."""
    if not seconds:
        raise ValueError("seconds must name at least one notebook")
    values = list(seconds.values())
    return None if any(v is None for v in values) else float(sum(values))


def device_name() -> str:
    """The CUDA device's name, else ``"cpu"``."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def check_device(allow_cpu: bool) -> None:
    """Refuse (``SystemExit``) to run the full profile without CUDA unless ``allow_cpu``."""
    if not torch.cuda.is_available() and not allow_cpu:
        raise SystemExit(
            "dae_tutor.full_book: no CUDA device. The full profile is the papers' scale (hours on a GPU, "
            "days on a CPU); pass --allow-cpu to run it anyway, or --dry-run to see the plan."
        )


def run_notebook(path: Path, out_dir: Path, *, timeout: int = CELL_TIMEOUT_S) -> float:
    """Execute ``path`` in the full profile into ``out_dir``; returns the wall time. A failing cell raises,
    after the notebook executed so far is written to ``out_dir`` (its outputs show where it stopped)."""
    import nbclient
    import nbformat

    path, out_dir = Path(path), Path(out_dir)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"path must be an existing .ipynb file, got {path}")
    timeout = checks.positive_int("timeout", timeout)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = path.stem
    record = out_dir / f"{name}.json"
    record.unlink(missing_ok=True)
    notebook = nbformat.read(path, as_version=4)
    code = sum(cell.cell_type == "code" for cell in notebook.cells)
    saved = {k: os.environ.get(k) for k in ("DAE_TUTOR_PROFILE", RECORD_ENV_VAR)}
    os.environ["DAE_TUTOR_PROFILE"], os.environ[RECORD_ENV_VAR] = "full", str(record.resolve())
    start = time.perf_counter()
    try:
        with tqdm(total=code, desc=name, unit="cell", leave=False) as bar:
            client = nbclient.NotebookClient(
                notebook,
                timeout=timeout,
                resources={"metadata": {"path": str(path.parent)}},
                on_cell_complete=lambda cell, cell_index: bar.update(cell.cell_type == "code"),
            )
            client.execute()
    except BaseException:
        nbformat.write(notebook, out_dir / path.name)
        raise
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.perf_counter() - start
    nbformat.write(notebook, out_dir / path.name)
    table = json.loads(record.read_text()) if record.is_file() else {"rows": []}
    table.update(seconds=seconds, device=device_name(), date=time.strftime("%Y-%m-%d", time.gmtime()))
    record.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dae_tutor.full_book", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the book's folder (default: here)")
    parser.add_argument("--only", nargs="*", default=None, help="notebook names to run (default: all)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA (very slow)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the estimate, run nothing")
    args = parser.parse_args(argv)
    paths = notebooks(args.root)
    if args.only:
        unknown = set(args.only) - {p.stem for p in paths}
        if unknown:
            parser.error(f"--only names no notebook: {sorted(unknown)}")
        paths = [p for p in paths if p.stem in args.only]
    results = args.root / "results" / "full"
    seconds = recorded_seconds(results, [p.stem for p in paths])
    total = estimate(seconds)
    missing = sum(s is None for s in seconds.values())
    print(f"{len(paths)} notebooks in the full profile on {device_name()}; estimate: ", end="")
    print(f"unknown ({missing} never run)" if total is None else f"{total / 3600:.1f} h (the last full run)")
    for p in paths:
        s = seconds[p.stem]
        print(f"  {p.stem:<28} {'—' if s is None else f'{s / 60:.0f} min'}")
    if args.dry_run:
        return 0
    check_device(args.allow_cpu)
    weights = {k: (1.0 if total is None else v) for k, v in seconds.items()}
    unit = "chapter" if total is None else "s"  # equal weights, or the recorded seconds: the ETA estimates
    failed = []
    with tqdm(total=sum(weights.values()), desc="book (full profile)", unit=unit) as bar:
        for p in paths:
            try:  # a failing chapter does not stop the book: the others still run and record
                bar.write(f"{p.stem}: {run_notebook(p, results) / 60:.1f} min")
            except Exception as error:
                failed.append(p.stem)
                bar.write(f"{p.stem}: FAILED ({type(error).__name__}); see {results / p.name}")
            bar.update(weights[p.stem])
    if failed:
        print(f"{len(failed)} of {len(paths)} notebooks failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
