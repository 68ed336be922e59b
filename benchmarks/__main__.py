"""``python -m benchmarks NAME [options]``: run ``benchmarks/NAME.py``'s ``main()``.

Torch's CPU threads are set first by :func:`dae_tutor.runtime.set_threads` (``$DAE_TUTOR_THREADS``,
else half the cores), as in the chapters.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

from dae_tutor import runtime


def available() -> list[str]:
    """The benchmark names: the modules of this folder with a ``main``, in alphabetical order."""
    here = Path(__file__).resolve().parent
    return sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m benchmarks NAME [options]   (python -m benchmarks NAME --help for options)")
        print("benchmarks: " + ", ".join(names))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"unknown benchmark {name!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    runtime.set_threads()
    module = importlib.import_module(f"benchmarks.{name}")
    if inspect.signature(module.main).parameters:
        module.main(rest)
    else:  # a main() that reads sys.argv itself
        sys.argv = [f"benchmarks/{name}.py", *rest]
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
