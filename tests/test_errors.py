"""dae_tutor.errors: the messages of the two failures, and no loop in the package raises a bare one."""

import ast
from pathlib import Path

import pytest

import dae_tutor
from dae_tutor.errors import ConvergenceError, DivergenceError

PACKAGE = Path(dae_tutor.__file__).parent


def test_divergence_message_names_step_total_and_place():
    error = DivergenceError(3, float("nan"), 10, "fit_dae", ", line-search evaluation 2")
    assert str(error).startswith("fit_dae: the loss is nan at step 3 (of 10, line-search evaluation 2);")
    assert isinstance(error, FloatingPointError) and error.step == 3


def test_divergence_message_without_a_known_total():
    error = DivergenceError(0, float("inf"), None, "NegativeCurvature", what="a gradient norm")
    assert str(error).startswith("NegativeCurvature: a gradient norm is inf at step 0; training stopped.")


def test_convergence_error_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="max_iter"):
        raise ConvergenceError("not converged within max_iter")


def bare_raises(source: str, names: tuple[str, ...] = ("FloatingPointError", "ArithmeticError")) -> list[int]:
    """Lines of ``source`` that raise one of ``names`` directly (``raise X(...)``, ``raise X``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in names:
                lines.append(node.lineno)
    return lines


def test_the_detector_finds_a_bare_floating_point_error():
    # control: the check below would pass vacuously if the detector missed this form
    assert bare_raises("def f():\n    raise FloatingPointError('loss is nan')\n") == [2]
    assert bare_raises("raise DivergenceError(0, 1.0, 1, 'x')\n") == []


def test_no_module_raises_a_bare_floating_point_error():
    found = {
        str(path.relative_to(PACKAGE)): bare_raises(path.read_text())
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    assert {k: v for k, v in found.items() if v} == {}, "raise DivergenceError (dae_tutor.errors) instead"
