"""dae_tutor: the helper package of *What Denoising Auto-Encoders Learn*.

Importing it touches no network and changes no process state: call
:func:`dae_tutor.runtime.set_threads` to give torch a sensible number of CPU threads
(:func:`dae_tutor.runtime.default_threads`), as the chapters' first cells do. Every module
is an attribute of the package (``dae_tutor.train``), imported on first use.

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

import importlib

from dae_tutor.runtime import device

__version__ = "0.1.0"
# the version, runtime.device, and every module of the package (each imported on first access)
__all__ = [
    "__version__",
    "ablation",
    "auxiliary",
    "baselines",
    "binary_nets",
    "cache",
    "chains",
    "checks",
    "classifiers",
    "conditioning",
    "convexity",
    "corruption",
    "curvature",
    "data",
    "densities",
    "depnets",
    "device",
    "diagnostics",
    "distributed",
    "errors",
    "evaluate",
    "full_book",
    "gan_theory",
    "importance",
    "markov",
    "nets",
    "plots",
    "probes",
    "profiles",
    "report",
    "runtime",
    "score",
    "sharpness",
    "spectral_density",
    "stores",
    "train",
    "widgets",
]


def __getattr__(name: str) -> object:
    """``dae_tutor.NAME`` for a module NAME of ``__all__`` not yet imported: import it (PEP 562)."""
    if name in __all__:
        return importlib.import_module(f"dae_tutor.{name}")
    raise AttributeError(f"module 'dae_tutor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
