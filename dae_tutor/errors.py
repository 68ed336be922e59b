"""The package's two failures of an iterative method, raised by every loop in the package.

* :class:`DivergenceError`: training stopped because a monitored number (a loss, a gradient
  norm, the parameters) became NaN or infinite. It is a ``FloatingPointError``, so
  ``except FloatingPointError`` still catches it.
* :class:`ConvergenceError`: an iteration (Lanczos) did not reach its tolerance within its budget.
"""

from __future__ import annotations


class DivergenceError(FloatingPointError):
    """``what`` is ``value`` (NaN or ±inf) at 0-based ``step`` (of ``steps``, when the loop knows it)."""

    def __init__(
        self,
        step: int,
        value: float,
        steps: int | None,
        desc: str,
        where: str = "",
        what: str = "the loss",
    ) -> None:
        self.step, self.loss = step, value
        inside = ", ".join(
            part for part in ("" if steps is None else f"of {steps}", where.removeprefix(", ")) if part
        )
        of = f" ({inside})" if inside else ""
        super().__init__(
            f"{desc}: {what} is {value} at step {step}{of}; training stopped. "
            "Try a smaller learning rate, or check the data and the loss for NaN/inf."
        )


class ConvergenceError(RuntimeError):
    """Raised when an iterative solver has not converged within its budget (e.g. Lanczos's ``max_iter``)."""
