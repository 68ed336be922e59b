"""Probes on every layer of the MNIST convnet: ``probes.fit_probes`` (all layers at once) versus
scikit-learn's ``LogisticRegression`` (lbfgs) fitted layer by layer.

The model is the thesis's §9.3.5 convnet (:class:`dae_tutor.classifiers.MnistConvNet`) after one
epoch of Adam on ``mnist("train")``; its 10 probe layers (input … logits) are captured on 10,000
images and reduced to at most ``--features`` columns each by a fixed random subset (§9.3.4).
Both sides fit the same problem, mean cross-entropy + (l2/2)‖W‖² on standardised features
(scikit-learn: ``C = 1/(n·l2)``). ``fit_probes`` runs in two modes: ``solver="lbfgs"`` (full-batch
L-BFGS per layer, all layers in lockstep) and the chapter's default, minibatch Adam early-stopped on a
validation split. Both lbfgs solvers stop on the same test, max |∇f| <= ``--tol`` (scikit-learn's
default, 1e-4). The table gives the accuracies per layer on the probe test split, and how far
``solver="lbfgs"`` ends from scikit-learn's training objective.

Where the images come from: with full MNIST, the model trains on ``mnist("train")``, the probes on
its first 10,000 images, with ``mnist("valid")`` and the official test set as validation and test
splits. Without it (the bundled 5,000-image subset only), the probes train on the official
10,000-image test set (``mnist("test")`` read from ``$DAE_TUTOR_DATA``, e.g.
``DAE_TUTOR_DATA=../shared/data/mnist``), validate on the subset's 500 "valid" images and are tested
on its other 4,500 ("train" + "test"; none of the subset's images is in the official test set,
``data/README.md``), so that 0.5 points is 22 images. The model trains on the subset's "train"
images (one epoch): it has seen 4,000 of the probe test images, the probes have not, and both
solvers are scored on the same ones.

    DAE_TUTOR_DATA=../shared/data/mnist python -m benchmarks probes
    python -m benchmarks probes --features 512 --device cuda

The claim is the ratio (scikit-learn time / fit_probes time), measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from dae_tutor import classifiers, data, probes, runtime

try:
    from benchmarks.ensemble import _clock, device_name
except ImportError:  # run as a script
    from ensemble import _clock, device_name


def probe_data(n: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """(model-training, probe-train, probe-valid, probe-test) image/label pairs; probe-train has n images."""
    model_train = data.mnist("train")
    if len(model_train[1]) >= n:
        return model_train, (model_train[0][:n], model_train[1][:n]), data.mnist("valid"), data.mnist("test")
    official = data.mnist("test")
    if len(official[1]) < n:
        raise SystemExit(
            f"need {n:,} MNIST images for the probes, found {len(official[1]):,}: point DAE_TUTOR_DATA at a "
            "folder with the official MNIST files (e.g. DAE_TUTOR_DATA=../shared/data/mnist)"
        )
    # full training set missing: mnist("train"/"valid") are the bundled subset's; test the probes on the
    # subset's images outside "valid" (4,500), which the official test set does not contain
    held_out = [bundled(split) for split in ("train", "test")]
    test = (torch.cat([x for x, _ in held_out]), torch.cat([y for _, y in held_out]))
    return model_train, (official[0][:n], official[1][:n]), data.mnist("valid"), test


def bundled(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``split`` of the bundled 5,000-image subset, read directly (``mnist("test")`` is the official set)."""
    stem = data.BUNDLED_DIR / data.BUNDLED_STEM
    images = data.read_idx(f"{stem}-images-idx3-ubyte.gz")[data.BUNDLED_SPLITS[split]]
    labels = data.read_idx(f"{stem}-labels-idx1-ubyte.gz")[data.BUNDLED_SPLITS[split]]
    pixels = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255)
    return pixels, torch.from_numpy(labels.astype(np.int64))


def sklearn_fit(h_train: np.ndarray, y: np.ndarray, l2: float, tol: float) -> LogisticRegression:
    """scikit-learn's lbfgs on standardised features, with as many BLAS threads as torch has."""
    with warnings.catch_warnings(), threadpool_limits(limits=torch.get_num_threads()):
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = LogisticRegression(C=1 / (len(y) * l2), solver="lbfgs", max_iter=20_000, tol=tol)
        return fit.fit(h_train, y)


def on_standardisation(result: probes.ProbeResult, mean: torch.Tensor, std: torch.Tensor) -> tuple:
    """(W, b) of ``result``'s classifier of h, W (h - m1)/s1 + b, as a classifier of (h - mean)/std."""
    w = result.weight.double().cpu() * std / result.scale.double().cpu()
    b = result.bias.double().cpu() + w @ ((mean - result.mean.double().cpu()) / std)
    return w.numpy(), b.numpy()


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks probes", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="probe training images (default 10000)")
    parser.add_argument("--features", type=int, default=1024, help="features kept per layer (default 1024)")
    parser.add_argument(
        "--l2", type=float, default=1e-3, help="L2 penalty on the probe weights (default 1e-3)"
    )
    parser.add_argument(
        "--tols",
        default="1e-4,1e-5,3e-6,1e-6",
        help="both lbfgs solvers run at each: stop at max |grad| <= tol (default 1e-4,1e-5,3e-6,1e-6)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: dae_tutor.device())")
    args = parser.parse_args(argv)
    dev = runtime.device() if args.device == "auto" else torch.device(args.device)
    tols = sorted((float(t) for t in args.tols.split(",")), reverse=True)

    (x_model, y_model), train, valid, test = probe_data(args.examples)
    model = classifiers.MnistConvNet(seed=0)
    classifiers.fit_classifier(model, x_model, y_model, epochs=1, batch_size=64, progress=False)
    model.eval()
    reduce = probes.RandomSubset(args.features, seed=0)
    feats = [probes.capture(model, x, model.probe_layers, reduce=reduce) for x, _ in (train, valid, test)]
    widths = {name: h.shape[1] for name, h in feats[0].items()}
    print(f"device: {device_name(dev)}, torch {torch.__version__}")
    print(
        f"{len(widths)} probe layers of the MNIST convnet (1 epoch trained), {len(train[1]):,} training / "
        f"{len(valid[1]):,} validation / {len(test[1]):,} test images; features per layer: "
        + ", ".join(f"{w}" for w in widths.values())
    )

    # every objective in float64 on the same standardised features: (1/n) Σ CE + (l2/2)‖W‖²
    y_train = train[1]
    standard, moments = {}, {}
    for name in widths:
        h_train, h_test = feats[0][name].double(), feats[2][name].double()
        mean, std = h_train.mean(0), h_train.std(0, correction=0)
        std = torch.where(std > 0, std, 1.0)
        moments[name] = mean, std
        standard[name] = (((h_train - mean) / std).numpy(), ((h_test - mean) / std).numpy())

    def objective(name: str, w: np.ndarray, b: np.ndarray) -> float:
        logits = torch.from_numpy(standard[name][0] @ w.T + b)
        return torch.nn.functional.cross_entropy(logits, y_train).item() + 0.5 * args.l2 * float((w**2).sum())

    def accuracy(name: str, w: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean((standard[name][1] @ w.T + b).argmax(1) == test[1].numpy()))

    on_dev = [
        ({k: v.to(dev) for k, v in f.items()}, y.to(dev))
        for f, (_, y) in zip(feats, (train, valid, test), strict=True)
    ]
    with warnings.catch_warnings():  # warm-up (2 passes: L-BFGS warns that it stopped short of tol)
        warnings.simplefilter("ignore", RuntimeWarning)
        for solver in ("lbfgs", "adam"):
            probes.fit_probes(*on_dev[0], valid=on_dev[1], solver=solver, epochs=2, l2=args.l2)

    # each solver at each tol: time, passes, and per layer (objective, test accuracy)
    runs: dict[str, dict[float, dict]] = {"fit_probes": {}, "scikit-learn": {}}
    for tol in tols:
        w0, c0 = _clock(dev)
        fit = probes.fit_probes(*on_dev[0], l2=args.l2, solver="lbfgs", epochs=20_000, tol=tol)
        w1, c1 = _clock(dev)
        layers = {}
        for name, r in fit.items():
            w, b = on_standardisation(r, *moments[name])  # fit_probes standardised in float32
            layers[name] = (objective(name, w, b), accuracy(name, w, b), r.epoch)
        runs["fit_probes"][tol] = dict(wall=w1 - w0, cpu=c1 - c0, layers=layers)
        wall, cpu, layers = 0.0, 0.0, {}
        for name in widths:
            w0, c0 = time.perf_counter(), time.process_time()
            sk = sklearn_fit(standard[name][0], y_train.numpy(), args.l2, tol)
            wall, cpu = wall + time.perf_counter() - w0, cpu + time.process_time() - c0
            layers[name] = (
                objective(name, sk.coef_, sk.intercept_),
                accuracy(name, sk.coef_, sk.intercept_),
                int(sk.n_iter_.max()),
            )
        runs["scikit-learn"][tol] = dict(wall=wall, cpu=cpu, layers=layers)
        ours = runs["fit_probes"][tol]["cpu"]
        print(f"tol {tol:g}: fit_probes {ours:.2f} s CPU, scikit-learn {cpu:.2f} s CPU", flush=True)

    # the reference optimum f* of each layer: the lowest objective of any run, or of a float64 fit_probes
    # at tol 1e-9 (not timed) on the same standardised features
    tight = probes.fit_probes(
        {k: torch.from_numpy(h) for k, (h, _) in standard.items()},
        y_train,
        l2=args.l2,
        solver="lbfgs",
        epochs=20_000,
        tol=1e-9,
        standardize=False,
    )
    every = [run["layers"] for side in runs.values() for run in side.values()]
    every.append({k: (objective(k, r.weight.numpy(), r.bias.numpy()),) for k, r in tight.items()})
    optimum = {name: min(layers[name][0] for layers in every) for name in widths}
    print(
        f"\n{'solver':>14}{'tol':>8}{'CPU s':>9}{'wall s':>9}{'passes':>8}{'worst f - f*':>14}"
        f"{'worst acc diff':>16}"
    )
    tightest = runs["scikit-learn"][tols[-1]]["layers"]
    for side, by_tol in runs.items():
        for tol, run in by_tol.items():
            run["gap"] = max(run["layers"][k][0] - optimum[k] for k in widths)
            run["diff"] = max(abs(run["layers"][k][1] - tightest[k][1]) * 100 for k in widths)
            passes = sum(run["layers"][k][2] for k in widths)
            print(
                f"{side:>14}{tol:>8g}{run['cpu']:>9.2f}{run['wall']:>9.2f}{passes:>8}{run['gap']:>14.1e}"
                f"{run['diff']:>16.2f}"
            )
    print(
        "(f*: per layer, the lowest objective of any run or of float64 fit_probes at tol 1e-9; accuracy "
        f"diff: points against scikit-learn at tol {tols[-1]:g}, {len(test[1]):,} test images, one image is "
        f"{100 / len(test[1]):.2f} points; passes: "
        "fit_probes' objective evaluations, scikit-learn's iterations, summed over the layers)"
    )
    results = {}
    for target in (1e-4, 1e-5, 1e-6):
        cheapest = {}
        for side, by_tol in runs.items():
            reached = [run for run in by_tol.values() if run["gap"] <= target]
            cheapest[side] = min(reached, key=lambda run: run["cpu"]) if reached else None
        if None in cheapest.values():
            missing = ", ".join(k for k, v in cheapest.items() if not v)
            print(f"worst-layer gap <= {target:g}: not reached by {missing}")
            continue
        ours, theirs = cheapest["fit_probes"], cheapest["scikit-learn"]
        results[f"gap <= {target:g}"] = {
            "ratio_cpu": theirs["cpu"] / ours["cpu"],
            "ratio_wall": theirs["wall"] / ours["wall"],
            "max_diff_points": ours["diff"],
        }
        print(
            f"worst-layer gap <= {target:g}: fit_probes {ours['cpu']:.2f} s CPU, scikit-learn "
            f"{theirs['cpu']:.2f} s CPU: ratio {theirs['cpu'] / ours['cpu']:.1f}x CPU, "
            f"{theirs['wall'] / ours['wall']:.1f}x wall"
        )

    # the chapter's default: minibatch Adam early-stopped on the validation split
    w0, c0 = _clock(dev)
    adam = probes.fit_probes(*on_dev[0], valid=on_dev[1], test=on_dev[2], l2=args.l2)
    w1, c1 = _clock(dev)
    reference = runs["scikit-learn"][tols[0]]
    worst = max(abs(1 - adam[k].test_error - reference["layers"][k][1]) * 100 for k in widths)
    results["Adam early-stopped"] = {
        "ratio_cpu": reference["cpu"] / (c1 - c0),
        "ratio_wall": reference["wall"] / (w1 - w0),
        "max_diff_points": worst,
    }
    print(
        f"fit_probes, Adam early-stopped: {w1 - w0:.2f} s wall, {c1 - c0:.2f} s CPU; against scikit-learn "
        f"at tol {tols[0]:g}: {reference['cpu'] / (c1 - c0):.1f}x CPU; largest accuracy difference "
        f"{worst:.2f} points, passes per layer " + "/".join(str(adam[k].epoch) for k in widths)
    )
    return results


if __name__ == "__main__":
    runtime.set_threads()  # as python -m benchmarks does
    main()
