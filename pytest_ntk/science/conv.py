r"""Convolutional networks: one description, both the finite network and its infinite-width kernels.

A :class:`ConvNet` with ``depth`` convolutions of ``channels`` output channels, filter
``k_h x k_w``, strides ``t`` and padding ``SAME``/``VALID`` computes, for images ``x`` of shape
``(n, H, W, C)`` (NHWC; ``h^0 = x``, ``C_0 = C``, ``C_l = channels``),

    NTK parameterization (``parameterization="ntk"``, all w, b ~ N(0, 1)):
        z^l[o, :] = W_std / sqrt(f_l) * sum_{a, c} h^{l-1}[t o + a - p, c] w^l[a, c, :] + b_std * b^l
        h^l = phi(z^l),   f_l = C_{l-1} k_h k_w   (the fan-in: input channels times filter size)

    standard parameterization (``parameterization="standard"``): the same without the
        multipliers, with w ~ N(0, W_std^2 / f_l) and b ~ N(0, b_std^2)

(zeros outside the image, pads exactly as ``jax.lax.conv_general_dilated``'s), then the readout
features ``g`` and a dense readout ``f(x) = W_std / sqrt(f_r) * g W + b_std * b``:

- ``readout="global_avg"``: ``g = mean_s h^L[s, :]`` (global average pooling, ``f_r = C_L``);
- ``readout="avg_pool"``: average pooling of window ``pool_window`` with ``pool_stride`` and
  ``pool_padding`` (divided by the window size, also at padded edges), flattened;
- ``readout="flatten"``: ``g = vec(h^L)`` (``f_r = H_L W_L C_L``).

This is neural-tangents' ``stax.serial(Conv(channels, kernel_size, stride, padding, W_std, b_std,
parameterization), act, ..., <readout>, Dense(out_dim, W_std, b_std, parameterization))`` with
readouts ``GlobalAvgPool()``, ``AvgPool(pool_window, pool_stride, pool_padding)`` +
``Flatten()``, ``Flatten()``. Like ``stax.AvgPool`` (and ``jax.example_libraries.stax``),
``pool_stride=None`` means stride 1.

The same object answers the finite questions (:meth:`ConvNet.init`, :meth:`ConvNet.apply`,
:meth:`ConvNet.empirical_ntk`, :meth:`ConvNet.empirical_nngp`, :func:`monte_carlo_kernels`) and the
infinite-width ones (:meth:`ConvNet.nngp`, :meth:`ConvNet.ntk`: the CNN-GP and CNTK recursions of
:mod:`pytest_ntk.science.kernels.conv`, float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .activations import ACTIVATIONS
from .empirical import MonteCarloKernels
from .empirical import empirical_ntk as _generic_empirical_ntk
from .empirical._common import (
    _cast_tree,
    _finite,
    _precision,
    _resolve_dtype,
    _symmetrize,
)
from .kernels import conv as _kernels
from .kernels.conv import PADDINGS, READOUTS, _pair

__all__ = ["PADDINGS", "READOUTS", "ConvNet", "monte_carlo_kernels"]

PARAMETERIZATIONS = ("ntk", "standard")

Params = list  # [{"W": (k_h, k_w, C_in, C_out), "b": (C_out,)}, ..., {"W": (f_r, out), "b": (out,)}]

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _padding(value, name: str) -> str:
    if not isinstance(value, str) or value.upper() not in PADDINGS:
        raise ValueError(f"ConvNet: unknown {name} {value!r}; choose one of {PADDINGS}")
    return value.upper()


@dataclass(frozen=True)
class ConvNet:
    """``depth`` convolutions of ``channels`` channels with ``activation``, a readout, a dense layer.

    ``kernel_size``, ``stride``, ``pool_window`` and ``pool_stride`` take an int or an ``(h, w)``
    pair (stored as pairs). Math and the neural-tangents equivalent in the module docstring. The
    dataclass is frozen and hashable, so it can key caches and be a static jit argument.
    """

    depth: int
    channels: int
    kernel_size: Any = 3
    stride: Any = 1
    padding: str = "SAME"
    activation: str = "relu"
    W_std: float = 1.0
    b_std: float = 1.0
    readout: str = "global_avg"
    pool_window: Any = None
    pool_stride: Any = None
    pool_padding: str = "VALID"
    parameterization: str = "ntk"
    out_dim: int = 1

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 0:
            raise ValueError(f"ConvNet: depth must be an integer >= 0, got {self.depth!r}")
        if isinstance(self.channels, bool) or not isinstance(self.channels, (int, np.integer)) or self.channels < 1:
            raise ValueError(f"ConvNet: channels must be an integer >= 1, got {self.channels!r}")
        put("depth", int(self.depth))
        put("channels", int(self.channels))
        put("kernel_size", _pair(self.kernel_size, "ConvNet: kernel_size"))
        put("stride", _pair(self.stride, "ConvNet: stride"))
        put("padding", _padding(self.padding, "padding"))
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"ConvNet: unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        if self.readout not in READOUTS:
            raise ValueError(f"ConvNet: unknown readout {self.readout!r}; choose one of {READOUTS}")
        if self.readout == "avg_pool":
            if self.pool_window is None:
                raise ValueError("ConvNet: readout 'avg_pool' needs pool_window (an int or a pair)")
            put("pool_window", _pair(self.pool_window, "ConvNet: pool_window"))
            put("pool_stride", _pair(1 if self.pool_stride is None else self.pool_stride, "ConvNet: pool_stride"))
            put("pool_padding", _padding(self.pool_padding, "pool_padding"))
        elif self.pool_window is not None or self.pool_stride is not None:
            raise ValueError(
                f"ConvNet: pool_window/pool_stride apply to readout 'avg_pool' only, got readout "
                f"{self.readout!r} with pool_window={self.pool_window!r}, pool_stride={self.pool_stride!r}"
            )
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"ConvNet: unknown parameterization {self.parameterization!r}; choose one of {PARAMETERIZATIONS}"
            )
        for name in ("W_std", "b_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not np.isfinite(value) or value < 0:
                raise ValueError(f"ConvNet: {name} must be finite and >= 0, got {value!r}")
            put(name, float(value))
        if isinstance(self.out_dim, bool) or not isinstance(self.out_dim, (int, np.integer)) or self.out_dim < 1:
            raise ValueError(f"ConvNet: out_dim must be an integer >= 1, got {self.out_dim!r}")
        put("out_dim", int(self.out_dim))

    # ------------------------------------------------------------------ shapes
    @staticmethod
    def _image_shape(in_shape) -> tuple[int, int, int]:
        shape = tuple(in_shape)
        if len(shape) == 4:  # (n, H, W, C), as stax's init_fn takes it; n is ignored
            shape = shape[1:]
        if len(shape) != 3 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in shape):
            raise ValueError(
                f"ConvNet: in_shape must be (H, W, C) or (n, H, W, C) with positive ints, got {tuple(in_shape)!r}"
            )
        return tuple(int(v) for v in shape)

    def geometry(self, in_shape) -> _kernels.Geometry:
        """Spatial sizes, pads and fan-ins on inputs ``(H, W, C)`` (a ValueError if they cannot run)."""
        return _kernels.geometry(self, self._image_shape(in_shape))

    def layer_shapes(self, in_shape) -> list[tuple[int, int, int]]:
        """``[(H, W, C), (H_1, W_1, channels), ..., (H_L, W_L, channels)]``."""
        return list(self.geometry(in_shape).shapes)

    def n_params(self, in_shape) -> int:
        """Number of trainable parameters."""
        geo = self.geometry(in_shape)
        convs = sum(f * self.channels + self.channels for f in geo.fan_ins[:-1])
        return convs + geo.fan_ins[-1] * self.out_dim + self.out_dim

    # ------------------------------------------------------------------ finite network
    def init(self, key, in_shape, dtype=jnp.float32) -> Params:
        """Draw the parameters for images of shape ``in_shape`` = ``(H, W, C)`` (or ``(n, H, W, C)``).

        A list of ``{"W": (k_h, k_w, C_in, channels), "b": (channels,)}`` per convolution (HWIO),
        then the readout ``{"W": (f_r, out_dim), "b": (out_dim,)}``. All N(0, 1) in the NTK
        parameterization; scaled by ``W_std / sqrt(fan_in)`` and ``b_std`` in the standard one.
        """
        geo = self.geometry(in_shape)
        kh, kw = self.kernel_size
        keys = jax.random.split(key, 2 * (self.depth + 1))
        params = []
        for layer in range(self.depth + 1):
            if layer < self.depth:
                c_in = geo.shapes[layer][2]
                w_shape, b_shape = (kh, kw, c_in, self.channels), (self.channels,)
            else:
                w_shape, b_shape = (geo.fan_ins[-1], self.out_dim), (self.out_dim,)
            W = jax.random.normal(keys[2 * layer], w_shape, dtype)
            b = jax.random.normal(keys[2 * layer + 1], b_shape, dtype)
            if self.parameterization == "standard":
                W = W * (self.W_std / math.sqrt(geo.fan_ins[layer]))
                b = b * self.b_std
            params.append({"W": W, "b": b})
        return params

    def _scales(self, fan_in: int) -> tuple[float, float]:
        if self.parameterization == "ntk":
            return self.W_std / math.sqrt(fan_in), self.b_std
        return 1.0, 1.0

    def _check_params(self, params, x):
        if x.ndim != 4:
            raise ValueError(f"ConvNet.apply: x must be 4-D (n, H, W, C) (NHWC), got shape {tuple(x.shape)}")
        if not isinstance(params, (list, tuple)) or len(params) != self.depth + 1:
            raise ValueError(
                f"ConvNet.apply: params must be a list of {self.depth + 1} layers (from ConvNet.init), "
                f"got {type(params).__name__} of length {len(params) if hasattr(params, '__len__') else '?'}"
            )
        geo = self.geometry(x.shape[1:])
        expected = geo.fan_ins[-1]
        if self.depth:
            c_in = params[0]["W"].shape[2]
            if c_in != x.shape[3]:
                raise ValueError(
                    f"ConvNet.apply: x has {x.shape[3]} channels but the parameters expect {c_in} "
                    f"(x of shape {tuple(x.shape)})"
                )
        if params[-1]["W"].shape[0] != expected:
            raise ValueError(
                f"ConvNet.apply: the readout expects {params[-1]['W'].shape[0]} features but images of "
                f"shape {tuple(x.shape[1:])} give {expected} (were the parameters drawn for another in_shape?)"
            )
        return geo

    def readout_features(self, params: Params, x):
        """The readout's input features ``g`` (shape ``(n, f_r)``), before the dense readout."""
        geo = self._check_params(params, x)
        phi = ACTIVATIONS[self.activation]
        h = x
        for layer in range(self.depth):
            w_scale, b_scale = self._scales(geo.fan_ins[layer])
            z = jax.lax.conv_general_dilated(
                h, params[layer]["W"], self.stride, self.padding, dimension_numbers=_DIMENSION_NUMBERS
            )
            h = phi(w_scale * z + b_scale * params[layer]["b"])
        if self.readout == "global_avg":
            return jnp.mean(h, axis=(1, 2))
        if self.readout == "avg_pool":
            rh, rw = self.pool_window
            h = jax.lax.reduce_window(
                h, jnp.zeros((), h.dtype), jax.lax.add, (1, rh, rw, 1), (1,) + self.pool_stride + (1,),
                self.pool_padding,
            ) / (rh * rw)
        return jnp.reshape(h, (h.shape[0], -1))

    def apply(self, params: Params, x):
        """The network's outputs: shape ``(n,)`` when ``out_dim == 1``, else ``(n, out_dim)``. Jit-able."""
        g = self.readout_features(params, x)
        w_scale, b_scale = self._scales(g.shape[1])
        f = w_scale * (g @ params[-1]["W"]) + b_scale * params[-1]["b"]
        return f[:, 0] if self.out_dim == 1 else f

    # ------------------------------------------------------------------ kernels
    def nngp(self, x1, x2=None, **kwargs) -> np.ndarray:
        """Infinite-width NNGP kernel (CNN-GP) of the readout, float64 (:func:`pytest_ntk.science.kernels.conv.nngp`)."""
        return _kernels.nngp(self, x1, x2, **kwargs)

    def ntk(self, x1, x2=None, **kwargs) -> np.ndarray:
        """Infinite-width NTK (CNTK) of the readout, float64 (:func:`pytest_ntk.science.kernels.conv.ntk`)."""
        return _kernels.ntk(self, x1, x2, **kwargs)

    def nngp_and_ntk(self, x1, x2=None, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Both infinite-width kernels from one pass of the recursion."""
        return _kernels.nngp_and_ntk(self, x1, x2, **kwargs)

    def empirical_ntk(self, params: Params, x1, x2=None, **kwargs) -> np.ndarray:
        """Exact NTK of these weights by the generic path (:func:`pytest_ntk.science.empirical.empirical_ntk`)."""
        return _generic_empirical_ntk(self.apply, params, x1, x2, **kwargs)

    def empirical_nngp(self, params: Params, x1, x2=None, *, dtype=None) -> np.ndarray:
        r"""Empirical NNGP: the readout's covariance given the convolution weights, float64 ``(n1, n2)``.

        With the convolutions fixed and the readout drawn from its prior (effective weight variance
        ``W_std^2 / f_r``, bias variance ``b_std^2``, either parameterization), each output is a
        centred Gaussian process with ``E[f(x) f(x')] = W_std^2 / f_r <g(x), g(x')> + b_std^2``
        (``g`` the readout features). Averaged over the convolution weights it tends to
        :meth:`nngp` as ``channels`` grows. The readout's own values in ``params`` are not used.
        """
        dtype = _resolve_dtype(dtype, params)
        with _precision(dtype):
            p = _cast_tree(params, dtype)
            g1 = np.asarray(self.readout_features(p, jnp.asarray(x1, dtype)), np.float64)
            g2 = g1 if x2 is None else np.asarray(self.readout_features(p, jnp.asarray(x2, dtype)), np.float64)
        out = self.W_std**2 / g1.shape[1] * (g1 @ g2.T) + self.b_std**2
        if x2 is None:
            out = _symmetrize(out)
        return _finite(out, f"empirical_nngp of {self.describe()}")

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (used for cache keys and reports)."""
        return {
            "kind": "ConvNet",
            "depth": self.depth,
            "channels": self.channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding,
            "activation": self.activation,
            "W_std": self.W_std,
            "b_std": self.b_std,
            "readout": self.readout,
            "pool_window": None if self.pool_window is None else list(self.pool_window),
            "pool_stride": None if self.pool_stride is None else list(self.pool_stride),
            "pool_padding": self.pool_padding if self.readout == "avg_pool" else None,
            "parameterization": self.parameterization,
            "out_dim": self.out_dim,
        }


def monte_carlo_kernels(
    net: ConvNet,
    key,
    x1,
    x2=None,
    *,
    n_samples: int,
    dtype=np.float32,
    keep_samples: bool = False,
    **ntk_kwargs,
) -> MonteCarloKernels:
    r"""Seed statistics of :meth:`ConvNet.empirical_nngp` and :meth:`ConvNet.empirical_ntk`.

    Sample ``s`` uses ``net.init(jax.random.split(key, n_samples)[s], x1.shape, dtype)``. Means and
    sample standard deviations (``ddof=1``) are taken in float64; the standard error of a mean
    entry is ``std / sqrt(n_samples)`` (:meth:`MonteCarloKernels.sem`). As ``channels`` grows the
    means tend to :meth:`ConvNet.nngp` / :meth:`ConvNet.ntk` (bias ``O(1 / channels)``) and the
    spread shrinks like ``1 / sqrt(channels)``. Seeds run one after another (the empirical NTK of a
    wide convolution is large already); ``ntk_kwargs`` go to :func:`~pytest_ntk.science.empirical.empirical_ntk`.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    a = _kernels.as_images(x1, "x1")
    b = None if x2 is None else _kernels.as_images(x2, "x2")
    if b is not None and b.shape[1:] != a.shape[1:]:
        raise ValueError(f"x2 of shape {b.shape} must have the (H, W, C) of x1 {a.shape}")
    dtype = _resolve_dtype(dtype, None)
    keys = jax.random.split(key, int(n_samples))
    nngps, ntks = [], []
    for s in range(int(n_samples)):
        params = net.init(keys[s], a.shape, dtype)
        nngps.append(net.empirical_nngp(params, a, b, dtype=dtype))
        ntks.append(net.empirical_ntk(params, a.astype(dtype), None if b is None else b.astype(dtype),
                                      dtype=dtype, **ntk_kwargs))
    nngps, ntks = np.stack(nngps), np.stack(ntks)
    ddof = 1 if n_samples > 1 else 0
    return MonteCarloKernels(
        nngp=nngps.mean(axis=0),
        ntk=ntks.mean(axis=0),
        nngp_std=nngps.std(axis=0, ddof=ddof),
        ntk_std=ntks.std(axis=0, ddof=ddof),
        n_samples=int(n_samples),
        nngp_samples=nngps if keep_samples else None,
        ntk_samples=ntks if keep_samples else None,
    )
