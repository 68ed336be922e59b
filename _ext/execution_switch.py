"""Sphinx extension: choose notebook execution from the environment.

``DAE_TUTOR_BOOK_EXECUTE`` (``off``, ``cache``, ``force`` or ``auto``) overrides
``execute.execute_notebooks`` of ``_config.yml``. CI sets it to ``off``: nbval has
already executed and checked every chapter once, so the build renders the
committed outputs and no notebook runs twice.
"""

from __future__ import annotations

import os

from sphinx.application import Sphinx
from sphinx.config import Config

ENV_VAR = "DAE_TUTOR_BOOK_EXECUTE"
MODES = ("off", "cache", "force", "auto")


def apply_switch(app: Sphinx, config: Config) -> None:
    mode = os.environ.get(ENV_VAR, "").strip()
    if not mode:
        return
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR} must be one of {list(MODES)}, got {mode!r}")
    config.nb_execution_mode = mode


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("config-inited", apply_switch, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
