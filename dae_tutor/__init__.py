"""dae_tutor: the helper package of *What Denoising Auto-Encoders Learn*.

Importing it touches no network and sets torch's CPU threads to a sensible
default (see :func:`dae_tutor.runtime.default_threads`).
"""

from dae_tutor import checks, profiles, runtime
from dae_tutor.runtime import device

__version__ = "0.1.0"
__all__ = ["__version__", "checks", "device", "profiles", "runtime"]

runtime.set_threads()
