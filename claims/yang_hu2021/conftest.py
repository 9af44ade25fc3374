"""Yang & Hu (2021), Tensor Programs IV (arXiv:2011.14522): features move under muP, freeze under NTP.

abc-parametrization (TP4, Sec. 3). An MLP with ``L`` hidden layers of width ``n``, input ``x`` of
fixed dimension ``d`` and no biases,

    z^1 = n^{-a_1} W^1 x / sqrt(d),   z^l = n^{-a_l} W^l phi(z^{l-1}) (2 <= l <= L),   f = n^{-a_{L+1}} W^{L+1} phi(z^L),

has trainable weights ``W^l`` drawn i.i.d. ``N(0, n^{-2 b_l})`` and trained by gradient descent with
step ``eta n^{-c}``. (The constant ``1/sqrt(d)`` -- width independent, so outside the abc scaling --
makes the NTK parameterization below coincide exactly with :class:`pytest_ntk.science.nets.FullyConnected`,
``parameterization="ntk"``, ``b_std=0``; :func:`feature_changes` checks that it does.)

The two parametrizations compared (TP4's abc exponents, written out; the same muP appears in SP form
as Table 3 of Tensor Programs V, arXiv:2203.03466: input weights init var 1/fan_in and SGD step
eta * fan_out, hidden weights 1/fan_in and eta, output weights 1/fan_in^2 and eta / fan_in):

    =======  ========================  ===================  ===
             a_1, a_2..a_L, a_{L+1}    b_1..b_{L+1}         c
    =======  ========================  ===================  ===
    NTP      0,   1/2,      1/2        0                    0
    muP      -1/2, 0,       1/2        1/2                  0
    =======  ========================  ===================  ===

The prediction (TP4 Sec. 3-5, the dynamical dichotomy): after a fixed number ``k`` of gradient steps
at a width-independent ``eta``, a hidden layer's features change by ``Theta(n^{-1/2})`` relative to
their ``Theta(1)`` size under NTP (kernel regime: ``Delta W`` has entries ``O(n^{-3/2})`` and
``Delta z = Delta W phi(z) = O(n^{-1/2})``), and by ``Theta(1)`` under muP (feature learning:
``Delta W = O(1/n)`` entries, rank one, aligned with ``phi(z)``, so ``Delta z = O(1)``).

Measurement. ``||h_k - h_0||_F / ||h_0||_F`` of the last hidden layer's activations
``h = phi(z^L)`` on the training inputs, for every width and seed; both parametrizations start from
the same standard-normal draws (rescaled by ``n^{-b_l}``) and use the same ``eta``.

Step. ``eta = lr_fraction * 2 n_train / lambda_max(Theta_NTP)`` with ``Theta_NTP`` the
infinite-width NTK of the NTP network on the training inputs (width independent, so ``c = 0``
holds). At initialisation the muP network's NTK has the same layerwise terms in distribution (its
larger hidden-weight gradients are offset by its ``1/n`` readout), so the same ``eta`` is stable for
both.

Data. ``x`` on ``S^{d-1}``; ``y`` one draw of the depth-``L`` ReLU NNGP prior
(:func:`pytest_ntk.science.data.teacher`, ``kind="gp"``).

SETTINGS (per profile)
----------------------
``depth`` (L), ``widths``, ``d``, ``n_train``, ``n_seeds``, ``steps`` (k), ``lr_fraction``.
``quick``: L = 2, widths 64..1024, 32 points, 4 seeds, 10 full-batch steps. ``paper``: widths up to
8192 and 8 seeds (TP4's own experiments are Word2Vec and MAML; this is its width-scaling statement).
"""

from __future__ import annotations

import functools

import numpy as np

from pytest_ntk import Suite
from pytest_ntk.verdicts import derive_seed

SETTINGS = {
    "quick": {"depth": 2, "widths": (64, 128, 256, 512, 1024), "d": 8, "n_train": 32, "n_seeds": 4,
              "steps": 10, "lr_fraction": 0.5},
    "paper": {"depth": 2, "widths": (128, 256, 512, 1024, 2048, 4096, 8192), "d": 16, "n_train": 64,
              "n_seeds": 8, "steps": 10, "lr_fraction": 0.5},
}

#: abc exponents per parametrization: a(l, L), b(l, L) for layers l = 1..L+1, and c (module docstring).
ABC = {
    "ntp": {"a": lambda l, L: 0.0 if l == 1 else 0.5, "b": lambda l, L: 0.0, "c": 0.0},
    "mup": {"a": lambda l, L: -0.5 if l == 1 else (0.5 if l == L + 1 else 0.0), "b": lambda l, L: 0.5, "c": 0.0},
}

SEED_KEY = "yang-hu2021-features"

suite = Suite("yang_hu2021", __file__, SETTINGS)
settings, _record = suite.fixtures()


def multipliers(kind: str, width: int, depth: int, d: int) -> np.ndarray:
    """Forward multipliers ``n^{-a_l}`` (times ``1/sqrt(d)`` on the first layer), l = 1..L+1."""
    a = ABC[kind]["a"]
    m = np.array([width ** -a(l, depth) for l in range(1, depth + 2)], np.float64)
    m[0] /= np.sqrt(d)
    return m


def init_weights(key, kind: str, width: int, depth: int, d: int, dtype):
    """``W^l ~ N(0, n^{-2 b_l})``: standard normals (one draw per key, shared by NTP and muP) times ``n^{-b_l}``."""
    import jax

    b = ABC[kind]["b"]
    sizes = [d] + [width] * depth + [1]
    keys = jax.random.split(key, depth + 1)
    return [jax.random.normal(keys[i], (sizes[i], sizes[i + 1]), dtype) * width ** -b(i + 1, depth)
            for i in range(depth + 1)]


def forward(ws, mults, x):
    """``(f, h)``: outputs (n,) and the last hidden layer's ReLU activations (n, width)."""
    import jax

    h = x
    for i, w in enumerate(ws[:-1]):
        h = jax.nn.relu(mults[i] * (h @ w))
    return (mults[-1] * (h @ ws[-1]))[:, 0], h


@functools.lru_cache(maxsize=None)
def _program(steps: int):
    """jit(vmap over members): k full-batch GD steps on 1/(2n)||f - y||^2; returns the feature change."""
    import jax
    import jax.numpy as jnp

    def member(ws, mults, lr_mult, x, y, eta):
        def loss(ws_):
            f, _ = forward(ws_, mults, x)
            return 0.5 * jnp.mean((f - y) ** 2)

        def step(ws_, _):
            g = jax.grad(loss)(ws_)
            return [w - eta * lr_mult * gw for w, gw in zip(ws_, g)], loss(ws_)

        ws_k, losses = jax.lax.scan(step, ws, None, length=steps)
        f0, h0 = forward(ws, mults, x)
        fk, hk = forward(ws_k, mults, x)
        return {
            "feature_change": jnp.linalg.norm(hk - h0) / jnp.linalg.norm(h0),
            "output_change": jnp.sqrt(jnp.mean((fk - f0) ** 2)),
            "loss0": losses[0],
            "loss_k": loss(ws_k),
        }

    return jax.jit(jax.vmap(member, in_axes=(0, 0, 0, None, None, None)))


def feature_changes(settings: dict, seeds: list[int], data_seed: int) -> dict:
    """Feature change, output change and losses for every (parametrization, width, seed).

    Arrays of shape (n_seeds, n_widths) under ``"ntp"`` and ``"mup"``; plus ``widths`` and ``eta``.
    """
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science import data, predict
    from pytest_ntk.science.nets import FullyConnected

    s = settings
    depth, d, n = s["depth"], s["d"], s["n_train"]
    ntk_net = FullyConnected(depth=depth, width=1, activation="relu", W_std=1.0, b_std=0.0)
    teacher = data.teacher(ntk_net, n, d, data_seed, kind="gp")
    x, y = jnp.asarray(teacher.x, jnp.float32), jnp.asarray(teacher.y, jnp.float32)
    eta = float(s["lr_fraction"] * predict.critical_lr(ntk_net.ntk(teacher.x)))

    # The NTP network here is FullyConnected(ntk, b_std=0) with the same weights: check it.
    w_check = init_weights(jax.random.PRNGKey(seeds[0]), "ntp", s["widths"][0], depth, d, jnp.float32)
    fc = FullyConnected(depth=depth, width=s["widths"][0], activation="relu", W_std=1.0, b_std=0.0)
    fc_params = [{"W": w, "b": jnp.zeros(w.shape[1], jnp.float32)} for w in w_check]
    np.testing.assert_allclose(np.asarray(forward(w_check, multipliers("ntp", s["widths"][0], depth, d), x)[0]),
                               np.asarray(fc.apply(fc_params, x)), rtol=1e-4, atol=1e-5)

    kinds = ("ntp", "mup")
    shape = (len(seeds), len(s["widths"]))
    out = {kind: {q: np.zeros(shape) for q in ("feature_change", "output_change", "loss0", "loss_k")}
           for kind in kinds}
    program = _program(int(s["steps"]))
    for j, width in enumerate(s["widths"]):
        members = [(kind, seed) for kind in kinds for seed in seeds]
        inits = [init_weights(jax.random.PRNGKey(seed), kind, width, depth, d, jnp.float32) for kind, seed in members]
        ws = [jnp.stack([w[i] for w in inits]) for i in range(depth + 1)]
        mults = jnp.asarray(np.stack([multipliers(kind, width, depth, d) for kind, _ in members]), jnp.float32)
        lr_mult = jnp.asarray([width ** -ABC[kind]["c"] for kind, _ in members], jnp.float32)
        res = program(ws, mults, lr_mult, x, y, jnp.float32(eta))
        for q, v in res.items():
            v = np.asarray(v, np.float64)
            if not np.all(np.isfinite(v)):
                raise FloatingPointError(f"yang_hu2021: {q} is not finite at width {width} (eta={eta:.4g})")
            for i, kind in enumerate(kinds):
                out[kind][q][:, j] = v[i * len(seeds):(i + 1) * len(seeds)]
    out["widths"] = np.asarray(s["widths"], np.float64)
    out["eta"] = eta
    return out


@suite.computation
def feature_learning(run) -> dict:
    """The cached :func:`feature_changes` of this profile and ``--ntk-seed``."""
    s = run.settings
    seeds = [derive_seed(run.base_seed, SEED_KEY, i + 1) for i in range(s["n_seeds"])]
    return feature_changes(s, seeds, derive_seed(run.base_seed, SEED_KEY, 0))
