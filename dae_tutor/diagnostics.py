r"""Sample quality and mixing: do a sampler's samples follow the target law, and do its chains move?

A chain judged only from where it ends, after starting on the training points, can look perfect
while it has never left its starting neighbourhood. These diagnostics measure what such a picture
hides:

* :func:`energy_distance` and :func:`mmd`: two-sample distances between the samples and draws of
  the target law (zero if and only if the laws are equal);
* :func:`curve_positions`, :func:`arc_coverage`, :func:`chain_arc_coverage` and :func:`manifold_coverage`:
  which parts of a 1-d manifold (a curve given as a dense polyline) the samples reach;
* :func:`integrated_autocorrelation_time` and :func:`effective_sample_size`: how many independent
  draws a chain's scalar statistic (an arc position, a coordinate, an energy) is worth;
* :func:`mode_hops`: how often each chain changes mode on a multi-modal target, and the share of
  time it spends in each; :func:`persistent_hops`: the same count robust to label noise (only
  stays of a minimum length count, undecided steps are skipped);
* :func:`histogram_tv`: the total variation between 1-d samples' histogram and a density's mass
  on the same bins;
* :func:`heavy_modes`: how many modes of a pmf on a 1-d grid hold a given share of its mass;
* :func:`spurious_fraction`: the share of samples farther than a radius from every data point, the
  "spurious samples" of a chain that leaves the data ([TH] §5.3.2: "the DAE's behavior far from the
  training examples can create spurious modes"; chapter 2's walkback experiment), and
  :func:`spurious_groups`: where those samples gather (chapter 1's spurious attractors, Fig. 3.7).

The nearest-training-neighbour distance (the memorisation check) is
:func:`dae_tutor.evaluate.nearest_neighbours`; the nearest mode of each sample, the labels that
:func:`mode_hops` takes, is its ``indices`` output against the mode centres.
All sums are accumulated in float64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from dae_tutor import checks, evaluate

__all__ = [
    "DIRECT_MAX_DIM",
    "arc_coverage",
    "chain_arc_coverage",
    "curve_chain_summary",
    "curve_positions",
    "effective_sample_size",
    "energy_distance",
    "heavy_modes",
    "histogram_tv",
    "integrated_autocorrelation_time",
    "manifold_coverage",
    "mmd",
    "mode_hops",
    "persistent_hops",
    "spurious_fraction",
    "spurious_groups",
]

F64 = torch.float64
#: Up to this dimension distances are direct differences (exact to rounding, and as fast); above it,
#: the matmul expansion ‖a‖² + ‖b‖² − 2a·b (6× faster at d = 784, off by ≲ 1e-8 ‖a‖ for a ≈ b).
DIRECT_MAX_DIM = 16


def _points(name: str, value: object, *, minimum: int = 1) -> torch.Tensor:
    """A floating ``[n, d]`` tensor with at least ``minimum`` rows."""
    t = checks.tensor(name, value, ndim=2)
    if len(t) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} point(s), got shape {tuple(t.shape)}")
    return t


def _same_width(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension, got {a.shape[1]} and {b.shape[1]}"
        )


# ------------------------------------------------------------------------ two-sample distances
def _cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    direct = a.shape[1] <= DIRECT_MAX_DIM
    return torch.cdist(
        a, b, compute_mode="donot_use_mm_for_euclid_dist" if direct else "use_mm_for_euclid_dist"
    )


def _pair_means(
    x: object, y: object, f: Callable[[torch.Tensor], torch.Tensor], unbiased: bool, batch_size: object
) -> tuple[float, float, float]:
    """Checked x, y; then the means of f(‖x_i − y_j‖), f(‖x_i − x_j‖), f(‖y_i − y_j‖) over their pairs.

    Within a sample, the V-statistic (``unbiased=False``) averages all pairs, i = j included (at an
    exact distance 0), the U-statistic only i ≠ j. Chunks of ``batch_size`` rows; the symmetric
    within-sample sums take each block row's diagonal block and twice the blocks to its right.
    """
    unbiased = checks.boolean("unbiased", unbiased)
    minimum = 2 if unbiased else 1
    x, y = _points("x", x, minimum=minimum), _points("y", y, minimum=minimum)
    _same_width(("x", "y"), x, y)
    if batch_size is None:
        batch_size = max(1, evaluate.DEFAULT_MAX_ELEMENTS // max(len(x), len(y)))
    rows = checks.positive_int("batch_size", batch_size)
    x, y = x.to(dtype=F64), y.to(device=x.device, dtype=F64)
    cross = sum(f(_cdist(x[s : s + rows], y)).sum().item() for s in range(0, len(x), rows))

    def within(a: torch.Tensor) -> float:
        total = 0.0
        for s in range(0, len(a), rows):
            chunk = a[s : s + rows]
            total += f(_cdist(chunk, chunk).fill_diagonal_(0.0)).sum().item()
            total += 2 * f(_cdist(chunk, a[s + rows :])).sum().item()
        n = len(a)
        if not unbiased:
            return total / (n * n)
        return (total - n * f(torch.zeros((), dtype=F64)).item()) / (n * (n - 1))

    return cross / (len(x) * len(y)), within(x), within(y)


def energy_distance(
    x: torch.Tensor, y: torch.Tensor, *, unbiased: bool = False, batch_size: int | None = None
) -> float:
    """Squared energy distance between the samples ``x`` ``[n, d]`` and ``y`` ``[m, d]``.

    D² = 2 E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ ≥ 0, zero if and only if X and Y have the same law
    (Székely & Rizzo 2013, *Energy statistics: a class of statistics based on distances*, J. Stat.
    Plan. Inference 143, §2).
    The default is the V-statistic: each expectation is the mean over all n², nm, m² pairs
    (i = j included), so it is ≥ 0 and biased upwards by E‖X − X′‖/n + E‖Y − Y′‖/m; in 1-d it equals
    ``scipy.stats.energy_distance(x, y) ** 2`` (SciPy returns the square root, computed as
    √2 × the L² distance of the empirical CDFs). ``unbiased=True`` gives the U-statistic (the
    within-sample means over the n(n − 1) and m(m − 1) pairs i ≠ j): unbiased for D², so it can be
    negative when the laws are equal; it needs n, m ≥ 2.
    Distances come from ``torch.cdist`` in float64 (direct differences up to
    :data:`DIRECT_MAX_DIM` dimensions, the matmul expansion above), ``batch_size`` rows at a time
    (by default at most :data:`dae_tutor.evaluate.DEFAULT_MAX_ELEMENTS` distances, 128 MiB, are
    held at once), so 10,000 × 10,000 samples need no more memory than 1,000 × 1,000.
    """
    cross, xx, yy = _pair_means(x, y, lambda d: d, unbiased, batch_size)
    return 2 * cross - xx - yy


def mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidth: float,
    *,
    unbiased: bool = False,
    batch_size: int | None = None,
) -> float:
    """Squared maximum mean discrepancy of ``x`` ``[n, d]`` and ``y`` ``[m, d]``, Gaussian kernel.

    MMD² = E k(X, X′) + E k(Y, Y′) − 2 E k(X, Y) with k(a, b) = exp(−‖a − b‖² / 2h²), h =
    ``bandwidth``; zero if and only if the laws are equal (Gretton et al. 2012, *A kernel
    two-sample test*, JMLR 13, §2). V-statistic by default (≥ 0, biased upwards by
    (1 − E k(X, X′))/n + (1 − E k(Y, Y′))/m), U-statistic with ``unbiased=True`` (their MMD²_u);
    computed like :func:`energy_distance`.
    """
    h = checks.positive_float("bandwidth", bandwidth)
    cross, xx, yy = _pair_means(x, y, lambda d: torch.exp(-0.5 * (d / h) ** 2), unbiased, batch_size)
    return xx + yy - 2 * cross


# --------------------------------------------------------------------------------- curve coverage
def curve_positions(samples: torch.Tensor, curve_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Arc-length position in [0, 1] of each sample's nearest point on a polyline, and its distance.

    ``curve_points`` ``[P, d]`` (P ≥ 2) are the vertices of a dense polyline along the curve, in
    order; position u = s / L with s the arc length from the first vertex to the foot point and L
    the polyline's length. The foot point is the projection onto the two segments next to the
    nearest vertex (:func:`dae_tutor.evaluate.nearest_neighbours`), which is the nearest point of the
    polyline up to the vertex spacing. Returns ``(positions [n], distances [n])`` in float64.
    """
    samples = _points("samples", samples)
    curve = _points("curve_points", curve_points, minimum=2)
    _same_width(("samples", "curve_points"), samples, curve)
    x, curve = samples.to(F64), curve.to(device=samples.device, dtype=F64)
    seg = curve[1:] - curve[:-1]
    seg_len = seg.norm(dim=1)
    cum = torch.cat([seg_len.new_zeros(1), seg_len.cumsum(0)])
    if cum[-1] <= 0:
        raise ValueError("curve_points must not all be the same point (the polyline has length 0)")
    _, vertex = evaluate.nearest_neighbours(x, curve)
    best_dist = torch.full((len(x),), math.inf, dtype=F64, device=x.device)
    best_pos = torch.zeros(len(x), dtype=F64, device=x.device)
    for j in ((vertex - 1).clamp_min(0), vertex.clamp_max(len(seg) - 1)):
        v = seg[j]
        s = ((x - curve[j]) * v).sum(1) / seg_len[j].pow(2).clamp_min(torch.finfo(F64).tiny)
        s = s.clamp(0.0, 1.0)
        dist = (x - curve[j] - s[:, None] * v).norm(dim=1)
        closer = dist < best_dist
        best_dist = torch.where(closer, dist, best_dist)
        best_pos = torch.where(closer, cum[j] + s * seg_len[j], best_pos)
    return best_pos / cum[-1], best_dist


def arc_coverage(positions: torch.Tensor, n_bins: int) -> float:
    """Fraction of the ``n_bins`` equal bins of [0, 1] that hold at least one of ``positions``.

    ``positions`` ``[n]`` are arc-length positions u ∈ [0, 1] (the curve parameter rescaled, or
    :func:`curve_positions`). For n independent uniform positions the expected coverage is
    1 − (1 − 1/B)ⁿ with B = ``n_bins`` (each bin is missed by all n with probability (1 − 1/B)ⁿ:
    the classical occupancy problem); a sampler that stays near its starting points covers less.
    """
    u = checks.unit_interval("positions", checks.tensor("positions", positions, ndim=1))
    if len(u) == 0:
        raise ValueError("positions must hold at least one position, got shape (0,)")
    n_bins = checks.positive_int("n_bins", n_bins)
    bins = (u.to(F64) * n_bins).long().clamp_max(n_bins - 1)
    return len(torch.unique(bins)) / n_bins


def chain_arc_coverage(positions: torch.Tensor, n_bins: int) -> tuple[torch.Tensor, float]:
    """Arc coverage of each chain alone, and what as many independent uniform draws would cover.

    ``positions`` ``(T, chains)`` are arc positions in [0, 1] (:func:`curve_positions`) of T samples
    of each chain. Returns ``(coverage [chains], iid)``: coverage[c] = :func:`arc_coverage` of chain
    c's T positions, and iid = 1 − (1 − 1/B)^T, the expected coverage of T independent uniform
    positions (the occupancy formula of :func:`arc_coverage`). A chain that does not move along the
    manifold covers far less than ``iid``, whatever its starting points make the pooled samples look
    like (thesis Fig. 3.6; review ch. 1 E3).
    """
    u = checks.tensor("positions", positions, ndim=2)
    if u.shape[0] == 0 or u.shape[1] == 0:
        raise ValueError(f"positions must be (T, chains) with T, chains >= 1, got {tuple(u.shape)}")
    n_bins = checks.positive_int("n_bins", n_bins)
    coverage = torch.tensor([arc_coverage(u[:, c], n_bins) for c in range(u.shape[1])], dtype=F64)
    return coverage, 1 - (1 - 1 / n_bins) ** u.shape[0]


def manifold_coverage(
    samples: torch.Tensor, curve_points: torch.Tensor, n_bins: int, radius: float
) -> tuple[float, float]:
    """(arc coverage, share near the curve) of ``samples`` ``[n, d]`` on the polyline ``curve_points``.

    A sample is *near* when its distance to the polyline is ≤ ``radius`` (e.g. 3 noise standard
    deviations); the coverage is :func:`arc_coverage` of the near samples' :func:`curve_positions`
    (0 when none is near): the fraction of ``n_bins`` equal arc-length bins that they visit.
    """
    n_bins = checks.positive_int("n_bins", n_bins)
    radius = checks.positive_float("radius", radius)
    u, dist = curve_positions(samples, curve_points)
    near = dist <= radius
    coverage = arc_coverage(u[near], n_bins) if bool(near.any()) else 0.0
    return coverage, near.double().mean().item()


def curve_chain_summary(
    chain: torch.Tensor, curve_points: torch.Tensor, radius: float, n_bins: int
) -> dict[str, float]:
    """Off-manifold share, coverage and mixing of MH chains ``(T, chains, d)`` around a curve.

    Three numbers, so that chains are not judged by where they end alone (thesis Fig. 3.7; review
    ch. 1 E2): ``off``, the share of the final states farther than ``radius`` from the polyline
    ``curve_points`` (spurious samples); ``coverage``, the :func:`arc_coverage` of the final states
    within ``radius`` in ``n_bins`` arc bins (0 when none is); ``tau``, the
    :func:`integrated_autocorrelation_time` of the arc position of all T states of all chains
    (``inf`` when no chain moves, ``nan`` when the chains are too short for Sokal's window).
    """
    chain = checks.tensor("chain", chain, ndim=3)
    if chain.shape[0] < 2 or chain.shape[1] == 0:
        raise ValueError(f"chain must be (T, chains, d) with T >= 2, chains >= 1, got {tuple(chain.shape)}")
    coverage, near = manifold_coverage(chain[-1], curve_points, n_bins, radius)
    u, _ = curve_positions(chain.reshape(-1, chain.shape[2]), curve_points)
    try:
        tau = integrated_autocorrelation_time(u.reshape(chain.shape[:2]))
    except ValueError:  # too short for the window (or anti-correlated): not estimable
        tau = math.nan
    return {"off": 1 - near, "coverage": coverage, "tau": tau}


# ------------------------------------------------------------------------------------------ mixing
def _series(series: object) -> torch.Tensor:
    """``series`` ``(T,)`` or ``(T, chains)`` as float64 ``(T, chains)``, T ≥ 2, chains ≥ 1."""
    s = checks.tensor("series", series)
    if s.dim() not in (1, 2):
        raise ValueError(f"series must have shape (T,) or (T, chains), got shape {tuple(s.shape)}")
    s = s.to(F64) if s.dim() == 2 else s.to(F64)[:, None]
    if s.shape[0] < 2 or s.shape[1] == 0:
        raise ValueError(
            f"series must hold at least 2 steps of at least one chain, got shape {tuple(s.shape)}"
        )
    return s


def integrated_autocorrelation_time(
    series: torch.Tensor, *, c: float = 5.0, too_short: str = "raise"
) -> float:
    """Integrated autocorrelation time τ = 1 + 2 Σ_{k≥1} ρ(k) of a scalar statistic of a chain.

    ``series`` is ``(T,)`` (one chain) or ``(T, chains)``. ρ(k) = C(k)/C(0) with
    C(k) = Σ_chains Σ_t (x_t − x̄)(x_{t+k} − x̄) / (T · chains), x̄ the mean over all chains: chains
    that sit at different levels look correlated, as they should. The sum is cut by Sokal's
    automatic window: τ̂ = τ(M) = 1 + 2 Σ_{k=1}^{M} ρ(k) at the smallest M with M ≥ c·τ(M)
    (Sokal 1997, *Monte Carlo methods in statistical mechanics: foundations and new algorithms*,
    §3; Madras & Sokal 1988, J. Stat. Phys. 50, app. C), whose standard deviation is
    ≈ τ √(2(2M + 1)/(T · chains)). Sokal's τ_int is τ/2; c = 5 on this τ is emcee's choice.
    τ = 1 for independent draws and (1 + ρ)/(1 − ρ) for an AR(1) series with coefficient ρ.

    Returns ``inf`` when no chain ever moves (every chain constant: zero effective samples).
    When no window M < T is found (the chains are too short for τ: run them longer than c·τ
    steps, ideally ≫ 100 τ) it raises ``ValueError``, or with ``too_short="inf"`` returns ``inf``
    (τ exceeds what the run can measure: more than about T/c steps). Raises ``ValueError`` when
    τ(M) ≤ 0 (an anti-correlated statistic, outside this estimator's use).
    """
    x = _series(series)
    c = checks.positive_float("c", c)
    too_short = checks.one_of("too_short", too_short, ("raise", "inf"))
    if bool((x == x[:1]).all()):
        return math.inf
    n_steps = len(x)
    x = x - x.mean()
    size = 1 << (2 * n_steps - 1).bit_length()
    f = torch.fft.rfft(x, n=size, dim=0)
    acov = torch.fft.irfft(f * f.conj(), n=size, dim=0)[:n_steps].sum(1)
    tau = 1 + 2 * torch.cumsum(acov[1:] / acov[0], 0)  # tau[M - 1] = τ(M), M = 1 … T − 1
    window = torch.arange(1, n_steps, dtype=F64, device=x.device)
    found = torch.nonzero(window >= c * tau)
    if len(found) == 0:
        if too_short == "inf":
            return math.inf
        raise ValueError(
            f"series is too short for its autocorrelation time: no window M < T = {n_steps} has "
            f"M >= c·τ(M) (τ({n_steps - 1}) = {tau[-1].item():.3g}); run the chains longer"
        )
    value = tau[found[0, 0]].item()
    if value <= 0:
        raise ValueError(
            f"series is anti-correlated (τ(M) = {value:.3g} <= 0 at the window): Sokal's window "
            "assumes positive autocorrelation"
        )
    return value


def effective_sample_size(series: torch.Tensor, *, c: float = 5.0) -> float:
    """Effective sample size T · chains / τ of a scalar statistic (Sokal 1997, §3).

    τ is :func:`integrated_autocorrelation_time` (same ``series`` and ``c``, same errors): the
    variance of the mean of the T · chains values is that of T · chains / τ independent draws.
    Chains that never move give 0.
    """
    tau = integrated_autocorrelation_time(series, c=c)  # first: it checks series
    return series.numel() / tau


def _mode_labels(labels: object, n_modes: object, *, undecided: bool) -> tuple[torch.Tensor, int]:
    """``labels`` (T,) or (T, chains) of integer modes in [0, n_modes) (or −1 if ``undecided``), as int64."""
    labels = checks.tensor("labels", labels, floating=False)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must hold integer mode indices, got dtype {labels.dtype}")
    if labels.dim() not in (1, 2) or len(labels) == 0:
        raise ValueError(f"labels must have shape (T,) or (T, chains) with T >= 1, got {tuple(labels.shape)}")
    n_modes = checks.positive_int("n_modes", n_modes)
    lowest = -1 if undecided else 0
    if labels.numel() and (int(labels.min()) < lowest or int(labels.max()) >= n_modes):
        lo, hi = int(labels.min()), int(labels.max())
        allowed = f"-1 or modes in [0, {n_modes})" if undecided else f"modes in [0, {n_modes})"
        raise ValueError(f"labels must hold {allowed}, got values in [{lo}, {hi}]")
    return labels.long(), n_modes


def mode_hops(labels: torch.Tensor, n_modes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mode changes of each chain and its share of time in each mode.

    ``labels`` ``(T,)`` or ``(T, chains)`` holds the index in [0, ``n_modes``) of the mode each
    state is nearest to (e.g. ``evaluate.nearest_neighbours(states, centres)[1]``). Returns
    ``(hops, occupancy)``: hops = #{t ≥ 1 : label_t ≠ label_{t−1}} per chain (int64, shape
    ``labels.shape[1:]``), and occupancy[…, k] = #{t : label_t = k} / T (float64, shape
    ``labels.shape[1:] + (n_modes,)``; the mean over chains is the pooled occupancy, to compare
    with the mixture weights). A chain with 0 hops has never left its first mode.
    """
    labels, n_modes = _mode_labels(labels, n_modes, undecided=False)
    hops = (labels[1:] != labels[:-1]).sum(0)
    one_hot = torch.nn.functional.one_hot(labels, n_modes).to(F64)
    return hops, one_hot.mean(0)


def persistent_hops(labels: torch.Tensor, n_modes: int, min_stay: int) -> torch.Tensor:
    """Changes between *persistent* stays in modes: mode hops that label noise alone cannot make.

    ``labels`` ``(T,)`` or ``(T, chains)`` holds a mode index in [0, ``n_modes``) per step, or −1
    where the step is undecided (e.g. a classifier below its confidence threshold). A stay is a run
    of at least ``min_stay`` consecutive equal labels ≥ 0; the stays of a chain, in time order, form
    its itinerary, and the count is the number of consecutive stays with different modes (a chain
    that leaves a mode briefly and comes back has not hopped). With ``min_stay = 1`` and no −1 this
    is :func:`mode_hops`'s count. Returns int64 counts of shape ``labels.shape[1:]``.
    """
    labels, n_modes = _mode_labels(labels, n_modes, undecided=True)
    min_stay = checks.positive_int("min_stay", min_stay)
    columns = labels.reshape(len(labels), -1).T.cpu().tolist()
    counts = []
    for column in columns:
        stays = [k for k, run in itertools.groupby(column) if k >= 0 and len(list(run)) >= min_stay]
        counts.append(sum(a != b for a, b in itertools.pairwise(stays)))
    return torch.tensor(counts, dtype=torch.int64, device=labels.device).reshape(labels.shape[1:])


def spurious_fraction(samples: torch.Tensor, data: torch.Tensor, radius: float) -> float:
    """Fraction of ``samples`` (n, d) farther than ``radius`` from every point of ``data`` (m, d)."""
    samples = checks.nonempty("samples", checks.tensor("samples", samples, ndim=2))
    data = checks.nonempty("data", checks.tensor("data", data, ndim=2))
    data = checks.same_width("data", data, "samples", samples).to(samples)
    radius = checks.positive_float("radius", radius)
    nearest = torch.cat([torch.cdist(chunk, data).min(dim=1).values for chunk in samples.split(1024)])
    return (nearest > radius).double().mean().item()


def heavy_modes(q: torch.Tensor, share: float = 0.01) -> int:
    """Modes of a pmf ``q`` on a 1-d grid whose basin holds more than ``share`` of its mass.

    The basins are the runs between consecutive local minima (q_i <= q_{i-1} and q_i < q_{i+1}); a
    mode counts when its basin's mass exceeds ``share`` (chapter 2, §2.1: the modes of P(X | x̃)).
    """
    q = checks.tensor("q", q, ndim=1)
    if len(q) < 3:
        raise ValueError(f"q must hold at least 3 grid values, got {len(q)}")
    share = checks.probability("share", share)
    inner = q[1:-1]
    minima = torch.nonzero((inner <= q[:-2]) & (inner < q[2:])).flatten() + 1
    cuts = [0, *minima.tolist(), len(q)]
    return sum(float(q[a:b].sum()) > share for a, b in itertools.pairwise(cuts))


def spurious_groups(
    ends: torch.Tensor, data: torch.Tensor, delta: float, radius: float = 0.1
) -> list[tuple[torch.Tensor, float]]:
    """Group the points of ``ends`` (n, d) at distance >= ``delta`` from every point of ``data`` (m, d).

    Greedily: the first ungrouped point and every ungrouped point within ``radius`` of it form a group;
    returns (centre = the group's mean, share = its size / n) per group, largest share first. These are
    the spurious attractors of a sampler whose chains end away from the data (thesis §3.4.3, Fig. 3.7).
    """
    ends = checks.nonempty("ends", checks.tensor("ends", ends, ndim=2))
    data = checks.nonempty("data", checks.tensor("data", data, ndim=2))
    data = checks.same_width("data", data, "ends", ends).to(ends)
    delta = checks.positive_float("delta", delta)
    radius = checks.positive_float("radius", radius)
    off = ends[torch.cdist(ends, data).min(dim=1).values >= delta]
    groups = []
    while len(off):
        member = (off - off[0]).norm(dim=1) < radius
        groups.append((off[member].mean(0), member.double().sum().item() / len(ends)))
        off = off[~member]
    return sorted(groups, key=lambda g: -g[1])


def histogram_tv(
    samples: torch.Tensor, log_prob: Callable[[torch.Tensor], torch.Tensor], bins: torch.Tensor
) -> float:
    """Total variation ½ Σ_k abs(n_k / n − q_k) between the histogram of ``samples`` and a density.

    n_k counts the samples (any shape, flattened) in bin k of ``bins`` (edges); q_k ∝ p(c_k) Δ_k is
    the midpoint rule for the density's mass on bin k (``log_prob`` maps (K, 1) centres c_k to (K,)
    log-densities), normalised over the bins (thesis §3.4.2, Fig. 3.6: MH with the DAE score).
    """
    samples = checks.nonempty("samples", checks.tensor("samples", samples))
    if not callable(log_prob):
        raise TypeError(f"log_prob must be callable, got {type(log_prob).__name__}")
    bins = checks.tensor("bins", bins, ndim=1)
    if len(bins) < 2 or not checks.holds((bins[1:] > bins[:-1]).all()):
        raise ValueError(f"bins must hold at least 2 increasing edges, got {bins.tolist()}")
    counts = torch.histogram(samples.flatten().cpu().to(bins.dtype), bins=bins.cpu()).hist
    centres = (bins[1:] + bins[:-1]) / 2
    mass = log_prob(centres[:, None]).exp() * (bins[1:] - bins[:-1])
    return 0.5 * (counts / counts.sum() - mass / mass.sum()).abs().sum().item()
