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


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks probes", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="probe training images (default 10000)")
    parser.add_argument("--features", type=int, default=1024, help="features kept per layer (default 1024)")
    parser.add_argument(
        "--l2", type=float, default=1e-3, help="L2 penalty on the probe weights (default 1e-3)"
    )
    parser.add_argument(
        "--tol", type=float, default=1e-4, help="both lbfgs solvers stop at max |grad| <= tol (default 1e-4)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: dae_tutor.device())")
    args = parser.parse_args(argv)
    dev = runtime.device() if args.device == "auto" else torch.device(args.device)

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

    # ours: all layers at once, on the device; (a) L-BFGS to scikit-learn's stopping test (the same
    # optimum), (b) Adam early-stopped on the validation split (as the chapter uses it)
    on_dev = [
        ({k: v.to(dev) for k, v in f.items()}, y.to(dev))
        for f, (_, y) in zip(feats, (train, valid, test), strict=True)
    ]
    modes = {
        "L-BFGS": dict(valid=on_dev[1], solver="lbfgs", epochs=500, tol=args.tol),
        "Adam early-stopped": dict(valid=on_dev[1]),
    }
    for options in modes.values():  # warm-up (2 passes: L-BFGS warns that it stopped short of tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            probes.fit_probes(*on_dev[0], **{**options, "epochs": 2}, l2=args.l2, progress=False)
    ours, ours_time = {}, {}
    for mode, options in modes.items():
        w0, c0 = _clock(dev)
        ours[mode] = probes.fit_probes(*on_dev[0], test=on_dev[2], l2=args.l2, progress=False, **options)
        w1, c1 = _clock(dev)
        ours_time[mode] = (w1 - w0, c1 - c0)

    # scikit-learn: one LogisticRegression per layer, same objective on the same standardised features
    n = len(train[1])
    sk_accuracy, sk_wall, sk_cpu, sk_iters, gap = {}, 0.0, 0.0, {}, {}
    for name in widths:
        h_train, h_test = feats[0][name].double().numpy(), feats[2][name].double().numpy()
        mean, std = h_train.mean(0), h_train.std(0)
        std[std == 0] = 1
        w0, c0 = time.perf_counter(), time.process_time()
        # as many BLAS threads as torch has: with more, the two sides would not run on equal hardware
        with warnings.catch_warnings(), threadpool_limits(limits=torch.get_num_threads()):
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = LogisticRegression(C=1 / (n * args.l2), solver="lbfgs", max_iter=1000, tol=args.tol).fit(
                (h_train - mean) / std, train[1].numpy()
            )
        sk_wall += time.perf_counter() - w0
        sk_cpu += time.process_time() - c0
        sk_accuracy[name] = float(np.mean(fit.predict((h_test - mean) / std) == test[1].numpy()))
        sk_iters[name] = int(fit.n_iter_.max())
        # the training objective (1/n) Σ CE + (l2/2)‖W‖² of both fits: ours in float32, theirs in float64
        probe = ours["L-BFGS"][name]
        logits = torch.from_numpy((h_train - mean) / std @ fit.coef_.T + fit.intercept_)
        penalty = 0.5 * args.l2 * float((fit.coef_**2).sum())
        theirs = torch.nn.functional.cross_entropy(logits, train[1]).item() + penalty
        gap[name] = probe.train_loss + 0.5 * args.l2 * probe.weight.double().square().sum().item() - theirs

    print(
        f"{'layer':>16}{'features':>10}{'sklearn acc':>13}"
        + "".join(f"{mode + ' acc':>24}{'diff':>7}{'passes':>7}" for mode in modes)
        + f"{'lbfgs it':>10}{'L-BFGS obj - sklearn obj':>26}"
    )
    worst = dict.fromkeys(modes, 0.0)
    for name, width in widths.items():
        row = f"{name:>16}{width:>10}{sk_accuracy[name]:>13.4f}"
        for mode in modes:
            acc = 1 - ours[mode][name].test_error
            diff = 100 * (acc - sk_accuracy[name])
            worst[mode] = max(worst[mode], abs(diff))
            row += f"{acc:>24.4f}{diff:>+7.2f}{ours[mode][name].epoch:>7}"
        print(row + f"{sk_iters[name]:>10}{gap[name]:>+26.1e}")
    print(
        f"scikit-learn: {sk_wall:.2f} s wall, {sk_cpu:.2f} s CPU (diff: accuracy points vs scikit-learn; "
        "obj: training objective)"
    )
    results = {}
    for mode in modes:
        wall, cpu = ours_time[mode]
        results[mode] = {
            "ratio_wall": sk_wall / wall,
            "ratio_cpu": sk_cpu / cpu,
            "max_diff_points": worst[mode],
        }
        print(
            f"fit_probes, {mode}: {wall:.2f} s wall, {cpu:.2f} s CPU; ratio {sk_wall / wall:.1f}x wall, "
            f"{sk_cpu / cpu:.1f}x CPU; largest accuracy difference {worst[mode]:.2f} points"
        )
    print(f"({len(test[1]):,} test images: one image is {100 / len(test[1]):.2f} points)")
    return results


if __name__ == "__main__":
    runtime.set_threads()  # as python -m benchmarks does
    main()
