"""Tests of dae_tutor.ablation against independent truth.

* ``replaced`` and ``ablation_errors`` against the forward pass written out by hand with the
  branch set to the constant (zero, or its mean over the reference inputs computed directly).
* ``dead_segment_failures`` on numbers where each part of the claim holds or fails by construction.
* The claim itself on trained nets (thesis §9.5.1): a 40-layer MLP under PyTorch's default
  initialisation with a skip h1 → h32 holds it; three controls fail it: the same net without the skip
  (it does not train); the skip net under orthogonal initialisation, whose bypassed segment stays
  readable by a probe; and the orthogonal net without the skip, whose layer 32 is the only path, so
  that ablating it changes the error.
"""

import pytest
import torch

from dae_tutor import ablation, classifiers, data, probes


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _by_hand(model: classifiers.DeepMLP, x: torch.Tensor, branch: torch.Tensor | None) -> torch.Tensor:
    """DeepMLP's forward written out, with what the bypassed segment hands to the merge set to ``branch``."""
    h, skip = x, None
    for k, layer in enumerate(model.layers, start=1):
        h = torch.relu(layer(h))
        if k == model.skip_to:
            h = (h if branch is None else branch.expand_as(h)) + skip
        if k == model.skip_from:
            skip = h
    return model.logits(h)


def test_replaced_and_ablation_errors_match_the_forward_pass_by_hand():
    model = classifiers.DeepMLP(6, 8, n_in=5, skip_to=4, seed=3).eval()
    x, ref = torch.randn(200, 5, generator=_gen(1)), torch.randn(300, 5, generator=_gen(2))
    with torch.no_grad():
        y = _by_hand(model, x, None).argmax(1)  # labels the intact model gets right...
        y[:50] = (y[:50] + 1) % 10  # ...but for the first 50
        intact = model(x)
        h = ref
        for layer in model.layers[:4]:
            h = torch.relu(layer(h))
        mean = h.mean(0)  # the branch's mean over the reference inputs, computed directly
        truth = {
            "intact": (_by_hand(model, x, None).argmax(1) != y).double().mean().item(),
            "zero": (_by_hand(model, x, torch.zeros(8)).argmax(1) != y).double().mean().item(),
            "mean": (_by_hand(model, x, mean).argmax(1) != y).double().mean().item(),
        }
        with ablation.replaced(model, "branch", torch.zeros(8)):
            assert torch.allclose(model(x), _by_hand(model, x, torch.zeros(8)))
        assert torch.equal(model(x), intact)  # the hook is gone
    got = ablation.ablation_errors(model, "branch", x, y, ref, batch_size=64)
    assert got.keys() == truth.keys()
    for name in truth:
        assert got[name] == pytest.approx(truth[name], abs=1e-12), name
    assert got["intact"] == pytest.approx(0.25)


def test_ablation_bad_inputs_raise():
    model = classifiers.DeepMLP(3, 4, n_in=5, skip_to=2)
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="layer"):
        ablation.ablation_errors(model, "nope", x, y, x)
    with pytest.raises(TypeError, match="layer"):
        ablation.ablation_errors(model, 3, x, y, x)
    with pytest.raises(TypeError, match="model"):
        ablation.ablation_errors("m", "branch", x, y, x)
    with pytest.raises(ValueError, match="reference"):
        ablation.ablation_errors(model, "branch", x, y, torch.randn(4, 6))
    with pytest.raises(ValueError, match="y"):
        ablation.ablation_errors(model, "branch", x, y[:2], x)
    with pytest.raises(TypeError, match="value"):
        with ablation.replaced(model, "branch", 0.0):
            pass


GOOD = dict(
    with_skip={"model": 0.2},
    without_skip_error=0.9,
    ablation={"intact": 0.2, "zero": 0.205, "mean": 0.2},
    bypassed=[0.88, 0.9],
    chance=0.89,
)


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({}, None),
        (dict(with_skip={"model": 0.7}), "does not make it train"),
        (dict(bypassed=[0.88, 0.5]), "readable"),
        (dict(ablation={"intact": 0.2, "zero": 0.5, "mean": 0.2}), "zero ablation"),
        (dict(ablation={"intact": 0.2, "zero": 0.2, "mean": 0.25}), "mean ablation"),
    ],
)
def test_dead_segment_failures_names_each_failed_part(change, part):
    failures = ablation.dead_segment_failures(**{**GOOD, **change})
    if part is None:
        assert failures == []
    else:
        assert len(failures) == 1 and part in failures[0], failures
    with pytest.raises(ValueError, match="chance"):
        ablation.dead_segment_failures(**{**GOOD, "chance": 1.5})
    with pytest.raises(TypeError, match="bypassed"):
        ablation.dead_segment_failures(**{**GOOD, "bypassed": []})


def _trained(skip_to: int | None, init: str, x, y, xv, yv):
    """DeepMLP(40, 128) trained 4 epochs, with or without the skip h1 → h32, and the probe of h31 (the end
    of the bypassed segment) at initialisation and after training."""
    steps = 4 * (len(y) // 32)
    model, _, readings = classifiers.fit_with_readings(
        lambda: classifiers.DeepMLP(40, 128, skip_to=skip_to, init=init, seed=1),
        x,
        y,
        lambda m: probes.layer_readings(m, ["h31"], (x, y), (xv, yv), patience=3),
        snapshot_steps=[0, steps],
        epochs=4,
        batch_size=32,
        lr=1e-3,
        seed=1,
    )
    return model.eval(), readings[steps]["model_valid"], [readings[s]["valid"][0] for s in (0, steps)]


def test_a_long_skip_leaves_a_dead_segment_and_the_controls_fail_the_claim():
    flush = torch.set_flush_denormal(True)  # the dead segment's subnormal floats are slow otherwise
    try:
        (x, y), (xv, yv) = data.mnist("train"), data.mnist("valid")
        x, y = x[:2000], y[:2000]
        chance = 1 - torch.bincount(yv).max().item() / len(yv)
        nets = {
            (skip, init): _trained(skip, init, x, y, xv, yv)
            for skip in (32, None)
            for init in ("default", "orthogonal")
        }
    finally:
        torch.set_flush_denormal(False)
    assert flush
    plain_error = nets[None, "default"][1]

    def claim(key):
        model, error, bypassed = nets[key]
        ablated = ablation.ablation_errors(model, "branch" if key[0] else "h32", xv, yv, x)
        return ablation.dead_segment_failures({"model": error}, plain_error, ablated, bypassed, chance=chance)

    assert claim((32, "default")) == []
    # control 1: the same net without the skip does not train
    failures = claim((None, "default"))
    assert any("does not make it train" in f for f in failures), failures
    # control 2: under orthogonal initialisation the bypassed segment is alive, readable by a probe
    failures = claim((32, "orthogonal"))
    assert any("readable" in f for f in failures), failures
    # control 3: without the skip, the orthogonal net's layer 32 is the only path: ablating it is felt
    failures = claim((None, "orthogonal"))
    assert any("ablation changes the error" in f for f in failures), failures
