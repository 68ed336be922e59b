"""Test-wide settings: the quick profile, a headless plotting backend, one CPU thread, no downloads.

Set at import, before nbval starts any kernel, so the chapters' kernels inherit them.
"""

import os

os.environ["DAE_TUTOR_PROFILE"] = "quick"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DAE_TUTOR_THREADS", "1")
# Tests never download: MNIST comes from DAE_TUTOR_DATA or the bundled subset.
os.environ.setdefault("DAE_TUTOR_MNIST_MIRRORS", "")
