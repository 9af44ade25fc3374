r"""Wrappers of a network that the claims of the literature train, and the norms they measure with.

- :class:`Centred`: :math:`g(p, x) = f(w, x) - c\, f(w_0, x)` -- with :math:`c = 1` the network
  minus its own initial function (Lee et al. 2020's centring; Chizat et al. 2019's centred model),
  with :math:`c = 0` the plain network, so both train in one compiled program;
- :class:`OutputScaled`: :math:`g(p, x) = \alpha\,[f(w_0 + v/\alpha, x) - c\, f(w_0, x)]`, the
  output-scaled model of Chizat, Oyallon & Bach (2019), trained in the coordinates ``v``;
- :func:`rms` and :func:`tree_norm`.

Both wrappers follow the interface :func:`pytest_ntk.science.train.train` expects (``init``,
``apply``, ``describe``; frozen dataclasses, so hashable); the fixed parts (``w0``, ``c``,
``alpha``) sit behind ``jax.lax.stop_gradient``: their gradients are zero and they never move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Centred", "OutputScaled", "rms", "tree_norm"]


def rms(a, axis=None) -> np.ndarray | float:
    """Root mean square :math:`\\sqrt{\\mathrm{mean}(a^2)}` in float64 (a test RMSE when ``a`` is a residual)."""
    a = np.asarray(a, np.float64)
    return np.sqrt(np.mean(a * a, axis=axis))


def tree_norm(tree, axis: int | None = None) -> np.ndarray | float:
    """Euclidean norm of all the leaves of a pytree together (float64).

    With ``axis=0`` the leaves carry a leading axis (seeds, say) and one norm per index is returned.
    """
    import jax

    leaves = [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(tree)]
    if axis is None:
        return float(np.sqrt(sum(float(np.sum(leaf * leaf)) for leaf in leaves)))
    if axis != 0:
        raise ValueError(f"tree_norm: axis must be None or 0, got {axis!r}")
    return np.sqrt(sum(np.sum(leaf.reshape(leaf.shape[0], -1) ** 2, axis=1) for leaf in leaves))


@dataclass(frozen=True)
class Centred:
    r""":math:`g(p, x) = f(w, x) - c\, f(w_0, x)` with ``p = {"w", "w0", "centre"}`` (only ``w`` trains).

    :meth:`init` draws ``w = w0 = net.init(key)`` and ``centre = 1``: ``g`` starts at exactly 0 and
    its gradient, hence its NTK, is the network's; trained on targets ``y`` it is the network
    trained on ``y + f(w_0)``. ``centred=False`` gives ``centre = 0``: the plain network, whose
    parameters have the same structure (both kinds train in one vmapped program).
    """

    net: Any  # a FullyConnected (or anything with init/apply/describe)
    centred: bool = True

    def init(self, key, in_dim, dtype=None) -> dict:
        import jax.numpy as jnp

        dtype = dtype or jnp.float32
        w = self.net.init(key, in_dim, dtype)
        return {"w": w, "w0": w, "centre": jnp.asarray(1.0 if self.centred else 0.0, dtype)}

    def apply(self, p, x):
        import jax

        sg = jax.lax.stop_gradient
        return self.net.apply(p["w"], x) - sg(p["centre"]) * self.net.apply(sg(p["w0"]), x)

    def stacked_params(self, seeds, in_dim: int, dtype, centre=None) -> dict:
        """Initial parameters for ``train(..., params=...)``, stacked over ``seeds``.

        ``w = w0 = net.init(PRNGKey(seed))`` -- what ``train`` draws for the plain network with
        the same seed -- and ``centre`` per seed (default: 1 when ``centred``, else 0; pass a
        sequence to mix centred and plain members).
        """
        import jax
        import jax.numpy as jnp

        keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
        w = jax.jit(jax.vmap(lambda k: self.net.init(k, in_dim, dtype)))(keys)
        if centre is None:
            centre = [1.0 if self.centred else 0.0] * len(seeds)
        return {"w": w, "w0": w, "centre": jnp.asarray(centre, dtype)}

    def describe(self) -> dict:
        return {"kind": "Centred", "centred": bool(self.centred), "net": self.net.describe()}


@dataclass(frozen=True)
class OutputScaled:
    r""":math:`g(p, x) = \alpha\,[f(w_0 + v/\alpha, x) - c\, f(w_0, x)]`, ``p = {"v", "w0", "alpha", "centre"}``.

    Chizat, Oyallon & Bach (2019) scale a model's output by :math:`\alpha` and train it on
    :math:`\frac{1}{2n}\|g - y\|^2` with step :math:`\eta/\alpha^2`; in the coordinates
    :math:`v = \alpha (w - w_0)` that is plain gradient descent on ``v`` with step :math:`\eta`
    (what :func:`~pytest_ntk.science.train.train` runs here). :meth:`init` gives ``v = 0``,
    ``alpha = 1`` and ``centre = 1``; set ``alpha`` and ``centre`` in the parameters before training.
    """

    net: Any

    def init(self, key, in_dim, dtype=None) -> dict:
        import jax
        import jax.numpy as jnp

        dtype = dtype or jnp.float32
        w0 = self.net.init(key, in_dim, dtype)
        return {"v": jax.tree_util.tree_map(jnp.zeros_like, w0), "w0": w0,
                "alpha": jnp.ones((), dtype), "centre": jnp.ones((), dtype)}

    def apply(self, p, x):
        import jax

        sg = jax.lax.stop_gradient
        w0, alpha, centre = sg(p["w0"]), sg(p["alpha"]), sg(p["centre"])
        w = jax.tree_util.tree_map(lambda a, b: a + b / alpha, w0, p["v"])
        return alpha * (self.net.apply(w, x) - centre * self.net.apply(w0, x))

    def describe(self) -> dict:
        return {"kind": "OutputScaled", "net": self.net.describe()}
