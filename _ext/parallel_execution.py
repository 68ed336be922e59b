"""Sphinx extension: execute the book's outdated notebooks in parallel before Sphinx reads them.

myst-nb's ``cache`` mode executes one notebook at a time, as Sphinx reads it. The chapters
run on one torch thread each (``dae_tutor.runtime.default_threads``: half the cores), so
on a 2-core machine half the CPU sat idle for the whole build. Before reading, this
extension executes every outdated notebook that is not in myst-nb's jupyter-cache yet,
``jobs`` at a time in separate processes, exactly as myst-nb would (same cwd, timeout and
``allow_errors``), and stores the successful ones in that cache; myst-nb then finds them
there ("Using cached notebook"). A notebook that fails here is not stored: myst-nb runs it
again and reports the failure as usual, so a raising cell still fails the build.

``jobs`` is ``$DAE_TUTOR_BOOK_JOBS`` if set, else the cores divided by the chapters'
thread count (``dae_tutor.runtime.default_threads``); 1 means no parallel stage.
"""

from __future__ import annotations

import fnmatch
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

JOBS_ENV_VAR = "DAE_TUTOR_BOOK_JOBS"
logger = logging.getLogger(__name__)


def positive_env_int(name: str) -> int | None:
    """The positive integer in ``$name``, ``None`` when unset; ``ValueError`` otherwise."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def jobs() -> int:
    """How many notebooks execute at once (see the module docstring)."""
    explicit = positive_env_int(JOBS_ENV_VAR)
    if explicit is not None:
        return explicit
    from dae_tutor import runtime  # the chapters' own thread count ($DAE_TUTOR_THREADS, else half the cores)

    return max(1, (os.cpu_count() or 1) // runtime.default_threads())


def execute(path: str, timeout: int, allow_errors: bool) -> tuple[str, object, float, str | None]:
    """Run one notebook in its own folder (myst-nb's call); return it, its seconds and any error."""
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(
        notebook, cwd=str(Path(path).parent), allow_errors=allow_errors, timeout=timeout, meta_override=True
    )
    return path, notebook, result.time, None if result.err is None else result.exc_string


def outdated_notebooks(app: Sphinx, env: BuildEnvironment, docnames: list[str]) -> list[str]:
    """The ``.ipynb`` sources among ``docnames`` that myst-nb would execute and has not cached."""
    from jupyter_cache import get_cache

    config = env.mystnb_config  # myst-nb's resolved settings (its cache path is set by now)
    cache = get_cache(config.execution_cache_path)
    excluded = config.execution_excludepatterns
    paths = []
    for docname in docnames:
        path = Path(env.doc2path(docname))
        relative = path.relative_to(app.srcdir).as_posix()
        if path.suffix != ".ipynb" or any(fnmatch.fnmatch(relative, pattern) for pattern in excluded):
            continue
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            paths.append(str(path))
    return paths


def execute_in_parallel(app: Sphinx, env: BuildEnvironment, docnames: list[str]) -> None:
    """``env-before-read-docs``: execute and cache the outdated notebooks, ``jobs()`` at a time."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    config, workers = env.mystnb_config, jobs()
    if config.execution_mode != "cache" or workers == 1:
        return
    paths = outdated_notebooks(app, env, docnames)
    if len(paths) < 2:
        return
    cache = get_cache(config.execution_cache_path)
    timeout, allow_errors = config.execution_timeout, config.execution_allow_errors
    workers = min(workers, len(paths))
    logger.info(f"Executing {len(paths)} notebooks, {workers} at a time ({JOBS_ENV_VAR} to change)")
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # no fork of Sphinx's threads and state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(execute, path, timeout, allow_errors) for path in paths]
        for done, future in enumerate(as_completed(futures), start=1):
            path, notebook, seconds, error = future.result()
            name = Path(path).relative_to(app.srcdir).as_posix()
            if error is not None:
                logger.info(f"[{done}/{len(paths)}] {name} failed; myst-nb will run it again and report it")
                continue
            record = cache.add_nb_to_project(path)
            cache.cache_notebook_bundle(
                CacheBundleIn(notebook, record.uri, data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            logger.info(f"[{done}/{len(paths)}] {name} executed in {seconds:.0f} s")
    logger.info(f"Parallel execution took {time.perf_counter() - started:.0f} s")


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("env-before-read-docs", execute_in_parallel)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
