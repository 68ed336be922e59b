"""Test-wide settings: the quick profile, one CPU thread, no downloads.

Set at import, before nbval starts any kernel, so the chapters' kernels inherit them. The
kernels keep their inline plotting backend: checked cells that also draw must reproduce their figure.
"""

import os

os.environ["DAE_TUTOR_PROFILE"] = "quick"
os.environ.setdefault("DAE_TUTOR_THREADS", "1")
# Tests never download: MNIST comes from DAE_TUTOR_DATA or the bundled subset.
os.environ.setdefault("DAE_TUTOR_MNIST_MIRRORS", "")
