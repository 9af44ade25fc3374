r"""Infinite-width NNGP kernel and NTK of a convolutional network (:class:`pytest_ntk.science.conv.ConvNet`).

Pure float64 numpy, in blocks of input pairs. The conventions are those of neural-tangents'
``stax.serial(Conv, act, ..., Conv, act, <readout>, Dense(out))`` with the same ``W_std``/``b_std``
in every layer (``stax.Conv(channels, kernel, strides, padding, W_std, b_std)``, ``stax.Relu()`` /
``stax.Erf()``, readout ``stax.GlobalAvgPool()``, ``stax.AvgPool(window, strides, padding)`` +
``stax.Flatten()``, or ``stax.Flatten()``), so that :func:`nngp` / :func:`ntk` equal its
``kernel_fn`` (``tests/test_conv_kernels.py`` checks 1e-10 relative).

References: Novak et al. 2019, "Bayesian Deep Convolutional Networks with Many Channels are
Gaussian Processes" (CNN-GP); Garriga-Alonso et al. 2019 (ConvNets as shallow GPs); Arora et al.
2019, "On Exact Computation with an Infinitely Wide Neural Net" (CNTK); Xiao et al. 2018
(dynamical isometry of CNNs: the same patch operator).

Spatial covariance
------------------
Inputs are images ``x`` of shape ``(H, W, C)`` (NHWC batches). For two inputs ``x, y`` every
layer's kernel is a *spatial covariance*: a function of a pair of positions ``(s, s')``,
``s = (h, w)``, stored as ``K[h, w, h', w']`` per pair of inputs (``(n1, n2, H, W, H, W)``
for a batch: ``n1 n2 (HW)^2`` floats, hence the blocks below). With ``L = depth`` convolutions
of a ``k_h x k_w`` filter, strides ``(t_h, t_w)``, padding P (``SAME`` or ``VALID``, with exactly
``jax.lax.conv_general_dilated``'s pads), ``sw2 = W_std**2``, ``sb2 = b_std**2``:

    Kh^0(x, y)[s, s'] = <x[s, :], y[s', :]> / C                    (per-channel input covariance)

    patch operator  (A K)[o, o'] = 1 / (k_h k_w) * sum_{a in filter} K~[t o + a, t o' + a]

where ``K~`` is ``K`` with zeros in the padded positions (for ``SAME`` the low pad of each axis
is ``floor(p_total / 2)``, ``p_total = max((ceil(H / t) - 1) t + k - H, 0)``; ``VALID`` needs
``H >= k`` and has ``floor((H - k) / t) + 1`` outputs). Both positions move by the *same*
filter offset ``a`` because the filter is shared across positions: the weight ``w[a, c, o]``
that multiplies ``x[t o + a, c]`` also multiplies ``y[t o' + a, c]``, and weights at different
offsets are independent. Then for ``l = 1, ..., L``:

    S^l  = sw2 * A(Kh^{l-1}) + sb2                             (pre-activation covariance)
    T^l  = S^l + sw2 * A(Th^{l-1}),   Th^0 = 0                  (NTK parameterization)
    T^l  = f_l * A(Kh^{l-1}) + 1 + sw2 * A(Th^{l-1})            (standard; f_l = C_{l-1} k_h k_w)
    Kh^l[s, s'] = E[phi(u) phi(v)],  Sd^l[s, s'] = E[phi'(u) phi'(v)],
        (u, v) ~ N(0, [[S^l(x, x)[s, s], S^l[s, s']], [S^l[s, s'], S^l(y, y)[s', s']]])
    Th^l = T^l * Sd^l                                          (elementwise)

(Novak et al. 2019 eq. 7-8; Arora et al. 2019 eq. 7-10, their ``c_phi`` folded into the dual
activations as in neural-tangents). The dual activations are the closed forms of
:mod:`pytest_ntk.science.kernels.analytic` (relu: arc-cosine kernels; erf: Williams 1997;
identity; square by Isserlis' theorem; tanh by quadrature, slow), applied elementwise: only the
variances at the two positions, ``S^l(x, x)[s, s]`` and ``S^l(y, y)[s', s']``, enter, so they are
carried per input by a cheap diagonal recursion (``q[i, h, w]``). In a Gram matrix (``x2=None``) the entries
``(i, i, s, s)`` use the 1-D forms (``rho = 1`` exactly), as in :mod:`.analytic`.

Readout (a dense layer with ``f_r`` inputs on the readout features ``g``):

- ``global_avg``: ``g = mean_s h^L[s, :]`` (``f_r = C_L``):
  ``Kbar = mean_{s, s'} Kh^L[s, s']``, ``Tbar = mean_{s, s'} Th^L[s, s']``;
- ``flatten``: ``g = vec(h^L)`` (``f_r = H_L W_L C_L``):
  ``Kbar = mean_s Kh^L[s, s]`` (the spatial diagonal only), same for ``Tbar``;
- ``avg_pool``: average pooling (window ``(r_h, r_w)``, strides, padding; divided by the window
  size ``r_h r_w`` also at padded edges, neural-tangents' ``normalize_edges=False``), then
  flatten: ``(P K)[p, p'] = 1 / (r_h r_w)^2 sum_{a, a'} K~[t p + a, t p' + a']`` (independent
  offsets: pooling is a fixed linear map, not a random weight), ``Kbar = mean_p (P Kh^L)[p, p]``.

and ``nngp = sw2 * Kbar + sb2``; ``ntk = nngp + sw2 * Tbar`` (NTK parameterization) or
``f_r * Kbar + 1 + sw2 * Tbar`` (standard).

Flatten needs only the spatial diagonal: ``(A K)[o, o]`` reads ``K[t o + a, t o + a]`` only, and
the dual activations are elementwise, so the diagonal of every layer follows from the diagonal
of the one before (Novak et al. 2019 sec. 3.2: without pooling the CNN-GP equals the
locally-connected GP). That path stores ``n1 n2 H W`` floats instead of ``n1 n2 (HW)^2``; the
pooling readouts need the full tensor.

Memory and cost: pairs of inputs are independent given the per-input variances, so the full
tensors are computed ``block`` pairs at a time with ``block * (HW)^2 * 8`` bytes at most
``block_bytes`` (peak about ten such tensors in the dual activations). Cost per layer
``O(n1 n2 (HW)^2 k_h k_w)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import NumericalError
from .analytic import ACTIVATIONS, _diagonal_expectations, gaussian_expectations

__all__ = [
    "ACTIVATIONS",
    "BLOCK_BYTES",
    "PADDINGS",
    "READOUTS",
    "Geometry",
    "as_images",
    "geometry",
    "nngp",
    "nngp_and_ntk",
    "ntk",
    "same_or_valid_pads",
]

PADDINGS = ("SAME", "VALID")
READOUTS = ("global_avg", "avg_pool", "flatten")
PARAMETERIZATIONS = ("ntk", "standard")

BLOCK_BYTES = 1 << 24
"""Bytes of one full spatial tensor of a block of input pairs (16 MiB; the peak is about ten)."""


# ------------------------------------------------------------------------------ geometry
def same_or_valid_pads(size: int, k: int, stride: int, padding: str) -> tuple[int, int, int]:
    """``(out, pad_lo, pad_hi)`` of one spatial axis, as ``jax.lax.padtype_to_pads`` pads it.

    ``SAME``: ``out = ceil(size / stride)``, ``p = max((out - 1) stride + k - size, 0)``,
    ``pad_lo = p // 2``. ``VALID``: ``out = (size - k) // stride + 1`` (needs ``size >= k``), no pad.
    The caller checks ``size >= k`` for ``VALID``.
    """
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return out, total // 2, total - total // 2
    return (size - k) // stride + 1, 0, 0


@dataclass(frozen=True)
class Geometry:
    """Spatial sizes of a :class:`~pytest_ntk.science.conv.ConvNet` on ``(H, W, C)`` inputs.

    ``shapes[l]`` is ``(H_l, W_l, C_l)`` after ``l`` convolutions (``shapes[0]`` the input);
    ``pads[l]`` the ``((lo, hi), (lo, hi))`` pads of convolution ``l + 1``; ``pool`` is
    ``((P_h, P_w), ((lo, hi), (lo, hi)))`` for the ``avg_pool`` readout (else None); ``fan_ins``
    the fan-in of every dense map (convolutions ``C_{l-1} k_h k_w``, then the readout).
    """

    shapes: tuple
    pads: tuple
    pool: tuple | None
    fan_ins: tuple


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints, as ``(h, w)`` positive ints, or a ValueError naming ``name``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair


def geometry(net, in_shape) -> Geometry:
    """The spatial plan of ``net`` on inputs of shape ``(H, W, C)``; a ValueError if it cannot run.

    Raises when a ``VALID`` convolution's filter (or the ``VALID`` pooling window) is larger than
    its input, naming the layer, the filter and the input size.
    """
    if len(in_shape) != 3 or min(int(v) for v in in_shape) < 1:
        raise ValueError(f"in_shape must be (H, W, C) with positive sizes, got {tuple(in_shape)!r}")
    h, w, c = (int(v) for v in in_shape)
    kh, kw = net.kernel_size
    th, tw = net.stride
    shapes, pads, fan_ins = [(h, w, c)], [], []
    for layer in range(1, int(net.depth) + 1):
        if net.padding == "VALID" and (h < kh or w < kw):
            raise ValueError(
                f"ConvNet: kernel_size {net.kernel_size} is larger than the {h}x{w} input of "
                f"convolution {layer} with padding 'VALID' (input shape {tuple(in_shape)})"
            )
        oh, lh, hh = same_or_valid_pads(h, kh, th, net.padding)
        ow, lw, hw = same_or_valid_pads(w, kw, tw, net.padding)
        fan_ins.append(c * kh * kw)
        pads.append(((lh, hh), (lw, hw)))
        h, w, c = oh, ow, int(net.channels)
        shapes.append((h, w, c))
    pool = None
    if net.readout == "global_avg":
        fan_ins.append(c)
    elif net.readout == "flatten":
        fan_ins.append(h * w * c)
    else:
        rh, rw = net.pool_window
        ph_, pw_ = net.pool_stride
        if net.pool_padding == "VALID" and (h < rh or w < rw):
            raise ValueError(
                f"ConvNet: pool_window {net.pool_window} is larger than the {h}x{w} output of the "
                f"last convolution with pool_padding 'VALID' (input shape {tuple(in_shape)})"
            )
        oh, lh, hh = same_or_valid_pads(h, rh, ph_, net.pool_padding)
        ow, lw, hw = same_or_valid_pads(w, rw, pw_, net.pool_padding)
        pool = ((oh, ow), ((lh, hh), (lw, hw)))
        fan_ins.append(oh * ow * c)
    return Geometry(tuple(shapes), tuple(pads), pool, tuple(fan_ins))


# -------------------------------------------------------------------------------- inputs
def as_images(x, name: str) -> np.ndarray:
    """``x`` as a finite float64 array of shape ``(n, H, W, C)``, or a ValueError naming ``name``."""
    if np.iscomplexobj(x):
        raise ValueError(f"{name} must be real, got a complex array")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a 4-D array (n, H, W, C) of real numbers, got {type(x).__name__} ({exc})"
        ) from None
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D with shape (n, H, W, C) (NHWC), got shape {a.shape}")
    if min(a.shape) < 1:
        raise ValueError(f"{name} must have positive sizes (n, H, W, C), got shape {a.shape}")
    finite = np.isfinite(a)
    if not finite.all():
        first = tuple(int(v) for v in np.argwhere(~finite)[0])
        raise ValueError(f"{name} has non-finite entries (first at index {first}: {a[first]!r})")
    return a


def _input_pair(x1, x2):
    a = as_images(x1, "x1")
    if x2 is None:
        return a, a, True
    b = as_images(x2, "x2")
    if b.shape[1:] != a.shape[1:]:
        what = "channels" if b.shape[3] != a.shape[3] else "spatial size"
        raise ValueError(
            f"x1 and x2 must have the same (H, W, C): x2 of shape {b.shape} has other {what} "
            f"than x1 of shape {a.shape}"
        )
    return a, b, False


def _check_net(net):
    fields = ("depth", "channels", "kernel_size", "stride", "padding", "activation", "W_std",
              "b_std", "readout", "parameterization")
    missing = [f for f in fields if not hasattr(net, f)]
    if missing:
        raise ValueError(
            f"net must be a pytest_ntk.science.conv.ConvNet, got {type(net).__name__} "
            f"(missing {', '.join(missing)})"
        )
    if net.padding not in PADDINGS:
        raise ValueError(f"net.padding must be one of {PADDINGS}, got {net.padding!r}")
    if net.readout not in READOUTS:
        raise ValueError(f"net.readout must be one of {READOUTS}, got {net.readout!r}")
    if net.activation not in ACTIVATIONS:
        raise ValueError(f"net.activation must be one of {ACTIVATIONS}, got {net.activation!r}")
    if net.parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"net.parameterization must be one of {PARAMETERIZATIONS}, got {net.parameterization!r}"
        )


# ---------------------------------------------------------------------- spatial operators
# Layout: spatial axes first, the pair axes last -- (H, W, H', W', n1, n2) for a full tensor,
# (H, W, n1, n2) for its spatial diagonal, (H, W, n) per input -- so that every slice over a
# spatial axis moves contiguous runs of n1 n2 numbers.
def _window_sum(T, axes, k: int, stride: int, lo: int, out: int):
    """``U[o] = sum_a T[stride o + a - lo]`` jointly on ``axes`` (the same offset ``a`` on each),
    zero outside ``T`` (the padding): no padded copy, each offset adds its valid output range."""
    size = T.shape[axes[0]]
    shape = list(T.shape)
    for ax in axes:
        shape[ax] = out
    acc = np.zeros(shape)
    for a in range(k):
        first = max(0, -(-(lo - a) // stride))  # smallest o with stride o + a - lo >= 0
        last = min(out - 1, (size - 1 - a + lo) // stride)  # largest o inside the input
        if first > last:
            continue
        src = slice(stride * first + a - lo, stride * last + a - lo + 1, stride)
        dst = slice(first, last + 1)
        src_idx, dst_idx = [slice(None)] * T.ndim, [slice(None)] * T.ndim
        for ax in axes:
            src_idx[ax], dst_idx[ax] = src, dst
        acc[tuple(dst_idx)] += T[tuple(src_idx)]
    return acc


def _patch(T, kernel, stride, pads, out_hw, full: bool):
    """The patch operator ``A``: ``(A T)[o, o'] = mean_a T~[t o + a, t o' + a]`` (module docstring).

    ``full``: ``T`` is ``(H, W, H', W', ...)``; else ``(H, W, ...)`` (the spatial diagonal). The
    filter sum is separable: first the row offsets (on ``H`` and ``H'`` together), then the columns.
    """
    (kh, kw), (th, tw), ((lh, _), (lw, _)), (oh, ow) = kernel, stride, pads, out_hw
    rows, cols = ((0, 2), (1, 3)) if full else ((0,), (1,))
    out = _window_sum(T, rows, kh, th, lh, oh)
    out = _window_sum(out, cols, kw, tw, lw, ow)
    out /= kh * kw
    return out


def _spatial_diagonal_mean(T):
    """``mean_s T[s, s]`` of a full tensor ``(H, W, H, W, ...)`` -> ``(...)``."""
    h, w = T.shape[:2]
    m = h * w
    return np.diagonal(T.reshape((m, m) + T.shape[4:]), axis1=0, axis2=1).mean(axis=-1)


def _pool_diagonal(T, window, stride, pads, out_hw):
    """``mean_p (P T)[p, p]`` of average pooling ``P`` on a full tensor ``(H, W, H', W', ...)``.

    Pools each of the four spatial axes on its own (the two positions take independent offsets),
    divides by the window size squared (also at padded edges), then averages the pooled diagonal
    (the flatten).
    """
    (rh, rw), (th, tw), ((lh, _), (lw, _)), (oh, ow) = window, stride, pads, out_hw
    for ax, (r, t, lo, o) in enumerate([(rh, th, lh, oh), (rw, tw, lw, ow)] * 2):
        T = _window_sum(T, (ax,), r, t, lo, o)
    T /= (rh * rw) ** 2
    return _spatial_diagonal_mean(T)


def _readout(T, net, geo: Geometry, full: bool):
    """``Kbar`` of the readout features from the last layer's (post-activation) covariance."""
    if not full:  # flatten on the spatial diagonal
        return T.mean(axis=(0, 1))
    if net.readout == "global_avg":
        return T.mean(axis=(0, 1, 2, 3))
    if net.readout == "flatten":
        return _spatial_diagonal_mean(T)
    (oh, ow), pads = geo.pool
    return _pool_diagonal(T, net.pool_window, net.pool_stride, pads, (oh, ow))


# ----------------------------------------------------------------------------- recursion
def _variances(net, geo: Geometry, x: np.ndarray):
    """Per-input spatial variances ``q^l[h, w, i] = S^l(x_i, x_i)[s, s]`` for ``l = 1..L``,
    with the 1-D dual activations ``E[phi(u)^2]``, ``E[phi'(u)^2]`` at each of them."""
    sw2, sb2 = float(net.W_std) ** 2, float(net.b_std) ** 2
    kh = np.einsum("nhwc,nhwc->hwn", x, x) / x.shape[3]
    out = []
    for layer in range(int(net.depth)):
        oh, ow, _ = geo.shapes[layer + 1]
        q = sw2 * _patch(kh, net.kernel_size, net.stride, geo.pads[layer], (oh, ow), False) + sb2
        kh, kd = (v.reshape(q.shape) for v in _diagonal_expectations(net.activation, q.ravel()))
        out.append((q, kh, kd))
    return out


def _set_self_pairs(T, values, full: bool):
    """In a diagonal block of a Gram matrix, set the entries ``(s, s, i, i)`` to ``values[s, i]``."""
    b = T.shape[-1]
    idx = np.arange(b)
    if not full:
        T[:, :, idx, idx] = values
        return
    h, w = T.shape[:2]
    m = h * w
    if not T.flags.c_contiguous:  # reshape would copy and the assignment be lost
        raise AssertionError("internal: _set_self_pairs needs a C-contiguous tensor")
    view = T.reshape(m, m, b, b)
    r = np.arange(m)
    view[r[:, None], r[:, None], idx[None, :], idx[None, :]] = values.reshape(m, b)


def _block(net, geo, a, b, va, vb, self_block: bool, full: bool, want_ntk: bool):
    """``(nngp, ntk)`` of one block of pairs ``a x b`` (arrays ``(na, nb)``; ``ntk`` None unless wanted)."""
    sw2, sb2 = float(net.W_std) ** 2, float(net.b_std) ** 2
    standard = net.parameterization == "standard"
    na, nb = a.shape[0], b.shape[0]
    h, w, c = a.shape[1:]
    if full:
        g = (a.reshape(-1, c) @ b.reshape(-1, c).T) / c  # (na H W, nb H W)
        K = np.ascontiguousarray(g.reshape(na, h, w, nb, h, w).transpose(1, 2, 4, 5, 0, 3))
        if self_block:  # exactly symmetric: K[s, s', i, j] = K[s', s, j, i]
            K = 0.5 * (K + K.transpose(2, 3, 0, 1, 5, 4))
    else:
        K = np.einsum("ihwc,jhwc->hwij", a, b) / c
        if self_block:
            K = 0.5 * (K + K.transpose(0, 1, 3, 2))
    theta = None  # Th^{l-1}: None stands for 0
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in range(int(net.depth)):
            oh, ow, _ = geo.shapes[layer + 1]
            args = (net.kernel_size, net.stride, geo.pads[layer], (oh, ow), full)
            AK = _patch(K, *args)
            S = sw2 * AK + sb2
            if want_ntk:
                if standard:
                    T = geo.fan_ins[layer] * AK + 1.0
                else:
                    T = S.copy()
                if theta is not None:
                    T += sw2 * _patch(theta, *args)
            del AK, K
            qa, hat_a, dot_a = va[layer]
            qb, _, _ = vb[layer]
            if self_block:
                _set_self_pairs(S, qa, full)
            if full:  # q1 (H, W, 1, 1, na, 1), q2 (1, 1, H', W', 1, nb)
                q1, q2 = qa[:, :, None, None, :, None], qb[None, None, :, :, None, :]
            else:  # (H, W, na, 1), (H, W, 1, nb)
                q1, q2 = qa[:, :, :, None], qb[:, :, None, :]
            K, Sd = gaussian_expectations(net.activation, q1, q2, S)
            if self_block:
                _set_self_pairs(K, hat_a, full)
                _set_self_pairs(Sd, dot_a, full)
            del S
            if want_ntk:
                T *= Sd
                theta = T
            del Sd
        kbar = _readout(K, net, geo, full)
        nngp = sw2 * kbar + sb2
        if not want_ntk:
            return nngp, None
        tbar = 0.0 if theta is None else _readout(theta, net, geo, full)
        if standard:
            ntk = geo.fan_ins[-1] * kbar + 1.0 + sw2 * tbar
        else:
            ntk = nngp + sw2 * tbar
    return nngp, ntk


def _block_size(per_pair_floats: int, block_bytes: int) -> int:
    pairs = max(1, int(block_bytes) // (8 * per_pair_floats))
    return max(1, math.isqrt(pairs))


def _recursion(net, x1, x2, want_ntk: bool, *, full_spatial=None, block_bytes: int = BLOCK_BYTES):
    _check_net(net)
    a, b, symmetric = _input_pair(x1, x2)
    geo = geometry(net, a.shape[1:])
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, (int, np.integer)) or block_bytes < 1:
        raise ValueError(f"block_bytes must be a positive integer, got {block_bytes!r}")
    if full_spatial is None:
        full_spatial = net.readout != "flatten"
    elif not full_spatial and net.readout != "flatten":
        raise ValueError(
            f"full_spatial=False is exact only for the 'flatten' readout, got readout {net.readout!r}"
        )
    va = _variances(net, geo, a)
    vb = va if symmetric else _variances(net, geo, b)
    n1, n2 = a.shape[0], b.shape[0]
    # the largest spatial tensor of a pair: the input layer's, or a later one if it is larger
    per_pair = max(h * w for h, w, _ in geo.shapes) ** (2 if full_spatial else 1)
    bs = _block_size(per_pair, block_bytes)
    nngp = np.empty((n1, n2))
    ntk = np.empty((n1, n2)) if want_ntk else None
    for i in range(0, n1, bs):
        si = slice(i, min(i + bs, n1))
        vai = [tuple(v[..., si] for v in triple) for triple in va]
        for j in range(i if symmetric else 0, n2, bs):
            sj = slice(j, min(j + bs, n2))
            vbj = [tuple(v[..., sj] for v in triple) for triple in vb]
            k_ij, t_ij = _block(net, geo, a[si], b[sj], vai, vbj, symmetric and i == j, full_spatial,
                                want_ntk)
            nngp[si, sj] = k_ij
            if want_ntk:
                ntk[si, sj] = t_ij
            if symmetric and j > i:
                nngp[sj, si] = k_ij.T
                if want_ntk:
                    ntk[sj, si] = t_ij.T
    if symmetric:
        nngp = 0.5 * (nngp + nngp.T)
        ntk = None if ntk is None else 0.5 * (ntk + ntk.T)
    for name, value in (("nngp", nngp), ("ntk", ntk)):
        if value is not None and not np.isfinite(value).all():
            raise NumericalError(
                f"the infinite-width {name} of {net!r} has non-finite entries "
                f"(max |x| = {max(np.abs(a).max(), np.abs(b).max()):.3g}): "
                "the recursion overflowed; lower W_std/depth or rescale the inputs"
            )
    return nngp, ntk


def nngp(net, x1, x2=None, *, full_spatial=None, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    r"""Infinite-width NNGP kernel ``sw2 * Kbar + sb2`` of ``net``'s readout, shape ``(n1, n2)``, float64.

    ``x1``, ``x2``: images ``(n, H, W, C)`` (``x2=None``: the Gram matrix of ``x1``, exactly
    symmetric). ``full_spatial``: keep the full ``(HW)^2`` covariance per pair (default: all
    readouts but ``flatten``, which needs only the spatial diagonal; ``True`` forces the full
    tensor, for checks). ``block_bytes``: the size of one full tensor of a block of pairs.
    Recursion in the module docstring.
    """
    return _recursion(net, x1, x2, False, full_spatial=full_spatial, block_bytes=block_bytes)[0]


def ntk(net, x1, x2=None, *, full_spatial=None, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    r"""Infinite-width NTK of ``net``'s readout, shape ``(n1, n2)``, float64.

    ``T^l = S^l + sw2 A(T^{l-1} * Sd^{l-1})`` through the convolutions, then the readout
    (module docstring). Arguments as in :func:`nngp`.
    """
    return _recursion(net, x1, x2, True, full_spatial=full_spatial, block_bytes=block_bytes)[1]


def nngp_and_ntk(net, x1, x2=None, *, full_spatial=None, block_bytes: int = BLOCK_BYTES):
    """Both kernels from one pass of the recursion: ``(nngp, ntk)``."""
    return _recursion(net, x1, x2, True, full_spatial=full_spatial, block_bytes=block_bytes)
