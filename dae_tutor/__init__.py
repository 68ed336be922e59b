"""dae_tutor: the helper package of *What Denoising Auto-Encoders Learn*.

Importing it touches no network and sets torch's CPU threads to a sensible
default (see :func:`dae_tutor.runtime.default_threads`).

Conventions shared by every module:

* **Progress bars**: every long-running call takes ``progress=`` and is quiet by
  default; the chapters pass ``progress=True`` where a reader waits.
* **Randomness**: every stochastic call takes a ``torch.Generator`` (or a seed) and
  never draws from the global generators; the model cache never consumes global
  randomness (:func:`dae_tutor.cache.own_randomness`).
* **Losses**: a criterion ``loss_fn(output, target)`` returns either the per-example
  losses L_n, shape (N,) (``reduction="none"``, e.g. ``importance.cross_entropy``), or
  their mean (1/N) Σ_n L_n, a scalar (``reduction="mean"``, e.g. ``F.cross_entropy``).
  :func:`~dae_tutor.importance.per_example_grad_norms` and
  :func:`~dae_tutor.curvature.hessian_eigs` (with :class:`~dae_tutor.curvature.DatasetLoss`)
  take either form, named by ``reduction=``, and give the same numbers for both; the
  default is ``"none"`` in ``importance`` (its sampler reweights each L_n, thesis §7.4.1,
  so its other functions take only that form) and ``"mean"`` in ``curvature`` (torch's default).
"""

from dae_tutor import checks, profiles, runtime
from dae_tutor.runtime import device

__version__ = "0.1.0"
__all__ = ["__version__", "checks", "device", "profiles", "runtime"]

runtime.set_threads()
