"""dae_tutor: the helper package of *What Denoising Auto-Encoders Learn*.

Importing it touches no network and sets torch's CPU threads to a sensible
default (see :func:`dae_tutor.runtime.default_threads`).

Conventions shared by every module:

* **Progress bars**: every long-running call takes ``progress=`` and is quiet by
  default; the chapters pass ``progress=True`` where a reader waits.
* **Randomness**: every stochastic call takes a ``torch.Generator`` (or a seed) and
  never draws from the global generators; the model cache never consumes global
  randomness (:func:`dae_tutor.cache.own_randomness`).
"""

from dae_tutor import checks, profiles, runtime
from dae_tutor.runtime import device

__version__ = "0.1.0"
__all__ = ["__version__", "checks", "device", "profiles", "runtime"]

runtime.set_threads()
