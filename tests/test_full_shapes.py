"""The full profile's shapes on the CPU: every chapter's full-size models and data pipelines, built and run.

Marker ``fullshapes``: part of the README's test command (~1.5 min on one core); alone, with the printed
arithmetic, ``python -m pytest -m fullshapes -s -n 0 tests/test_full_shapes.py``. The sizes are not typed
here: :func:`chapter_value` reads each chapter's own ``SIZES = dict(...)`` (and the other profile-dependent
constants) out of its notebook and evaluates it under the full profile, so the test follows the chapters.
Each piece builds the chapter's models with the package's own calls at those sizes (784-1500-1500 GSN,
2000-unit DAE, the GAN's 1200-1200 generator, the 4 x 2048 SVHN MLP, the MNIST convnet with 4096 probe
features, the 128-layer MLP with its 130 probes, the 3.3M-parameter LeNet) and runs a few training steps, a
few chain steps and one evaluation. Data pipelines run at full size on synthetic files in the official formats
(MNIST IDX 60,000 + 10,000; SVHN ``.mat`` of 56,000 + 26,032 images); evaluations that cost O(N²) on one core
(Parzen, full-set gradients, HVPs) run on fewer query rows.

**The 16 GB arithmetic** (printed per piece, asserted below 15 GiB: a 16 GB card less ~1 GiB for the CUDA
context and the allocator's slack): float32 is 4 bytes a number; parameters cost P × 4 × (1 + 1 gradient +
s optimiser slots), s = 2 for Adam, 1 for SGD momentum and RMSProp; the data held on the device are their
tensors' bytes, measured at the chapter's full counts; activations are what autograd saves for backward,
counted at two batch sizes by ``torch.autograd.graph.saved_tensors_hooks`` and extrapolated linearly to
the chapter's batch (activations are linear in the batch); the fixed buffers (Parzen's 2^24 float64 squared
distances, Lanczos' basis of up to ``max_iter`` + 1 vectors of d numbers) are their formulas. The measured
peak printed beside it is the CPU process's resident-set high-water mark during the piece (Linux
``/proc/self/clear_refs``), at the test's sizes. What this cannot catch: a tensor left on the CPU while the
model is on a GPU (no GPU here).

**The time estimate** (printed, not asserted): each piece times its few training steps (CPU time of this
process, one thread) and multiplies the time per step by the number of such steps its chapter runs in the
full profile (from the same ``SIZES``); the sum over pieces is the book's training loops on one CPU core.
The steps timed include warm-up (and, for ISSGD, a refresh), which over-counts; the evaluations, chains,
probes and Lanczos are left out, which under-counts: an order of magnitude for the CPU, nothing about a GPU.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from dae_tutor import (
    baselines,
    binary_nets,
    classifiers,
    curvature,
    data,
    densities,
    evaluate,
    nets,
    probes,
    profiles,
    runtime,
    score,
    train,
)
from dae_tutor import importance as imp

pytestmark = pytest.mark.fullshapes

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
BUDGET = 15 * 2**30  # bytes: a 16 GB GPU less ~1 GiB (CUDA context, allocator slack)
F32 = 4  # bytes per float32 number
ESTIMATES: dict[str, float] = {}  # piece -> seconds of its chapter's training loops at full size, here
QUERIES = 200  # Parzen query rows per split on the CPU (the chapters score 10,000: same shapes, 50x the time)


def chapter_value(stem: str, name: str, **names: object) -> object:
    """The value of the first top-level ``name = ...`` in chapter ``stem``'s code cells, in the full profile.

    ``names`` are the other variables its expression reads (besides ``profiles``)."""
    notebook = json.loads((CHAPTERS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = re.sub(r"^(\s*)[%!].*$", r"\1pass", "".join(cell["source"]), flags=re.M)  # IPython magics
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
                profiles.use("full")
                try:
                    return eval(
                        compile(ast.Expression(node.value), stem, "eval"), {"profiles": profiles, **names}
                    )
                finally:
                    profiles.use(None)
    raise LookupError(f"{stem} assigns no {name}")


def _status(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


class Ledger:
    """The memory arithmetic of one piece, row by row, and the measured resident-set peak while it ran."""

    def __init__(self, piece: str) -> None:
        self.piece, self.rows, self.work = piece, [], []
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        self.rss0, self.start = _status("VmRSS"), time.perf_counter()

    def timed(
        self, what: str, fn: Callable[[], object], done: int, full: float, unit: str = "step"
    ) -> object:
        """``fn()``, which runs ``done`` units of a training loop; its seconds per unit times the chapter's
        ``full`` units join the piece's time estimate (warm-up included: an over-estimate per unit). The
        process's CPU time, not the wall clock: on one thread it is the work, whatever shares the cores."""
        start = time.process_time()
        out = fn()
        per = (time.process_time() - start) / done
        self.work.append(
            (what, f"{per * 1e3:,.2f} ms CPU/{unit} (measured) x {full:,.0f} {unit}s", per * full)
        )
        return out

    def add(self, what: str, formula: str, nbytes: float) -> None:
        self.rows.append((what, formula, float(nbytes)))

    def params(self, what: str, model: torch.nn.Module, slots: int, optimiser: str) -> None:
        """P × 4 × (1 + 1 gradient + ``slots``) bytes: parameters, gradients, optimiser state."""
        count = sum(p.numel() for p in model.parameters())
        self.add(
            what, f"{count:,} params x 4 B x (1 + 1 grad + {slots} {optimiser})", count * F32 * (2 + slots)
        )

    def tensors(self, what: str, *tensors: torch.Tensor) -> None:
        """The bytes of tensors held on the device (data sets at the chapter's full counts)."""
        shapes = " + ".join("x".join(map(str, t.shape)) + f" {str(t.dtype)[6:]}" for t in tensors)
        self.add(what, shapes, sum(t.numel() * t.element_size() for t in tensors))

    def close(self) -> float:
        total = sum(b for *_, b in self.rows)
        peak = _status("VmHWM") - self.rss0
        print(f"\n== {self.piece}: {time.perf_counter() - self.start:.1f} s on the CPU")
        for what, formula, nbytes in self.rows:
            print(f"   {what:<44} {formula:<62} {nbytes / 2**20:10,.1f} MiB")
        print(f"   {'total (arithmetic, at full size)':<107} {total / 2**20:10,.1f} MiB")
        measured = "measured: CPU resident-set peak above the start (test sizes)"
        print(f"   {measured:<107} {peak / 2**20:10,.1f} MiB")
        for what, formula, seconds in self.work:
            print(f"   {what:<44} {formula:<62} {seconds / 3600:10,.2f} h")
        ESTIMATES[self.piece] = sum(seconds for *_, seconds in self.work)
        print(f"   {'training loops at full size on one CPU thread (estimate; loops only)':<107} "
              f"{ESTIMATES[self.piece] / 3600:10,.2f} h")  # fmt: skip
        assert total < BUDGET, (self.piece, total)
        return total


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn()`` runs (each once): activation memory.

    A saved view counts its own elements, not its whole storage (a batch sliced from a data set is the data
    set's storage, already counted with the data)."""
    saved: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.data_ptr(), t.numel()] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(saved.values())


def activations(
    ledger: Ledger, what: str, run: Callable[[int], object], batch: int, small: int = 8, copies: int = 1
) -> None:
    """Autograd's saved bytes of ``run(b)`` at b = ``small`` and 2·``small``, extrapolated linearly to
    ``batch``, times ``copies`` (2 where a backward pass holds a gradient of the same size per layer)."""
    one, two = saved_bytes(lambda: run(small)), saved_bytes(lambda: run(2 * small))
    per_row = (two - one) / small
    times = f"{copies} x " if copies > 1 else ""
    ledger.add(
        what,
        f"{times}{per_row:,.0f} B/row (measured) x batch {batch:,} + fixed",
        copies * (one + per_row * (batch - small)),
    )


def parzen_buffer(ledger: Ledger, samples: torch.Tensor) -> None:
    """evaluate.parzen_score: the samples in float64 and a chunk of 2^24 float64 squared distances."""
    ledger.add(
        "Parzen: samples (float64) + distance chunk",
        f"{samples.shape[0]:,}x{samples.shape[1]} x 8 B + 2^24 x 8 B",
        samples.numel() * 8 + evaluate.DEFAULT_MAX_ELEMENTS * 8,
    )


def idx_file(path: Path, array: np.ndarray) -> None:
    """An uncompressed uint8 IDX file (the MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture(scope="module")
def full_data(tmp_path_factory):
    """DAE_TUTOR_DATA pointing at synthetic MNIST (IDX, 60,000 + 10,000) and SVHN (.mat) at full counts."""
    folder = tmp_path_factory.mktemp("full-data")
    rng = np.random.default_rng(0)
    for stem, n in (("train", 60_000), ("t10k", 10_000)):
        idx_file(folder / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx_file(folder / f"{stem}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    train_examples = chapter_value("04_importance_sampling", "SIZES")["train_examples"]
    for name, n in (("train_32x32.mat", train_examples + data.SVHN_N_VALID), ("test_32x32.mat", 26_032)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        scipy.io.savemat(folder / name, {"X": x, "y": rng.integers(1, 11, (n, 1)).astype(np.uint8)})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAE_TUTOR_DATA", str(folder))
        yield folder
    if ESTIMATES:
        hours = sum(ESTIMATES.values()) / 3600
        print(f"\n== the book's training loops at full size on one CPU thread: {hours:,.1f} h (estimate from")
        print(
            f"   {len(ESTIMATES)} pieces' measured steps; evaluations, chains, probes, Lanczos not counted)"
        )


def test_chapter_values_are_the_full_profile(full_data):
    # the reader of the chapters' sizes: full values, not quick ones (a control: quick would give 256)
    assert chapter_value("02_gsn", "SIZES")["gsn_hidden"] == 1500
    assert chapter_value("05_probes", "SIZES")["mlp_depth"] == 128
    assert profiles.current() == "quick"  # and the test leaves the process's profile alone
    with pytest.raises(LookupError, match="NO_SUCH_NAME"):
        chapter_value("02_gsn", "NO_SUCH_NAME")


def test_ch1_spiral_and_manifold_daes(full_data):
    sizes = chapter_value("01_dae_score", "SIZES")
    ledger = Ledger("ch. 1: spiral DAE (L-BFGS, 10,000 fixed corruptions), 10-d curve DAE, MH chains")
    torch.set_default_dtype(torch.float64)  # as the chapter
    try:
        spiral = densities.Spiral().sample(10_000, generator=runtime.generator(1))
        few = dict(steps=3, seed=0, return_history=True, progress=False)  # the chapter's calls, 3 steps
        spiral_dae, history = ledger.timed(
            "spiral DAEs: L-BFGS iterations",
            lambda: train.fit_dae(
                spiral, 0.01, hidden=sizes["spiral_hidden"], optimizer="lbfgs", fixed_noise=True,
                n_noise=10_000, length_scale=0.1, **few,
            ),
            3, sizes["spiral_seeds"] * sizes["spiral_iterations"],
        )  # fmt: skip
        assert len(history) >= 1 and all(np.isfinite(history))
        points = densities.Curve10d().sample(10_000, generator=runtime.generator(7))
        curve_dae, _ = ledger.timed(
            "curve DAE: Adam steps",
            lambda: train.fit_dae(points, 0.1, hidden=sizes["curve_hidden"], lr=3e-3, batch_size=256, **few),
            3,
            sizes["curve_steps"],
        )
        with torch.no_grad():
            chain, acceptance = score.metropolis_hastings(
                lambda v: score.dae_score(curve_dae, v),
                points[:64],
                n_steps=3,
                step_size=0.1,
                generator=runtime.generator(9),
            )
            estimate = score.dae_score(spiral_dae, spiral[:2_000])
        assert chain.shape[1:] == (64, 10), chain.shape
        assert 0 <= acceptance <= 1 and torch.isfinite(estimate).all() and estimate.shape == (2_000, 2)
        ledger.params(
            "spiral DAE 2-1000-2 (float64, x2 for 8 B)", spiral_dae, 2 * 200 + 2, "L-BFGS: 100 (s, y)"
        )
        activations(
            ledger,
            "spiral: full-batch loss (10,000 corruptions)",
            lambda b: (spiral_dae(spiral[:b] + 0.01 * torch.randn(b, 2)) - spiral[:b]).pow(2).sum(),
            10_000,
        )
        ledger.params("curve DAE 10-1000-10 (float64)", curve_dae, 2, "Adam")
    finally:
        torch.set_default_dtype(torch.float32)
    ledger.close()


def test_ch2_gsn_and_dae_on_binarised_mnist(full_data):
    sizes = chapter_value("02_gsn", "SIZES")
    ledger = Ledger("ch. 2: GSN-2 784-1500-1500 and DAE 784-2000 on binarised MNIST")
    digits, _, side = data.binary_digits(sizes["dataset"])
    assert side == 28 and {s: len(v) for s, v in digits.items()} == {
        "train": 50_000,
        "valid": 10_000,
        "test": 10_000,
    }
    n_vis = side * side
    lr = chapter_value("02_gsn", "LR", N_VIS=n_vis)
    ledger.tensors("binarised MNIST train/valid/test", *digits.values())
    models = {
        "DAE + walkback": (
            binary_nets.BernoulliDAE(n_vis, sizes["dae_hidden"], input_noise=0.5),
            lambda m, x, g: m.loss(x, g, walkback_steps=5),
        ),
        "GSN-2": (
            binary_nets.DeepGSN((n_vis, sizes["gsn_hidden"], sizes["gsn_hidden"])),
            lambda m, x, g: m.walkback_loss(x, g),
        ),
    }
    per_epoch = len(digits["train"]) // sizes["batch"]
    epochs = {  # the chapter trains the DAE with and without walkback, the GSN-2 plain and scaled
        "DAE + walkback": 2 * sizes["epochs"],
        "GSN-2": sizes["epochs"] + sizes["scaled_epochs"],
    }
    for name, (model, loss_of) in models.items():
        fitted = ledger.timed(
            f"{name}: SGD steps ({epochs[name]} epochs of {per_epoch})",
            lambda model=model, loss_of=loss_of, name=name: binary_nets.fit(
                model, loss_of, digits["train"], steps=3, batch=sizes["batch"], lr=lr,
                optimizer_options={"momentum": 0.5}, epochs=1, lr_decay=0.99, desc=name,
            ),
            3, epochs[name] * per_epoch,
        )  # fmt: skip
        assert np.isfinite(fitted["history"]).all()
        ledger.params(name, model, 1, "momentum")
        activations(
            ledger,
            f"{name}: activations",
            lambda b, m=model, f=loss_of: f(m, digits["train"][:b], runtime.generator(0)),
            sizes["batch"],
        )
        with torch.no_grad():
            _, means = model.sample_chain(digits["train"][:10], 3, runtime.generator(2), return_means=True)
        assert means.shape[-1] == n_vis and means.shape[-2] == 10 and torch.isfinite(means).all()
        centres = evaluate.chain_samples(model, digits["train"][:1], 3, runtime.generator(12))[0]
        assert centres.shape == (3, n_vis)
    # the Parzen evaluation at the chapter's 10,000 centres (the training-set row's centres)
    centres = digits["train"][: sizes["parzen_samples"]]
    result = evaluate.parzen_score(centres, digits["valid"][:QUERIES], digits["test"][:QUERIES])
    assert np.isfinite(result["mean"]) and len(result["curve"]) == len(evaluate.PAPERS_SIGMA_GRID)
    parzen_buffer(ledger, centres)
    ledger.close()


def test_ch3_models_and_the_gan_parzen_protocol(full_data):
    sizes = chapter_value("03_evaluation", "SIZES")
    ledger = Ledger(
        "ch. 3: DAE, GSN-2, RBM 784-500 (PCD-1), GAN 100-1200-1200-784 / 784-512-1; 10,000-sample Parzen"
    )
    x_train, x_valid, x_test = (data.mnist(s)[0] for s in ("train", "valid", "test"))
    b_train = data.binarize(x_train, "threshold")
    ledger.tensors("MNIST train/valid/test + binarised train", x_train, x_valid, x_test, b_train)
    dae = binary_nets.BernoulliDAE(784, sizes["dae_hidden"], dtype=torch.float32)
    gsn = binary_nets.DeepGSN((784, sizes["gsn_hidden"], sizes["gsn_hidden"]), dtype=torch.float32)
    for name, model, loss_of, options in (
        (
            "DAE + walkback (Adam)",
            dae,
            lambda m, b, g: m.loss(b, g, walkback_steps=sizes["walkback"]),
            dict(batch=100, optimizer="adam", lr=1e-3),
        ),
        (
            "GSN-2 (SGD momentum)",
            gsn,
            lambda m, b, g: m.walkback_loss(b, g),
            dict(
                batch=sizes["gsn_batch"],
                optimizer="sgd",
                lr=sizes["gsn_lr"],
                optimizer_options={"momentum": 0.5},
            ),
        ),
    ):
        runs = 2 if name.startswith("DAE") else 1  # the DAE is trained with and without walkback
        steps = runs * sizes["dae_steps" if name.startswith("DAE") else "gsn_steps"]
        fitted = ledger.timed(
            f"{name}: steps",
            lambda model=model, loss_of=loss_of, name=name, options=options: binary_nets.fit(
                model, loss_of, b_train, steps=3, seed=20, desc=name, **options
            ),
            3,
            steps,
        )
        assert np.isfinite(fitted["history"]).all()
        ledger.params(name, model, 2 if options["optimizer"] == "adam" else 1, options["optimizer"])
        activations(
            ledger,
            f"{name}: activations",
            lambda b, m=model, f=loss_of: f(m, b_train[:b], runtime.generator(0)),
            options["batch"],
        )
        main, stochastic = evaluate.chain_samples(
            model, torch.zeros(1, 784), 3, runtime.generator(30), burn_in=2
        )
        assert main.shape == stochastic.shape == (3, 784)  # one long chain per model (§3.6)
    rbm = baselines.RBM(784, sizes["rbm_hidden"], dtype=torch.float32)
    monitor = ledger.timed(
        "RBM: PCD-1 steps",
        lambda: baselines.train_rbm(rbm, b_train, steps=3, k=1, persistent=True, lr=0.01, seed=21),
        3,
        sizes["rbm_steps"],
    )
    assert np.isfinite(monitor).all()
    ledger.params("RBM 784-500 (PCD chains: 100 x 784)", rbm, 1, "momentum")
    blank = torch.zeros(1, 784)  # chapter 3's one long chain per model starts from a blank image
    assert evaluate.chain_samples(rbm, blank, 3, runtime.generator(33))[0].shape == (3, 784)
    gan = baselines.GAN(
        784,
        sizes["gan_noise"],
        generator_hidden=sizes["gan_hidden"],
        discriminator_hidden=sizes["gan_d_hidden"],
        activation=sizes["gan_activation"],
        output="sigmoid",
        dtype=torch.float32,
    )
    losses = ledger.timed(
        "GAN: iterations (k = 1)",
        lambda: baselines.train_gan(gan, x_train, steps=3, batch_size=sizes["gan_batch"], lr=2e-4, seed=22),
        3,
        sizes["gan_steps"],
    )
    assert all(np.isfinite(v).all() for v in losses.values())
    ledger.params("GAN generator + discriminator", gan, 2, "Adam")
    activations(
        ledger,
        "GAN: activations (G and D on a batch)",
        lambda b: gan.discriminate(gan.generate(gan.noise(b, runtime.generator(1)))).sum(),
        sizes["gan_batch"],
    )
    with torch.no_grad():
        samples = gan.sample(sizes["n_samples"], runtime.generator(30))
    assert samples.shape == (10_000, 784) and samples.dtype == torch.float32
    result = evaluate.parzen_score(samples, x_valid[:QUERIES], x_test[:QUERIES])
    assert np.isfinite(result["mean"]) and result["sigma"] in evaluate.PAPERS_SIGMA_GRID
    parzen_buffer(ledger, samples)
    ledger.close()


def test_ch4_svhn_mlp_per_example_norms_and_issgd(full_data):
    sizes = chapter_value("04_importance_sampling", "SIZES")
    ledger = Ledger("ch. 4: permutation-invariant SVHN, MLP 3072-2048x4-10, per-example norms, ISSGD")
    assert sizes["dataset"] == "svhn"
    x_train, y_train = data.svhn("train", extra=sizes["svhn_extra"])
    x_test, y_test = data.svhn("test")
    x_train, y_train = x_train[: sizes["train_examples"]], y_train[: sizes["train_examples"]]
    assert x_train.shape == (sizes["train_examples"], 3072) and x_test.shape == (26_032, 3072)
    assert x_train.dtype == torch.float32 and 0 <= float(x_train.min()) and float(x_train.max()) <= 1
    ledger.tensors("SVHN train (50,000) + test", x_train, y_train, x_test, y_test)
    mlp_sizes = [x_train.shape[1], *[sizes["hidden"]] * sizes["depth"], 10]
    mlp = nets.MLP(mlp_sizes, "relu", seed=0)
    norms = {
        m: imp.per_example_grad_norms(mlp, imp.cross_entropy, x_train[:16], y_train[:16], method=m)
        for m in imp.METHODS
    }
    for m in imp.METHODS:
        torch.testing.assert_close(norms[m], norms["loop"], rtol=1e-4, atol=0)
    runs = 2 * sizes["seeds"]  # importance sampling and uniform, per seed
    history = ledger.timed(
        f"ISSGD: steps ({runs} runs)",
        lambda: imp.simulate_issgd(
            mlp, imp.cross_entropy, x_train[:256], y_train[:256], steps=3, lr=0.1, minibatch=32,
            importance=True, refresh_every=50, smoothing=0.1, log_every=3, generator=runtime.generator(0),
        ),
        3, runs * sizes["steps"],
    )  # fmt: skip
    refreshes = sizes["seeds"] * (sizes["steps"] // 50 + sizes["steps"] // sizes["log_every"])
    ledger.timed(
        f"refreshes and logs: norms of all {sizes['train_examples']:,} rows",
        lambda: imp.per_example_grad_norms(mlp, imp.cross_entropy, x_train[:256], y_train[:256], method="fc"),
        256, refreshes * sizes["train_examples"], unit="row",
    )  # fmt: skip
    assert history.step and np.isfinite(history.loss).all()
    with torch.no_grad():
        error = (mlp(x_test[:1_000]).argmax(1) != y_test[:1_000]).float().mean().item()
    assert 0 <= error <= 1
    ledger.params("MLP 3072-2048x4-10", mlp, 0, "plain SGD")
    activations(
        ledger,
        "fc norms on the whole train set (refresh)",
        lambda b: imp.cross_entropy(mlp(x_train[:b]), y_train[:b]).sum(),
        sizes["train_examples"],
        copies=2,  # Prop. 3's norms hold every layer's input X_l and output gradient δ_l for all N rows
    )
    ledger.close()


def test_ch5_convnet_probes_and_the_128_layer_mlp(full_data):
    sizes = chapter_value("05_probes", "SIZES")
    ledger = Ledger("ch. 5: MNIST convnet with 4096-feature probes; 128-layer MLP, 130 probes; small ResNet")
    x_train, y_train = data.mnist("train")
    x_valid, y_valid = data.mnist("valid")
    ledger.tensors("MNIST train/valid", x_train, y_train, x_valid, y_valid)
    few = (x_train[:256], y_train[:256])
    reduce = probes.RandomSubset(sizes["features"], seed=0)
    layers = classifiers.MnistConvNet.probe_layers
    convnet, history, readings = classifiers.fit_with_readings(
        lambda: classifiers.MnistConvNet(seed=0),
        *few,
        lambda m: probes.layer_readings(
            m, layers, few, (x_valid[:128], y_valid[:128]), reduce=reduce, patience=1
        ),
        snapshot_steps=[0, 2],
        epochs=1,
        batch_size=64,
        lr=1e-3,
        seed=0,
    )
    assert len(readings[2]["valid"]) == len(layers) and np.isfinite(history).all()
    per_epoch = {b: len(y_train) // b for b in (32, 64)}
    ledger.timed(
        "convnet: Adam steps",
        lambda: classifiers.fit_classifier(convnet, *few, epochs=1, batch_size=64, lr=1e-3),
        len(few[1]) // 64,
        sizes["convnet_epochs"] * per_epoch[64],
    )
    ledger.params("MnistConvNet", convnet, 2, "Adam")
    activations(
        ledger, "convnet: activations", lambda b: F.cross_entropy(convnet(x_train[:b]), y_train[:b]), 64
    )
    features = probes.capture(convnet.eval(), x_train[:64], layers, reduce=reduce)
    width = sum(min(f.shape[1], sizes["features"]) for f in features.values())
    ledger.add(
        "probe features, every layer, train/valid/test",
        f"{width:,} features x 70,000 images x 4 B",
        width * (len(y_train) + 2 * len(y_valid)) * F32,  # train, valid and test (10,000 like valid)
    )
    depth = sizes["mlp_depth"]
    skip_to = depth - sizes["mlp_after_merge"]
    deep = classifiers.DeepMLP(depth, 128, skip_to=skip_to, seed=1)
    assert len(deep.probe_layers) == depth + 2
    ledger.timed(
        "deep MLPs: Adam steps (no skip, skip, middle skip)",
        lambda: classifiers.fit_classifier(deep, *few, epochs=1, batch_size=32, lr=1e-3, seed=1),
        len(few[1]) // 32,
        3 * sizes["mlp_epochs"] * per_epoch[32],
    )
    read = probes.layer_readings(
        deep.eval(), deep.probe_layers, few, (x_valid[:128], y_valid[:128]), patience=1
    )
    assert len(read["valid"]) == depth + 2
    ledger.params(f"DeepMLP {depth}x128, skip h1 -> h{skip_to}", deep, 2, "Adam")
    activations(
        ledger, "deep MLP: activations", lambda b: F.cross_entropy(deep(x_train[:b]), y_train[:b]), 32
    )
    ledger.add(
        "its probe features (4,000 images)",
        f"{(depth + 1) * 128 + 10:,} x 4,000 x 4 B",
        ((depth + 1) * 128 + 10) * 4_000 * F32,
    )
    resnet = classifiers.SmallResNet(channels=(8, 16, 32), blocks=2, seed=0)
    ledger.timed(
        "ResNet: Adam steps",
        lambda: classifiers.fit_classifier(resnet, *few, epochs=1, batch_size=64, lr=2e-3),
        len(few[1]) // 64,
        sizes["resnet_epochs"] * per_epoch[64],
    )
    classifiers.recompute_batchnorm(resnet, few[0])
    res = probes.layer_readings(
        resnet.eval(), resnet.probe_layers, few, (x_valid[:128], y_valid[:128]), reduce=probes.Pool2d(1)
    )
    assert len(res["valid"]) == len(resnet.probe_layers)
    ledger.params("SmallResNet", resnet, 2, "Adam")
    ledger.close()


def test_ch6_lenet_hessian_products_and_lanczos(full_data):
    sizes = chapter_value("06_negative_curvature", "SIZES")
    checkpoints = chapter_value("06_negative_curvature", "CHECKPOINTS")
    ledger = Ledger("ch. 6: LeNet 32-64-1024 on 28x28 MNIST (3.3M parameters), HVPs, Lanczos")
    images, labels = data.mnist("train")
    side = sizes["side"]
    train_x = F.adaptive_avg_pool2d(images.reshape(-1, 1, 28, 28), side)
    ledger.tensors("MNIST train (50,000 x 1 x 28 x 28)", train_x, labels)
    net = classifiers.lenet(sizes["channels"], sizes["hidden"], side, seed=0)
    d = sum(p.numel() for p in net.parameters())
    assert 3_000_000 < d < 3_600_000, d  # the thesis's 3.3M (§6.3)
    saved, losses = ledger.timed(
        "LeNet: RMSProp steps",
        lambda: train.classifier_checkpoints(net, train_x, labels, steps=3, save_at=[0, 3], seed=0),
        3,
        sizes["steps"],
    )
    # the race of §6.7: RMSProp and app. 11.E, race_steps each per seed, at the RMSProp steps' rate (app.
    # 11.E's Lanczos refreshes and line searches come on top: an under-estimate)
    _, formula, seconds = ledger.work[-1]
    runs = 2 * sizes["race_seeds"] * sizes["race_steps"]
    ledger.work.append(("the race of §6.7 (2 x seeds x steps)", f"{formula.split(' x ')[0]} x {runs:,} steps",
                        seconds / sizes["steps"] * runs))  # fmt: skip
    assert len(saved) == 2 and saved[0].shape == (d,) and torch.isfinite(losses).all()
    assert checkpoints[-1] == sizes["steps"]
    ledger.params("LeNet", net, 1, "RMSProp")
    activations(ledger, "training activations", lambda b: F.cross_entropy(net(train_x[:b]), labels[:b]), 32)
    net.eval()
    hess = curvature.DatasetLoss(net, F.cross_entropy, (train_x[:64], labels[:64]))
    u = torch.randn(d, generator=runtime.generator(3))
    hu = hess.hvp(saved[-1], u)
    assert hu.shape == (d,) and hu.dtype == torch.float32 and torch.isfinite(hu).all()
    assert torch.isfinite(hess.gradient(saved[-1])).all()
    pairs = curvature.lanczos(
        lambda v: hess.hvp(saved[-1], v),
        d,
        1,
        "LA",
        tol=1.0,
        max_iter=3,
        dtype=torch.float32,
        generator=runtime.generator(4),
    )
    assert pairs.eigenvalues.shape == (1,)
    n_hess = int(sizes["hessian_fraction"] * len(labels))

    def double_backward_hvp(b: int) -> None:
        # torch.func (the package's forward-over-reverse HVP) refuses saved-tensor hooks: the activations of
        # the equivalent double-backward HVP are counted instead (a forward, a backward kept for a second one)
        loss = F.cross_entropy(net(train_x[:b]), labels[:b])
        grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
        sum((g * torch.randn_like(g)).sum() for g in grads).backward()

    activations(
        ledger,
        f"HVP on the {sizes['hessian_fraction']:.0%} subset ({n_hess:,} images)",
        double_backward_hvp,
        n_hess,
    )
    max_iter = min(d, 20 * sizes["la"] + 500)  # lanczos' default: the basis Q grows to max_iter + 1 vectors
    ledger.add(
        f"Lanczos basis, LA({sizes['la']}), worst case",
        f"({max_iter} + 1) x {d:,} x 4 B",
        (max_iter + 1) * d * F32,
    )
    ledger.close()
