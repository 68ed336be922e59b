"""Image classifiers with named layers, for probing (thesis ch. 9).

Every layer a probe may read is a named sub-module, so that :func:`dae_tutor.probes.capture` finds it
by name; ``probe_layers`` lists them in depth order. Parameters use PyTorch's default initialisation,
drawn from an explicit ``seed`` (torch's global generator is forked, never advanced).

* :class:`MnistConvNet`: the ``tensorflow/models`` MNIST tutorial model of §9.3.5 (Fig. 9.2): two
  5×5 convolutions (32, 64 channels), ReLU and 2×2 max-pooling after each, a 512-unit ReLU layer and
  the 10 logits; probes on each side of every convolution, activation and pooling.
* :class:`DeepMLP`: ``depth`` fully-connected ReLU layers of ``width`` units, optionally with the long
  skip connection of §9.5.1 (Fig. 9.6): the output of layer ``skip_from`` is added to the output of
  layer ``skip_to``.
* :class:`SmallResNet`: a three-stage residual network (basic blocks, batch norm) for §9.4.1.
* :func:`lenet`: the LeNet of ch. 11 (§11.2.1), whose Hessian the curvature chapter studies.
* :func:`recompute_batchnorm`: batch-norm running statistics re-estimated under the final weights.
* :func:`fit_classifier`: cross-entropy training by :func:`dae_tutor.train.train_loop` on shuffled
  minibatches, keeping copies of the weights at chosen steps (for probes during training);
  :func:`fit_with_readings` reads a model (e.g. with probes) at those steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dae_tutor import checks, runtime, train


def _seeded(seed: int, build: Callable[[], None]) -> None:
    """Run ``build`` (it creates layers) with torch's global generator seeded by ``seed``, then restored."""
    seed = checks.nonnegative_int("seed", seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build()


def _images(x: torch.Tensor, channels: int = 1, side: int = 28) -> torch.Tensor:
    """(n, side²) or (n, channels, side, side) inputs as images."""
    checks.tensor("x", x)
    if x.dim() == 2 and x.shape[1] == channels * side * side:
        return x.reshape(-1, channels, side, side)
    if x.dim() == 4 and tuple(x.shape[1:]) == (channels, side, side):
        return x
    raise ValueError(
        f"x must be (n, {channels * side * side}) or (n, {channels}, {side}, {side}), got {tuple(x.shape)}"
    )


class MnistConvNet(nn.Module):
    """conv 5×5 (32) → ReLU → max-pool → conv 5×5 (64) → ReLU → max-pool → fc (512) → ReLU → fc (10).

    The model of thesis §9.3.5 (tensorflow/models ``image/mnist/convolutional.py``; 1,663,370
    parameters with the default sizes). Takes (n, 784) or (n, 1, 28, 28) pixels, returns (n, 10) logits.
    """

    probe_layers = (
        "input",
        "conv1_preact",
        "conv1_postact",
        "conv1_postpool",
        "conv2_preact",
        "conv2_postact",
        "conv2_postpool",
        "fc1_preact",
        "fc1_postact",
        "logits",
    )

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 512, *, seed: int = 0) -> None:
        super().__init__()
        c1, c2 = checks.int_sequence("channels", channels, length=2)
        hidden = checks.positive_int("hidden", hidden)

        def build() -> None:
            self.input = nn.Identity()
            self.conv1_preact = nn.Conv2d(1, c1, 5, padding=2)
            self.conv1_postact = nn.ReLU()
            self.conv1_postpool = nn.MaxPool2d(2)
            self.conv2_preact = nn.Conv2d(c1, c2, 5, padding=2)
            self.conv2_postact = nn.ReLU()
            self.conv2_postpool = nn.MaxPool2d(2)
            self.fc1_preact = nn.Linear(7 * 7 * c2, hidden)
            self.fc1_postact = nn.ReLU()
            self.logits = nn.Linear(hidden, 10)

        _seeded(seed, build)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(_images(x))
        h = self.conv1_postpool(self.conv1_postact(self.conv1_preact(h)))
        h = self.conv2_postpool(self.conv2_postact(self.conv2_preact(h)))
        return self.logits(self.fc1_postact(self.fc1_preact(h.flatten(1))))


class DeepMLP(nn.Module):
    """``depth`` layers h_k = ReLU(W_k h_{k−1} + b_k) of ``width`` units, then 10 logits (thesis §9.5.1).

    With ``skip_to``, the long skip connection of Fig. 9.6a: h_{skip_to} = branch(ReLU(W h_{skip_to−1} + b))
    + h_{skip_from}, bypassing layers skip_from+1 … skip_to; ``branch`` is an identity sub-module that
    names what the bypassed segment hands to the merge (for probes and for ablation,
    :mod:`dae_tutor.ablation`). The probe taps ``h0`` (the input), ``h1`` … ``h{depth}`` (after the
    merge) and ``logits``.

    With ``aux_at``, an auxiliary classifier head ``aux_logits`` (a linear layer of 10 logits) reads
    h_{aux_at}, as Inception's auxiliary head does (thesis §9.4.2, app. 9.C): :meth:`forward_with_aux`
    returns both heads' logits (``forward`` only the main head's, so that probes and errors see the
    main model); :func:`dae_tutor.auxiliary.head_loss` trains both. The head is built after every other
    layer, so the body's initialisation is that of the same seed without it.
    """

    def __init__(
        self,
        depth: int,
        width: int = 128,
        *,
        n_in: int = 784,
        skip_from: int = 1,
        skip_to: int | None = None,
        aux_at: int | None = None,
        init: str = "default",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.depth = checks.positive_int("depth", depth, minimum=2)
        if aux_at is not None:
            aux_at = checks.positive_int("aux_at", aux_at)
            if aux_at > self.depth:
                raise ValueError(f"aux_at must be <= depth = {self.depth}, got {aux_at}")
        self.aux_at = aux_at
        init = checks.one_of("init", init, ("default", "orthogonal"))
        width = checks.positive_int("width", width)
        n_in = checks.positive_int("n_in", n_in)
        self.skip_from = checks.positive_int("skip_from", skip_from)
        if skip_to is not None:
            skip_to = checks.positive_int("skip_to", skip_to)
            if not self.skip_from < skip_to <= self.depth:
                raise ValueError(
                    f"need skip_from < skip_to <= depth, got {self.skip_from}, {skip_to}, {depth}"
                )
        self.skip_to = skip_to
        self.probe_layers = (*(f"h{k}" for k in range(self.depth + 1)), "logits")

        def build() -> None:
            self.layers = nn.ModuleList(
                [nn.Linear(n_in if k == 0 else width, width) for k in range(self.depth)]
            )
            for k in range(self.depth + 1):
                self.add_module(f"h{k}", nn.Identity())
            self.logits = nn.Linear(width, 10)
            if skip_to is not None:
                self.branch = nn.Identity()
            if init == "orthogonal":
                for layer in self.layers:
                    nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
                    nn.init.zeros_(layer.bias)
            if aux_at is not None:
                self.aux_logits = nn.Linear(width, 10)

        _seeded(seed, build)

    def _forward(self, x: torch.Tensor, aux: bool, detach: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        checks.tensor("x", x, ndim=2, last_dim=self.layers[0].in_features, nonempty=True)
        h = self.get_submodule("h0")(x)
        skip = aux_out = None
        for k, layer in enumerate(self.layers, start=1):
            h = torch.relu(layer(h))
            if k == self.skip_to:
                h = self.branch(h) + skip
            h = self.get_submodule(f"h{k}")(h)
            if k == self.skip_from:
                skip = h
            if aux and k == self.aux_at:
                aux_out = self.aux_logits(h.detach() if detach else h)
        return self.logits(h), aux_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, aux=False, detach=False)[0]

    def forward_with_aux(self, x: torch.Tensor, *, detach: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(main logits, auxiliary logits) on ``x``; with ``detach``, the head reads h_{aux_at}.detach()
        (a diode, app. 9.A): it still learns, but sends no gradient into the layers below it."""
        if self.aux_at is None:
            raise ValueError("forward_with_aux needs a model built with aux_at")
        checks.boolean("detach", detach)
        return self._forward(x, aux=True, detach=detach)


class _Block(nn.Module):
    """A basic residual block: ReLU(x' + BN(conv(ReLU(BN(conv(x)))))), x' = x or a strided 1×1 projection."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(self.shortcut(x) + r)


class SmallResNet(nn.Module):
    """A ResNet for 28×28 grey images: a 3×3 stem, three stages of ``blocks`` basic blocks with
    ``channels`` channels (the 2nd and 3rd halve the resolution), global average pooling, 10 logits.

    The probe taps are ``input``, ``stem`` and ``add_1`` … ``add_{3·blocks}`` (each block's output,
    after the residual addition, named as in the thesis's ResNet-50 table), then ``logits``.
    """

    def __init__(
        self, channels: tuple[int, int, int] = (16, 32, 64), blocks: int = 2, *, seed: int = 0
    ) -> None:
        super().__init__()
        widths = checks.int_sequence("channels", channels, length=3)
        blocks = checks.positive_int("blocks", blocks)
        self.probe_layers = ("input", "stem", *(f"add_{k + 1}" for k in range(3 * blocks)), "logits")

        def build() -> None:
            self.input = nn.Identity()
            self.stem = nn.Sequential(
                nn.Conv2d(1, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
            )
            c_in, k = widths[0], 0
            for stage, c in enumerate(widths):
                for b in range(blocks):
                    k += 1
                    self.add_module(f"add_{k}", _Block(c_in, c, 2 if stage > 0 and b == 0 else 1))
                    c_in = c
            self.logits = nn.Linear(widths[-1], 10)

        _seeded(seed, build)
        self.n_blocks = 3 * blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(self.input(_images(x)))
        for k in range(1, self.n_blocks + 1):
            h = self.get_submodule(f"add_{k}")(h)
        return self.logits(h.mean((2, 3)))


def recompute_batchnorm(model: nn.Module, x: torch.Tensor, *, batch_size: int = 500) -> nn.Module:
    """Replace every batch-norm layer's running mean and variance by their averages over the batches of
    ``x`` under the model's current weights ("precise BN"); in place, returning ``model`` in eval mode.

    During training the running statistics are an exponential average (momentum 0.1) over the last
    minibatches, taken while the weights were still moving, and eval mode normalises with them.
    Here they are reset and re-estimated with ``momentum=None`` (torch's cumulative average): the
    mean of the batch means (the data mean, for batches of equal size) and of the unbiased batch
    variances. Nothing else changes: no weight moves, no gradient is taken.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = checks.tensor("x", x, nonempty=True)
    batch_size = checks.positive_int("batch_size", batch_size)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("model has no batch-norm layer whose statistics could be recomputed")
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                model(x[start : start + batch_size])
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    return model.eval()


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    optimizer: str = "adam",
    lr: float | None = None,
    seed: int = 0,
    snapshot_steps: Sequence[int] = (),
    optimizer_options: dict | None = None,
    loss: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> tuple[list[float], dict[int, dict[str, torch.Tensor]]]:
    """Train ``model`` (in train mode) on the mean cross-entropy of shuffled minibatches of (x, y).

    ``loss(model, idx)``, when given, replaces that criterion: it receives the minibatch's row indices
    into (x, y) (e.g. :func:`dae_tutor.auxiliary.head_loss`, main plus auxiliary head).

    Each epoch visits every example once, in an order drawn from ``seed``; the last partial batch is
    dropped. Returns the loss history (one value per step) and ``{step: state_dict}`` copies of the
    weights after ``step`` updates for every step in ``snapshot_steps`` (0 = before training).
    NaN losses stop training with :class:`dae_tutor.errors.DivergenceError`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = checks.tensor("x", x)
    checks.class_labels("y", y, x.shape[0])
    epochs = checks.positive_int("epochs", epochs)
    batch_size = checks.positive_int("batch_size", batch_size)
    if batch_size > x.shape[0]:
        raise ValueError(f"batch_size must be <= the number of examples {x.shape[0]}, got {batch_size}")
    per_epoch = x.shape[0] // batch_size
    steps = epochs * per_epoch
    wanted = sorted(set(checks.int_sequence("snapshot_steps", snapshot_steps, minimum=0)))
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be callable as loss(model, idx), got {type(loss).__name__}")
    if wanted and wanted[-1] > steps:
        raise ValueError(f"snapshot_steps must be <= the {steps} training steps, got {wanted[-1]}")
    gen = runtime.generator(seed, x.device)
    order = torch.empty(0, dtype=torch.long)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    step = 0

    def loss_fn() -> torch.Tensor:
        nonlocal order, step
        if step in wanted and step not in snapshots:
            snapshots[step] = copy.deepcopy(model.state_dict())
        k = step % per_epoch
        if k == 0:
            order = torch.randperm(x.shape[0], generator=gen, device=x.device)
        idx = order[k * batch_size : (k + 1) * batch_size]
        step += 1
        return F.cross_entropy(model(x[idx]), y[idx]) if loss is None else loss(model, idx)

    model.train()
    history = train.train_loop(
        loss_fn,
        model,
        steps=steps,
        optimizer=optimizer,
        lr=lr,
        progress=progress,
        desc=f"training {type(model).__name__}",
        optimizer_options=optimizer_options,
    )
    if steps in wanted:
        snapshots[steps] = copy.deepcopy(model.state_dict())
    return history, snapshots


def fit_with_readings(
    make_model: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    read: Callable[[nn.Module], object],
    *,
    snapshot_steps: Sequence[int],
    **fit_options: object,
) -> tuple[nn.Module, list[float], dict[int, object]]:
    """Train ``make_model()`` by :func:`fit_classifier` and read it during training (thesis §9.4, Fig. 9.5).

    The model is built on ``x``'s device and trained with ``fit_options`` (``epochs``, ``batch_size``,
    ``lr``, ``seed``...); after ``step`` updates, for each step in ``snapshot_steps``, a fresh
    ``make_model()`` loaded with the weights of that moment is passed to ``read`` (e.g. probes of
    every layer, :func:`dae_tutor.probes.layer_readings`). Returns the trained model, the loss history
    and ``{step: read(model at step)}``.
    """
    if not callable(make_model):
        raise TypeError(f"make_model must be callable, got {type(make_model).__name__}")
    if not callable(read):
        raise TypeError(f"read must be callable, got {type(read).__name__}")
    x = checks.tensor("x", x)
    model = make_model().to(x.device)
    history, snapshots = fit_classifier(model, x, y, snapshot_steps=snapshot_steps, **fit_options)
    readings = {}
    for step in snapshot_steps:
        snap = make_model().to(x.device)
        snap.load_state_dict(snapshots[step])
        readings[step] = read(snap)
    return model, history, readings


def lenet(channels: tuple[int, int], hidden: int, side: int, *, seed: int = 0) -> nn.Sequential:
    """LeNet with ReLU for ``side`` x ``side`` images: conv5x5 -> pool -> conv5x5 -> pool -> fc -> fc
    (thesis §11.2.1: 32 and 64 filters, 1024 hidden units on 28x28 MNIST, 3.3M parameters).

    The two 2x2 poolings leave floor(side/4) x floor(side/4) maps. PyTorch's default initialisation,
    drawn from ``seed`` (the global generator is forked: ``torch.manual_seed(seed)`` before building,
    then restored).
    """
    c1, c2 = checks.int_sequence("channels", channels, length=2)
    hidden = checks.positive_int("hidden", hidden)
    side = checks.positive_int("side", side, minimum=4)
    layers: list[nn.Module] = []
    _seeded(
        seed,
        lambda: layers.extend(
            [
                nn.Conv2d(1, c1, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(c1, c2, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(c2 * (side // 4) ** 2, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 10),
            ]
        ),
    )
    return nn.Sequential(*layers)
