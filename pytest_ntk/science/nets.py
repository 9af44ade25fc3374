"""Fully-connected networks: one description, both the finite network and its infinite-width kernels.

A :class:`FullyConnected` with ``depth`` hidden layers of ``width`` units computes, for an input
``x`` of dimension ``d`` (``h^0 = x``, ``n_0 = d``, ``n_l = width``),

    NTK parameterization (``parameterization="ntk"``, all W, b ~ N(0, 1)):
        z^{l+1} = W_std / sqrt(n_l) * h^l W^{l+1} + b_std * b^{l+1},   h^{l+1} = phi(z^{l+1})

    standard parameterization (``parameterization="standard"``):
        z^{l+1} = h^l W^{l+1} + b^{l+1},   W ~ N(0, W_std^2 / n_l),  b ~ N(0, b_std^2)

and the readout ``f(x) = z^{depth+1}`` is the same affine map without an activation. This is the
convention of neural-tangents' ``stax.Dense``: the two parameterizations give the same function
at initialization in distribution, but different gradients (and so different NTKs).

The same object answers the finite questions (:meth:`init`, :meth:`apply`,
:meth:`empirical_ntk`) and the infinite-width ones (:meth:`nngp`, :meth:`ntk`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .activations import ACTIVATIONS
from .empirical import fc as _fc
from .kernels import analytic

__all__ = ["FullyConnected", "ACTIVATIONS", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("ntk", "standard")

Params = list  # [{"W": (fan_in, fan_out), "b": (fan_out,)}, ...], the readout last


@dataclass(frozen=True)
class FullyConnected:
    """``depth`` hidden layers of ``width`` units with activation ``activation``, then a linear readout.

    Parameters follow neural-tangents' ``stax.Dense`` (see the module docstring for the math).
    The dataclass is frozen and hashable, so it can key caches and be a static jit argument.
    """

    depth: int
    width: int
    activation: str = "relu"
    W_std: float = 1.0
    b_std: float = 1.0
    parameterization: str = "ntk"
    out_dim: int = 1

    def __post_init__(self):
        if not isinstance(self.depth, (int, np.integer)) or self.depth < 0:
            raise ValueError(f"FullyConnected: depth must be an integer >= 0, got {self.depth!r}")
        if not isinstance(self.width, (int, np.integer)) or self.width < 1:
            raise ValueError(f"FullyConnected: width must be an integer >= 1, got {self.width!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"FullyConnected: unknown activation {self.activation!r}; "
                f"choose one of {sorted(ACTIVATIONS)}"
            )
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"FullyConnected: unknown parameterization {self.parameterization!r}; "
                f"choose one of {PARAMETERIZATIONS}"
            )
        for name in ("W_std", "b_std"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"FullyConnected: {name} must be finite and >= 0, got {value!r}")
        if self.out_dim < 1:
            raise ValueError(f"FullyConnected: out_dim must be >= 1, got {self.out_dim!r}")

    # ------------------------------------------------------------------ finite network
    def layer_sizes(self, in_dim: int) -> list[int]:
        """``[n_0 = in_dim, n_1, ..., n_depth, out_dim]``."""
        return [int(in_dim)] + [int(self.width)] * self.depth + [int(self.out_dim)]

    def init(self, key, in_dim: int, dtype=jnp.float32) -> Params:
        """Draw the parameters: a list of ``{"W": (fan_in, fan_out), "b": (fan_out,)}``, readout last."""
        sizes = self.layer_sizes(in_dim)
        keys = jax.random.split(key, 2 * (len(sizes) - 1))
        params = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = jax.random.normal(keys[2 * i], (fan_in, fan_out), dtype)
            b = jax.random.normal(keys[2 * i + 1], (fan_out,), dtype)
            if self.parameterization == "standard":
                W = W * (self.W_std / np.sqrt(fan_in))
                b = b * self.b_std
            params.append({"W": W, "b": b})
        return params

    def scales(self, fan_in: int) -> tuple[float, float]:
        """Multipliers ``(alpha, beta)`` of a layer with ``fan_in`` inputs in the forward pass
        ``z = alpha * h W + beta * b``: ``(W_std / sqrt(fan_in), b_std)`` in the NTK
        parameterization, ``(1, 1)`` in the standard one (there the scales sit in the initialisation)."""
        if self.parameterization == "ntk":
            return self.W_std / np.sqrt(fan_in), self.b_std
        return 1.0, 1.0

    def preactivations(self, params: Params, x) -> list:
        """All pre-activations ``[z^1, ..., z^depth, f]`` of the batch ``x`` (shape (n, d))."""
        phi = ACTIVATIONS[self.activation]
        h = x
        zs = []
        for i, layer in enumerate(params):
            w_scale, b_scale = self.scales(layer["W"].shape[0])
            z = w_scale * (h @ layer["W"]) + b_scale * layer["b"]
            zs.append(z)
            if i < len(params) - 1:
                h = phi(z)
        return zs

    def apply(self, params: Params, x):
        """The network's outputs: shape ``(n,)`` when ``out_dim == 1``, else ``(n, out_dim)``."""
        f = self.preactivations(params, x)[-1]
        return f[:, 0] if self.out_dim == 1 else f

    def n_params(self, in_dim: int) -> int:
        """Number of trainable parameters."""
        sizes = self.layer_sizes(in_dim)
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    # ------------------------------------------------------------------ kernels
    def nngp(self, x1, x2=None) -> np.ndarray:
        """Infinite-width NNGP kernel of the readout, float64 (see :mod:`pytest_ntk.science.kernels.analytic`)."""
        return analytic.nngp(self, x1, x2)

    def ntk(self, x1, x2=None) -> np.ndarray:
        """Infinite-width NTK, float64 (see :mod:`pytest_ntk.science.kernels.analytic`)."""
        return analytic.ntk(self, x1, x2)

    def empirical_ntk(self, params: Params, x1, x2=None, **kwargs) -> np.ndarray:
        """Exact NTK of these weights from per-layer Grams (see :mod:`pytest_ntk.science.empirical`)."""
        return _fc.fc_empirical_ntk(self, params, x1, x2, **kwargs)

    def empirical_nngp(self, params: Params, x1, x2=None, **kwargs) -> np.ndarray:
        """Empirical NNGP: the readout's feature Gram ``E_w[f(x1) f(x2)]`` given these hidden weights."""
        return _fc.fc_empirical_nngp(self, params, x1, x2, **kwargs)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (used for cache keys and reports)."""
        return {
            "kind": "FullyConnected",
            "depth": int(self.depth),
            "width": int(self.width),
            "activation": self.activation,
            "W_std": float(self.W_std),
            "b_std": float(self.b_std),
            "parameterization": self.parameterization,
            "out_dim": int(self.out_dim),
        }
