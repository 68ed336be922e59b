"""Tests of dae_tutor.classifiers: the skip connection, orthogonal init, snapshots, shapes and seeds."""

import pytest
import torch

from dae_tutor import classifiers, probes


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_deep_mlp_skip_connection_adds_the_first_layer():
    model = classifiers.DeepMLP(6, 8, n_in=5, skip_to=4, seed=0).double()
    x = torch.randn(7, 5, generator=_gen(5), dtype=torch.float64)
    f = probes.capture(model, x, model.probe_layers)
    direct = torch.relu(model.layers[3](f["h3"])) + f["h1"]
    assert torch.allclose(f["h4"], direct, atol=1e-12, rtol=0)
    assert torch.allclose(f["h5"], torch.relu(model.layers[4](f["h4"])), atol=1e-12, rtol=0)


def test_deep_mlp_orthogonal_init():
    model = classifiers.DeepMLP(4, 8, n_in=5, init="orthogonal", seed=0).double()
    close = dict(rtol=0, atol=1e-6)  # drawn in float32: entries rounded to ~1e-7 relative
    for layer in model.layers[1:]:  # square 8x8: W Wᵀ = gain² I = 2I
        torch.testing.assert_close(
            layer.weight @ layer.weight.T, 2 * torch.eye(8, dtype=torch.float64), **close
        )
        assert not layer.bias.any()
    first = model.layers[0].weight  # 8x5: orthonormal columns, WᵀW = 2I
    torch.testing.assert_close(first.T @ first, 2 * torch.eye(5, dtype=torch.float64), **close)
    again = classifiers.DeepMLP(4, 8, n_in=5, init="orthogonal", seed=0).double()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))
    with pytest.raises(ValueError, match="init"):
        classifiers.DeepMLP(4, 8, init="xavier")


def test_fit_classifier_snapshots_and_history():
    model = classifiers.DeepMLP(3, 16, n_in=20, seed=0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(100, 20, generator=_gen(6))
    y = torch.arange(100) % 10
    history, snaps = classifiers.fit_classifier(
        model, x, y, epochs=2, batch_size=30, snapshot_steps=[0, 3, 6], progress=False
    )
    assert len(history) == 2 * (100 // 30)  # the last partial batch of each epoch is dropped
    assert sorted(snaps) == [0, 3, 6]
    assert all(torch.equal(snaps[0][k], initial[k]) for k in initial)
    assert all(torch.equal(snaps[6][k], v) for k, v in model.state_dict().items())
    assert not torch.equal(snaps[3]["layers.0.weight"], initial["layers.0.weight"])
    with pytest.raises(ValueError, match="snapshot_steps"):
        classifiers.fit_classifier(model, x, y, epochs=1, batch_size=30, snapshot_steps=[4], progress=False)
    with pytest.raises(ValueError, match="labels"):
        classifiers.fit_classifier(model, x, y[:50], epochs=1, progress=False)


def test_classifier_shapes_and_seeds():
    x = torch.rand(3, 784, generator=_gen(7))
    for make in (
        lambda s: classifiers.MnistConvNet(channels=(4, 8), hidden=16, seed=s),
        lambda s: classifiers.SmallResNet(channels=(4, 8, 8), blocks=1, seed=s),
        lambda s: classifiers.DeepMLP(4, 8, seed=s),
    ):
        a, b, c = make(0).eval(), make(0).eval(), make(1).eval()
        assert a(x).shape == (3, 10)
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))  # seeded, and the seed matters
        assert set(a.probe_layers) <= dict(a.named_modules()).keys()
    with pytest.raises(ValueError, match="784"):
        classifiers.MnistConvNet(seed=0)(torch.rand(3, 100))
    with pytest.raises(ValueError, match="skip_from < skip_to"):
        classifiers.DeepMLP(4, 8, skip_to=5)


def test_fit_with_readings_reads_the_weights_of_each_moment():
    gen = _gen(2)
    x, y = torch.randn(40, 6, generator=gen), torch.randint(10, (40,), generator=gen)
    make = lambda: classifiers.DeepMLP(2, 8, n_in=6, seed=3)  # noqa: E731
    read = lambda m: [p.detach().clone() for p in m.parameters()]  # noqa: E731
    options = dict(epochs=2, batch_size=10, lr=1e-2, seed=4)
    steps = [0, 3, 8]
    model, history, readings = classifiers.fit_with_readings(
        make, x, y, read, snapshot_steps=steps, **options
    )
    assert len(history) == 8 and list(readings) == [0, 3, 8]
    assert all(map(torch.equal, readings[0], read(make())))  # before training: the fresh model
    assert all(map(torch.equal, readings[8], read(model)))  # after all 8 steps: the trained model
    again = make()  # a second run of fit_classifier for 3 steps (only its first 3 steps matter)
    _, snaps = classifiers.fit_classifier(again, x, y, snapshot_steps=[3], **options)
    again.load_state_dict(snaps[3])
    assert all(map(torch.equal, readings[3], read(again)))
    assert not all(map(torch.equal, readings[3], readings[0]))  # control: training moved the weights
    with pytest.raises(TypeError, match="read"):
        classifiers.fit_with_readings(make, x, y, None, snapshot_steps=[0], **options)


@pytest.mark.parametrize("side", [14, 16, 28])
def test_lenet_shapes_parameter_count_and_seeding(side):
    net = classifiers.lenet((3, 5), 7, side, seed=2)
    s = side // 4  # two floor-halvings
    count = (25 * 3 + 3) + (25 * 3 * 5 + 5) + (5 * s * s * 7 + 7) + (7 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == count
    assert net(torch.zeros(4, 1, side, side)).shape == (4, 10)
    state = torch.random.get_rng_state()
    again = classifiers.lenet((3, 5), 7, side, seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is not advanced
    assert all(map(torch.equal, net.parameters(), again.parameters()))
    torch.manual_seed(2)  # the initialisation is torch's default one drawn after manual_seed(seed)
    assert torch.equal(torch.nn.Conv2d(1, 3, 5, padding=2).weight, net[0].weight)
    other = classifiers.lenet((3, 5), 7, side, seed=3)
    assert not torch.equal(other[0].weight, net[0].weight)
    with pytest.raises(ValueError, match="side"):
        classifiers.lenet((3, 5), 7, 3)


def test_recompute_batchnorm_sets_the_statistics_of_the_data_under_the_final_weights():
    """Precise BN (ch. 5's ResNet anomaly): the stem's running mean and variance become the average of the
    batch means and unbiased batch variances of its convolution's output over x, computed here directly.
    The control: stale statistics (those left by other data) differ, and change the model's outputs."""
    model = classifiers.SmallResNet((4, 4, 4), 1, seed=0)
    x = torch.rand(60, 784, generator=_gen(3))
    model.train()
    with torch.no_grad():
        model(3 * torch.rand(20, 784, generator=_gen(4)))  # stale: statistics of other inputs
    stale = model.stem[1].running_mean.clone()
    stale_out = model.eval()(x)
    conv = probes.capture(model, x, ["stem.0"])["stem.0"].reshape(60, 4, -1)
    batches = conv.split(20)
    mean = torch.stack([b.mean((0, 2)) for b in batches]).mean(0)
    var = torch.stack([b.transpose(0, 1).reshape(4, -1).var(1) for b in batches]).mean(0)
    assert classifiers.recompute_batchnorm(model, x, batch_size=20) is model and not model.training
    torch.testing.assert_close(model.stem[1].running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.stem[1].running_var, var, rtol=1e-5, atol=1e-6)
    assert model.stem[1].momentum == 0.1
    assert not torch.allclose(stale, mean, atol=1e-3)
    assert not torch.allclose(stale_out, model(x), atol=1e-3)
    with pytest.raises(ValueError, match="batch-norm"):
        classifiers.recompute_batchnorm(classifiers.DeepMLP(2, 4, n_in=3), torch.rand(4, 3))
    with pytest.raises(TypeError, match="model"):
        classifiers.recompute_batchnorm("m", x)
