r"""The nine kernels of Liu, Tai, Crandall & Huang (2025), "Issues with Neural Tangent Kernel
Approach to Neural Networks" (arXiv:2501.10929), as published and corrected.

Constants of the paper's experiment: every weight and bias variance ``sigma^2 = 1``, input
dimension ``d_in = 15``, ``c1 = c2 = c_sigma = 2``; Laplace kernel ``2 exp(-|x - y| / 6)``.

Definitions (``<x, y>`` the plain inner product)
------------------------------------------------
``k0(x, y) = 1 + <x, y> / d_in`` and ``k0(x) = k0(x, x)``. From any "covariance" ``k`` the
arc-cosine step gives

    cos d = k(x, y) / (k(x) k(y))         as published (``as_published=True``),
    cos d = k(x, y) / sqrt(k(x) k(y))     corrected (``as_published=False``, clipped to [-1, 1]),
    H(x, y) = sqrt(k(x) k(y)) / (2 pi) * (sin d + (pi - d) cos d),   H'(x, y) = (pi - d) / (2 pi),

where the published code sets ``d = 0`` when ``|cos d| > 1`` and keeps the unclipped ratio as
``cos d`` in ``H``. ``H1, H1'`` come from ``k0``; ``k1(x, y) = 1 + c1 H1``,
``k1(x) = 1 + c1 k0(x) / 2``; ``H2, H2'`` come from ``k1``. Without biases (Arora et al.):
``a0(x, y) = <x, y>``, ``a0(x) = |x|^2`` give ``aH1, aH1'``; ``a1(x, y) = c_sigma aH1``,
``a1(x) = c_sigma a0(x) / 2`` give ``aH2, aH2'``. Then

    GP1   = 1 + c1 H1                   GP2   = 1 + c2 H2
    NTKA1 = c_s <x,y> aH1' + c_s aH1
    NTKA2 = c_s^2 <x,y> aH1' aH2' + c_s^2 aH1 aH2' + c_s aH2
    NTKJ1 = k0(x,y) H1' + H1 + 1        NTKJ2 = NTKJ1 H2' + H2 + 1
    NTKB1 = 1 + c1 H1 + c1 H1' + c1 H1' <x,y>
    NTKB2 = 1 + c2 H2' + c1 c2 H2' H1' + c1 c2 <x,y> H2' H1' + c1 c2 H2' H1 + c2 H2
    LAPLACE = 2 exp(-|x - y| / 6)

What the published normalisation does
-------------------------------------
The arc-cosine formula needs the correlation ``rho = k(x, y) / sqrt(k(x) k(y))``. The published
code divides by ``k(x) k(y)`` instead, i.e. it uses ``rho / sqrt(k(x) k(y))``: the correlation
shrunk by the geometric mean of the two variances (not scale invariant; it can leave [-1, 1]
when ``k(x) k(y) < 1``). For the experiment's unit-norm inputs:

- ``k0(x) = 16/15`` for every input, so the published ``cos d0 = (15/16) rho0``. Since
  ``rho0 = (15 + cos angle(x, y)) / 16`` lies in [7/8, 1], the published ``cos d0`` lies in
  [0.82, 0.9375]: even for ``x = y`` the angle is ``arccos(15/16) = 0.355`` rad, so the diagonal
  ``H1(x, x) = 0.5025`` instead of ``k0(x) / 2 = 0.5333`` and ``H1'(x, x) = 0.4434`` instead of 1/2.
- ``k1(x) = 1 + c1 k0(x) / 2 = 31/15``, so at the second layer the published ``cos d1`` is the
  (already distorted) ``k1(x, y)`` times ``(15/31)^2``: ``cos d1 <= 0.47`` for every pair, an angle
  of more than 1.08 rad even for ``x = y``. The second-layer kernels GP2, NTKJ2, NTKB2 are
  therefore far from any network's kernel.
- NTKA has no biases and ``a0(x) = |x|^2 = 1``, ``a1(x) = c_sigma / 2 = 1``: the published and
  corrected NTKA1, NTKA2 coincide on the unit sphere (to ~1e-8: at ``x = y`` the published
  ratio is 1 only to rounding, which ``arccos`` amplifies).

Which infinite-width network each corrected kernel belongs to
--------------------------------------------------------------
With ReLU and the corrected angle, ``k0 = S^1`` is the first-layer pre-activation covariance of a
layer ``z = W x / sqrt(d) + b`` (``W, b ~ N(0, 1)``), ``H1 = E[relu(u) relu(v)]`` and
``H1' = E[relu'(u) relu'(v)]`` over it (see :mod:`pytest_ntk.science.kernels.analytic`). Using ReLU's
homogeneity (scaling the inputs scales the first layer's weight variance), with
``FC(depth, W_std, b_std)`` a :class:`pytest_ntk.science.nets.FullyConnected` in NTK parameterization:

- GP1 = ``nngp(FC(1, sqrt 2, 1), x / sqrt 2)``: first layer (1, 1), readout ``sigma_w^2 = 2``.
- GP2 = ``nngp(FC(2, sqrt 2, 1), x / sqrt 2)``.
- NTKJ1 = ``ntk(FC(1, 1, 1), x)``: exactly the NTK of the trained network NN1.
- NTKJ2: no network. ``NTKJ1 * Sd + Sh + 1`` mixes NN1's NTK (``sigma_w^2 = 1``) with
  second-layer expectations ``Sh, Sd`` of GP1's covariance (``sigma_w^2 = 2``). The trained
  NN2's NTK is ``ntk(FC(2, 1, 1))``: its second layer sees ``1 + H1``, not ``1 + 2 H1``.
- NTKA1 = ``ntk(FC(1, sqrt 2, 0), x sqrt(d/2))``: Arora et al.'s bias-free NTK (first-layer
  covariance ``<x, y>``). NTKA2 = ``ntk(FC(2, sqrt 2, 0), x sqrt(d/2))``.
- NTKB1: no FullyConnected, but the NTK of ``Dense_standard(1, 1) -> relu ->
  Dense_ntk(sqrt 2, 1)``: a first layer in the standard parameterization (``W ~ N(0, 1/d)``
  trained in its own units, so its weight gradient adds ``<x, y>`` instead of ``<x, y> / d``).
  Equivalently ``ntk(FC(1, sqrt 2, 1), x / sqrt 2) + c1 H1' (1 - 1/d) <x, y>``.
- NTKB2: the same with a second hidden layer, ``Dense_standard(1, 1) -> relu ->
  Dense_ntk(sqrt 2, 1) -> relu -> Dense_ntk(sqrt 2, 1)``; equivalently
  ``ntk(FC(2, sqrt 2, 1), x / sqrt 2) + c1 c2 H1' H2' (1 - 1/d) <x, y>``.
- LAPLACE: not a network kernel.

So the trained NN1 (all weights and biases N(0, 1), NTK parameterization) has NTK = corrected
NTKJ1 and NNGP = ``1 + H1`` (not GP1 = ``1 + 2 H1``); no kernel of the nine is NN2's NTK or
NNGP. :data:`LIMITS` records these relations and :func:`limit_kernel` computes the right-hand
sides with :mod:`pytest_ntk.science.kernels.analytic` (``tests/test_kernels_liu2025.py`` checks them,
and checks NTKB1/NTKB2 against neural-tangents' mixed-parameterization ``stax`` networks).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.spatial import distance

from ..errors import NumericalError
from .analytic import gram, input_pair

__all__ = [
    "KERNEL_NAMES",
    "kernel",
    "all_kernels",
    "kernels_over_trials",
    "Limit",
    "LIMITS",
    "limit_kernel",
    "SIGMA2",
    "D_IN",
    "C1",
    "C2",
    "C_SIGMA",
    "LAPLACE_AMPLITUDE",
    "LAPLACE_LENGTH",
]

KERNEL_NAMES = ("GP1", "GP2", "NTKA1", "NTKA2", "NTKJ1", "NTKJ2", "NTKB1", "NTKB2", "LAPLACE")

SIGMA2 = 1.0  # every weight and bias variance of the published code
D_IN = 15
C1 = C2 = C_SIGMA = 2.0
LAPLACE_AMPLITUDE = 2.0
LAPLACE_LENGTH = 6.0

_TWO_PI = 2.0 * math.pi


def _check_names(names) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in KERNEL_NAMES]
    if unknown:
        raise ValueError(f"unknown kernel name(s) {unknown}; choose from {KERNEL_NAMES}")
    return names


def _arccos_step(kxy, kx, ky, as_published: bool, diagonal: int | None = None):
    """``(H, H')`` of the module docstring from ``k(x, y)`` (b, n2), ``k(x)`` (b,), ``k(y)`` (n2,).

    ``diagonal``: for a block of a Gram matrix, the column of its first row's own entry; there
    the corrected ``cos d`` is set to exactly 1 (the published form keeps its ratio).
    """
    prod = np.multiply.outer(kx, ky)
    root = np.sqrt(prod)
    with np.errstate(divide="ignore", invalid="ignore"):
        if as_published:
            cos = np.divide(kxy, prod, out=prod)
            delta = np.arccos(np.where(np.abs(cos) > 1.0, 1.0, cos))  # d = 0 where |cos| > 1
            sin = np.maximum(1.0 - cos * cos, 0.0)  # sin d (0 where d was set to 0)
        else:
            cos = np.divide(kxy, root, out=prod)
            np.clip(cos, -1.0, 1.0, out=cos)
            if diagonal is not None:
                rows = np.arange(cos.shape[0])
                cos[rows, diagonal + rows] = 1.0
            delta = np.arccos(cos)
            sin = 1.0 - cos * cos
        np.sqrt(sin, out=sin)
    np.subtract(math.pi, delta, out=delta)  # pi - d
    h = np.multiply(delta, cos, out=cos)
    h += sin
    h *= root
    h *= 1.0 / _TWO_PI
    delta *= 1.0 / _TWO_PI
    return h, delta


class _Block:
    """Lazily computed shared terms of the nine kernels for a block of rows of ``x1``."""

    def __init__(self, dot, n1, n2, x1, x2, as_published: bool, d_in: float, diagonal):
        self.dot, self.n1, self.n2, self.x1, self.x2 = dot, n1, n2, x1, x2
        self.as_published = as_published
        self.d_in = float(d_in)
        self.diagonal = diagonal
        self._cache: dict[str, object] = {}

    def get(self, key):
        if key not in self._cache:
            self._cache[key] = getattr(self, "_" + key)()
        return self._cache[key]

    def _step(self, kxy, kx, ky):
        return _arccos_step(kxy, kx, ky, self.as_published, self.diagonal)

    def _k0(self):
        s = SIGMA2 / self.d_in
        return SIGMA2 + s * self.dot, SIGMA2 + s * self.n1, SIGMA2 + s * self.n2

    def _H1(self):
        return self._step(*self.get("k0"))

    def _H2(self):
        h1, _ = self.get("H1")
        _, k0x, k0y = self.get("k0")
        k1xy = SIGMA2 + C1 * SIGMA2 * h1
        k1x = SIGMA2 + C1 * SIGMA2 * k0x / 2.0
        k1y = SIGMA2 + C1 * SIGMA2 * k0y / 2.0
        return self._step(k1xy, k1x, k1y)

    def _aH1(self):
        return self._step(self.dot, self.n1, self.n2)

    def _aH2(self):
        ah1, _ = self.get("aH1")
        return self._step(C_SIGMA * ah1, C_SIGMA * self.n1 / 2.0, C_SIGMA * self.n2 / 2.0)

    # ------------------------------------------------------------------ the kernels
    def kernel(self, name: str) -> np.ndarray:
        dot = self.dot
        if name == "LAPLACE":
            r = distance.cdist(self.x1, self.x2, "euclidean")
            r *= -1.0 / LAPLACE_LENGTH
            np.exp(r, out=r)
            r *= LAPLACE_AMPLITUDE
            return r
        if name.startswith("NTKA"):
            ah1, ah1d = self.get("aH1")
            ntka1 = C_SIGMA * dot * ah1d + C_SIGMA * ah1
            if name == "NTKA1":
                return ntka1
            ah2, ah2d = self.get("aH2")
            # c_s^2 <x,y> aH1' aH2' + c_s^2 aH1 aH2' + c_s aH2 = c_s aH2' NTKA1 + c_s aH2
            return C_SIGMA * ah2d * ntka1 + C_SIGMA * ah2
        h1, h1d = self.get("H1")
        if name == "GP1":
            return SIGMA2 + C1 * SIGMA2 * h1
        if name == "NTKB1":
            return 1.0 + C1 * h1 + C1 * SIGMA2 * h1d * (1.0 + dot)
        if name == "NTKJ1":
            return self.get("k0")[0] * h1d + h1 + 1.0
        h2, h2d = self.get("H2")
        if name == "GP2":
            return SIGMA2 + C2 * SIGMA2 * h2
        if name == "NTKJ2":
            return (self.get("k0")[0] * h1d + h1 + 1.0) * h2d + h2 + 1.0
        # NTKB2 = 1 + c2 H2' + c1c2 H2'H1' + c1c2 <x,y> H2'H1' + c1c2 H2'H1 + c2 H2
        #       = 1 + c2 H2 + c2 H2' (1 + c1 H1 + c1 H1' (1 + <x,y>))
        return 1.0 + C2 * h2 + C2 * h2d * (1.0 + C1 * h1 + C1 * h1d * (1.0 + dot))


_BLOCK_ROWS = 64  # rows per block: a block's temporaries (64 x n2 float64) stay in cache


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _finite(name: str, k: np.ndarray, as_published: bool) -> np.ndarray:
    if not np.isfinite(k).all():
        form = "published" if as_published else "corrected"
        hint = " (NTKA kernels are undefined for a zero input)" if name.startswith("NTKA") else ""
        raise NumericalError(f"the {form} {name} kernel has non-finite entries{hint}")
    return k


def all_kernels(
    x1,
    x2=None,
    *,
    as_published: bool = True,
    names: Iterable[str] = KERNEL_NAMES,
    d_in: float = D_IN,
) -> dict[str, np.ndarray]:
    """Several of the nine kernels on one input set, sharing ``<x, y>``, ``H1``, ``H2``, ...

    Returns ``{name: K}`` with ``K[i, j] = k(x1_i, x2_j)``, float64 of shape (n1, n2) (the
    Gram matrix of ``x1``, exactly symmetric, when ``x2`` is None). ``as_published`` chooses the
    published (``k(x,y) / (k(x) k(y))``) or corrected (``k(x,y) / sqrt(k(x) k(y))``) angle.

    The work runs over blocks of 64 rows (cache-sized temporaries; for a Gram matrix only the
    upper triangle, mirrored), on one thread per available core (numpy releases the GIL in its
    element-wise loops).
    """
    names = _check_names(names)
    a, b, symmetric = input_pair(x1, x2)
    if symmetric:
        b = a
    dot, n1, n2 = gram(a, b, symmetric)
    as_published = bool(as_published)
    out = {name: np.empty(dot.shape, dtype=np.float64) for name in names}

    def run(start: int) -> None:
        stop = min(start + _BLOCK_ROWS, a.shape[0])
        if symmetric:
            # rows start:stop against columns start: only; the rest is the mirror image.
            # Entries (i, j) and (j, i) come from identical inputs, so the result is exactly
            # symmetric, and blocks write disjoint regions (threads need no lock).
            block = _Block(
                dot[start:stop, start:], n1[start:stop], n2[start:], a[start:stop], b[start:],
                as_published, d_in, 0,
            )
            for name in names:
                values = block.kernel(name)
                out[name][start:stop, start:] = values
                out[name][start:, start:stop] = values.T
            return
        block = _Block(
            dot[start:stop], n1[start:stop], n2, a[start:stop], b, as_published, d_in, None
        )
        for name in names:
            out[name][start:stop] = block.kernel(name)

    starts = range(0, a.shape[0], _BLOCK_ROWS)
    workers = min(_workers(), len(starts))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return {name: _finite(name, k, as_published) for name, k in out.items()}


def kernel(name: str, x1, x2=None, *, as_published: bool = True, d_in: float = D_IN) -> np.ndarray:
    """One of :data:`KERNEL_NAMES` (formulas in the module docstring), shape (n1, n2), float64."""
    (name,) = _check_names((name,))
    return all_kernels(x1, x2, as_published=as_published, names=(name,), d_in=d_in)[name]


def kernels_over_trials(
    inputs: Iterable,
    *,
    as_published: bool = True,
    names: Iterable[str] = KERNEL_NAMES,
    d_in: float = D_IN,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield :func:`all_kernels` (Gram matrices) for each input set of ``inputs``, one at a time.

    ``inputs`` is an iterable of (n, d) arrays, or one (trials, n, d) array. One trial's Gram
    matrices are alive at a time (nine 1000 x 1000 float64 matrices are 72 MB).
    """
    names = _check_names(names)
    for x in inputs:
        yield all_kernels(x, as_published=as_published, names=names, d_in=d_in)


# ------------------------------------------------------------------ infinite-width networks
@dataclass(frozen=True)
class Limit:
    """Which infinite-width network a corrected kernel belongs to (module docstring table).

    ``kind`` is "nngp" or "ntk" of ``FullyConnected(depth, width, "relu", W_std, b_std)`` in the
    NTK parameterization, evaluated at inputs ``x * input_scale(d)``. ``first_layer_standard``:
    the network's first layer is in the standard parameterization instead (its NTK exceeds the
    FullyConnected one by ``c1 H1' (1 - 1/d) <x, y>``, propagated). ``exact`` is False where no
    such network exists (``note`` says what the kernel is instead).
    """

    kind: str | None
    depth: int | None
    W_std: float | None
    b_std: float | None
    input_scale: str | None  # "1", "1/sqrt2" or "sqrt(d/2)"
    first_layer_standard: bool
    exact: bool
    note: str

    def scale(self, d: float) -> float:
        return {"1": 1.0, "1/sqrt2": 1.0 / math.sqrt(2.0), "sqrt(d/2)": math.sqrt(d / 2.0)}[
            self.input_scale
        ]


_R2 = math.sqrt(2.0)
LIMITS: dict[str, Limit] = {
    "GP1": Limit("nngp", 1, _R2, 1.0, "1/sqrt2", False, True,
                 "NNGP of a 1-hidden-layer ReLU net, first layer (1, 1), readout sigma_w^2 = 2"),
    "GP2": Limit("nngp", 2, _R2, 1.0, "1/sqrt2", False, True,
                 "NNGP of a 2-hidden-layer ReLU net, first layer (1, 1), then sigma_w^2 = 2"),
    "NTKJ1": Limit("ntk", 1, 1.0, 1.0, "1", False, True,
                   "NTK of the trained NN1 (all weights and biases N(0, 1), NTK parameterization)"),
    "NTKJ2": Limit(None, None, None, None, None, False, False,
                   "no network: NN1's NTK propagated through second-layer expectations of GP1's "
                   "covariance; the trained NN2's NTK is ntk(FC(2, 1, 1))"),
    "NTKA1": Limit("ntk", 1, _R2, 0.0, "sqrt(d/2)", False, True,
                   "bias-free NTK (Arora et al. 2019), first-layer covariance <x, y>"),
    "NTKA2": Limit("ntk", 2, _R2, 0.0, "sqrt(d/2)", False, True,
                   "bias-free NTK (Arora et al. 2019), two hidden layers"),
    "NTKB1": Limit("ntk", 1, _R2, 1.0, "1/sqrt2", True, True,
                   "NTK of Dense_standard(1, 1) -> relu -> Dense_ntk(sqrt 2, 1)"),
    "NTKB2": Limit("ntk", 2, _R2, 1.0, "1/sqrt2", True, True,
                   "NTK of Dense_standard(1, 1) -> relu -> Dense_ntk(sqrt 2, 1) -> relu -> "
                   "Dense_ntk(sqrt 2, 1)"),
    "LAPLACE": Limit(None, None, None, None, None, False, False, "not a network kernel"),
}


def limit_kernel(name: str, x1, x2=None, *, width: int = 1) -> np.ndarray:
    """The right-hand side of :data:`LIMITS` ``[name]``, computed with :mod:`.analytic`.

    For ``exact`` entries this equals ``kernel(name, x1, x2, as_published=False, d_in=d)``
    (``d`` the input dimension). ``width`` does not enter (NTK parameterization) and is only
    passed to build the model. Raises ValueError for NTKJ2 and LAPLACE (no network).
    """
    from ..nets import FullyConnected  # jax; only needed here
    from . import analytic

    (name,) = _check_names((name,))
    lim = LIMITS[name]
    if not lim.exact:
        raise ValueError(f"{name} is not the kernel of an infinite-width network: {lim.note}")
    a, b, symmetric = input_pair(x1, x2)
    d = a.shape[1]
    s = lim.scale(d)
    model = FullyConnected(lim.depth, width, "relu", lim.W_std, lim.b_std, "ntk")
    xa, xb = a * s, None if symmetric else b * s
    if lim.kind == "nngp":
        return analytic.nngp(model, xa, xb)
    k = analytic.ntk(model, xa, xb)
    if lim.first_layer_standard:
        # the first layer's weight gradient adds <x, y> rather than <x, y> / d (scaled inputs:
        # sigma_w^2 <s x, s y> / d = <x, y> / d); the extra (1 - 1/d) <x, y> flows to the output
        # multiplied by sigma_w^2 E[relu' relu'] at each later layer.
        dot, qa, qb = gram(a, a if symmetric else b, symmetric)
        cov = 1.0 + dot / d
        qa, qb = 1.0 + qa / d, 1.0 + qb / d
        extra = (1.0 - 1.0 / d) * dot
        for layer in range(lim.depth):
            sh, sd = analytic.gaussian_expectations("relu", qa[:, None], qb[None, :], cov)
            if symmetric:  # rho = 1 exactly on the diagonal
                np.fill_diagonal(sh, qa / 2.0)
                np.fill_diagonal(sd, 0.5)
            extra = lim.W_std**2 * sd * extra
            cov = lim.W_std**2 * sh + lim.b_std**2
            qa = lim.W_std**2 * qa / 2.0 + lim.b_std**2
            qb = lim.W_std**2 * qb / 2.0 + lim.b_std**2
        k = k + extra
    return k
