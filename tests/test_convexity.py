"""Tests of dae_tutor.convexity (and ``fit_probes(init=...)``) against independent truth.

* ``strong_convexity``'s closed-form Hessian against ``torch.func.hessian`` of the objective written
  out by hand; its smallest eigenvalue is the bias shift (0), whose direction the Hessian annihilates.
* ``init``: a probe started at the optimum of a previous fit stays there; a bad ``init`` is named.
* The claim on a real problem (random ReLU features of digits): the linear probe from zero and from a
  random start meets the module's bounds (objective, parameters with centred biases, probabilities),
  while a one-hidden-layer MLP probe from two seeds fails the same check (the control).
* ``same_optimum_failures`` and ``bounds`` on numbers where each part holds or fails by construction.
"""

import pytest
import torch
import torch.nn.functional as F

from dae_tutor import convexity, data, probes


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _problem(n: int = 300, d: int = 6, c: int = 4, seed: int = 0):
    gen = _gen(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randint(c, (n,), generator=gen)
    theta = torch.randn(c, d + 1, generator=gen, dtype=torch.float64)
    return x, y, theta


def test_strong_convexity_matches_the_autograd_hessian_and_the_bias_shift_is_its_null_direction():
    x, y, theta = _problem()
    l2 = 0.01

    def f(t):
        return F.cross_entropy(x @ t[:, :-1].T + t[:, -1], y) + 0.5 * l2 * t[:, :-1].square().sum()

    h = torch.func.hessian(f)(theta).reshape(theta.numel(), theta.numel())
    eig = torch.linalg.eigvalsh(h)
    mu, smallest = convexity.strong_convexity(x, y, theta, l2)
    assert smallest == pytest.approx(float(eig[0]), abs=1e-12) and abs(smallest) < 1e-12
    assert mu == pytest.approx(float(eig[1]), rel=1e-10) and mu > 0
    shift = torch.zeros_like(theta)
    shift[:, -1] = 1.0
    assert torch.allclose(h @ shift.flatten(), torch.zeros(theta.numel(), dtype=h.dtype), atol=1e-12)


def _digit_features(n: int = 1500, d: int = 24):
    x, y = data.mnist("train")
    proj = torch.randn(784, d, generator=_gen(3), dtype=torch.float64) / 28
    return torch.relu(x[:n].double() @ proj), y[:n], torch.relu(x[n : n + 300].double() @ proj)


def _theta(r: probes.ProbeResult) -> torch.Tensor:
    return torch.cat([r.weight, r.bias[:, None]], 1)


def test_two_starts_reach_one_optimum_and_an_mlp_probe_does_not():
    h, y, h_new = _digit_features()
    l2, tol = 1e-3, 1e-8
    w0 = torch.randn(10, h.shape[1], generator=_gen(5), dtype=torch.float64)
    b0 = 3 * torch.randn(10, generator=_gen(6), dtype=torch.float64)
    fits = [
        probes.fit_probes({"h": h}, y, solver="lbfgs", l2=l2, tol=tol, epochs=3000, init=init)["h"]
        for init in (None, {"h": (w0, b0)})
    ]
    xs = (h - fits[0].mean) / fits[0].scale
    values, grads = zip(*(probes.objective_and_gradient(xs, _theta(r), y, l2) for r in fits), strict=True)
    mu, _ = convexity.strong_convexity(xs, y, _theta(fits[0]), l2)
    new = (h_new - fits[0].mean) / fits[0].scale
    norm = float(torch.cat([new, torch.ones(len(new), 1, dtype=new.dtype)], 1).norm(dim=1).max())
    bound = convexity.bounds(tuple(float(g.norm()) for g in grads), mu, norm)
    probs = tuple(r.logits(h_new).softmax(1) for r in fits)
    tolerances = dict(objective_tol=bound["objective"], probability_tol=bound["probability"])
    thetas = tuple(_theta(r) for r in fits)
    assert (
        convexity.same_optimum_failures(
            values, probs, parameters=thetas, parameter_tol=bound["parameter"], **tolerances
        )
        == []
    )
    assert abs(float(fits[1].bias.mean() - fits[0].bias.mean())) > 0.1  # the bias shift is not pinned
    # the control: a one-hidden-layer probe from two seeds, each at a stationary point (max |grad| <= 1e-4)
    mlps = [convexity.mlp_probe(xs, y, hidden=16, l2=l2, seed=s) for s in (0, 1)]
    assert all(grad <= probes.LBFGS_TOL for _, _, grad in mlps)
    with torch.no_grad():
        mlp_probs = tuple(net(new).softmax(1) for net, _, _ in mlps)
    control = convexity.same_optimum_failures(tuple(v for _, v, _ in mlps), mlp_probs, **tolerances)
    assert len(control) == 2, control


def test_a_probe_started_at_its_optimum_stays_there_and_bad_init_is_named():
    h, y, _ = _digit_features(n=600, d=8)
    first = probes.fit_probes({"h": h}, y, solver="lbfgs", tol=1e-9, epochs=2000)["h"]
    again = probes.fit_probes({"h": h}, y, solver="lbfgs", tol=1e-9, init={"h": (first.weight, first.bias)})[
        "h"
    ]
    assert torch.equal(again.weight, first.weight) and again.epoch == 1  # one pass: the gradient is below tol
    w, b = first.weight, first.bias
    for bad, error in (
        ({"nope": (w, b)}, ValueError),
        ({"h": w}, TypeError),
        ({"h": (w[:, :3], b)}, ValueError),
        ({"h": (w, b[:3])}, ValueError),
        ({"h": (w[:5], b)}, ValueError),
        ({"h": (w.long(), b)}, TypeError),
        ([w, b], TypeError),
    ):
        with pytest.raises(error, match="init"):
            probes.fit_probes({"h": h}, y, init=bad)


def test_same_optimum_failures_and_bounds_by_construction():
    p = torch.full((3, 2), 0.5)
    q = p + torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.1, -0.1]])
    t = torch.zeros(2, 4)
    shifted = t.clone()
    shifted[:, -1] += 7.0  # the bias shift: the same probe
    ok = dict(objective_tol=1e-3, probability_tol=0.2, parameters=(t, shifted), parameter_tol=1e-12)
    assert convexity.same_optimum_failures((1.0, 1.0005), (p, q), **ok) == []
    moved = t.clone()
    moved[0, 0] = 1.0
    failures = convexity.same_optimum_failures(
        (1.0, 1.1), (p, q), objective_tol=1e-3, probability_tol=0.05, parameters=(t, moved), parameter_tol=0.5
    )
    assert [f.split()[1] for f in failures] == ["objectives", "probabilities", "parameters"]
    b = convexity.bounds((1e-4, 2e-4), 0.01, 5.0)
    assert b == pytest.approx({"parameter": 0.03, "objective": 4e-8 / 0.02, "probability": 0.075})
    with pytest.raises(ValueError, match="mu"):
        convexity.bounds((1e-4, 1e-4), 0.0, 1.0)
    with pytest.raises(ValueError, match="probabilities"):
        convexity.same_optimum_failures((1.0, 1.0), (p, p[:2]), objective_tol=0.1, probability_tol=0.1)
