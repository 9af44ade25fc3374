"""Lazy training (Chizat, Oyallon & Bach 2019, arXiv:1812.07956): the alpha-scaled model.

The paper scales a model ``h(w)`` by ``alpha`` and the loss by ``1/alpha^2``,

    F_alpha(w) = 1/alpha^2 * L(alpha * h(w)),        L(g) = 1/(2n) sum_i (g(x_i) - y_i)^2,

and shows that, when ``h(w0) = 0``, gradient flow on ``F_alpha`` stays close to the flow of the
linearized model ``h_bar(w) = h(w0) + Dh(w0)(w - w0)`` over any fixed horizon ``T``: the weights
move by ``O(1/alpha)``, the two weight paths differ by ``O(1/alpha^2)`` and the two predictors
``alpha h`` and ``alpha h_bar`` by ``O(1/alpha)``.

Model. ``h(w) = f(w) - f(w0)`` (*centred*, so ``h(w0) = 0``) or ``h(w) = f(w)`` (*uncentred*, the
negative control) with ``f`` a :class:`pytest_ntk.science.nets.FullyConnected` network. Gradient descent
with step ``eta`` on ``F_alpha`` is gradient descent with step ``eta/alpha^2`` on ``L(alpha h)``.
We write it in the rescaled coordinates ``v = alpha (w - w0)``: then

    g(v, x) = alpha * (f(w0 + v/alpha, x) - c * f(w0, x)),      c = 1 (centred) or 0,

trained from ``v = 0`` with the *same* step ``eta`` for every alpha (``grad_v = grad_w / alpha``, so
``v <- v - eta grad_v L(g)`` is exactly ``w <- w - eta/alpha^2 grad_w L(alpha h)``). Its
linearization ``g_lin(v) = g(0) + Df(w0) v`` is the same for every alpha, so one compiled program
(:func:`pytest_ntk.science.train.train_pair`, full batch, float64) trains every (alpha, seed) member and its
linearization at once; ``alpha``, ``c`` and ``w0`` ride along as parameters behind
``stop_gradient`` (:class:`pytest_ntk.science.models.OutputScaled`). Weights: ``w_T - w0 = v_T / alpha``
-- by construction, so a ``1/alpha`` in ``||w_T - w0||`` is built in; what the theorem adds is that
``v_T`` stays bounded (it tends to the alpha-independent ``v_bar_T``). The tangent kernel of ``g``
in ``v`` at ``v`` is the empirical NTK of ``f`` at ``w0 + v/alpha``; its relative change over
training is measured too (``kernel_change``).

Step and horizon. ``eta = lr_fraction * 2n / lambda_max(Theta_0)``, with ``Theta_0`` the empirical
NTK of ``f`` at the first seed's ``w0`` on the training inputs (the NTK of ``g`` in ``v`` is that
same ``Theta_0``); ``T = eta * steps`` is the fixed horizon of the theorem, identical for every alpha.

Data. ``x`` uniform on the sphere ``S^{d-1}``, ``y`` the outputs of a random one-hidden-layer tanh
teacher (:func:`pytest_ntk.science.data.teacher`, ``kind="network"``); the first ``n_train`` points train,
the others are held out.

SETTINGS (per profile)
----------------------
``depth``, ``width``, ``activation``  the network ``f`` (NTK parameterization, ``W_std = b_std = 1``);
                                       tanh: the theorem assumes a smooth model (Lipschitz ``Dh``)
``d``, ``n_train``, ``n_test``         inputs on ``S^{d-1}``; train / held-out points
``teacher_width``                      width of the random tanh teacher that makes the targets
``alphas``                             the scale factors (a geometric grid)
``n_seeds``                            initialisations ``w0``; every one is trained at every alpha
``steps``, ``lr_fraction``             full-batch GD steps and ``eta`` as a fraction of ``2n/lambda_max``

``quick`` scales the paper's setting down to a width-64 network, 32 training points, 200 steps and
alpha up to 32; ``paper`` uses width 256, 128 points, 1000 steps and alpha up to 256 (the paper's
own experiments are qualitative; the 1/alpha rates are its finite-horizon theorem).
"""

from __future__ import annotations

import numpy as np

from pytest_ntk import Suite
from pytest_ntk.verdicts import derive_seed

SETTINGS = {
    "quick": {
        "depth": 2, "width": 64, "activation": "tanh",
        "d": 5, "n_train": 32, "n_test": 32, "teacher_width": 16,
        "alphas": (1, 2, 4, 8, 16, 32), "n_seeds": 4,
        "steps": 200, "lr_fraction": 0.5,
    },
    "paper": {
        "depth": 2, "width": 256, "activation": "tanh",
        "d": 10, "n_train": 128, "n_test": 128, "teacher_width": 64,
        "alphas": (1, 2, 4, 8, 16, 32, 64, 128, 256), "n_seeds": 8,
        "steps": 1000, "lr_fraction": 0.5,
    },
}

#: Base key of the suite's seeds (``derive_seed(--ntk-seed, SEED_KEY, i)``): every claim of this
#: folder reads the same trained members, so they share one seed stream.
SEED_KEY = "chizat2019-lazy"

suite = Suite("chizat2019", __file__, SETTINGS)
settings, _record = suite.fixtures()


def _flat(tree) -> np.ndarray:
    """All leaves of a parameter pytree with a leading member axis, as one (members, P) float64 array."""
    import jax

    leaves = jax.tree_util.tree_leaves(tree)
    return np.concatenate([np.asarray(a, np.float64).reshape(a.shape[0], -1) for a in leaves], axis=1)


def lazy_runs(settings: dict, seeds: list[int], data_seed: int) -> dict:
    """Train every (alpha, seed) member, centred and uncentred, with its linearization.

    Returns float64 arrays of shape (n_seeds, n_alphas) per model kind (``"centred"``,
    ``"uncentred"``):

    - ``output_distance``: ``max_x |g(v_T, x) - g_lin(v_lin_T, x)|`` over train and held-out points;
    - ``weight_change``: ``||w_T - w0|| / ||w0||`` (``= ||v_T|| / (alpha ||w0||)``: the ``1/alpha`` is
      built into the coordinates, see ``v_change``);
    - ``v_change``: ``||v_T|| / ||w0|| = alpha ||w_T - w0|| / ||w0||``, the weight change with the
      built-in ``1/alpha`` taken out (bounded in alpha iff the weights move ``O(1/alpha)``);
    - ``kernel_change``: ``||Theta(w_T) - Theta(w0)||_F / ||Theta(w0)||_F`` on the training inputs,
      ``Theta(w)`` the empirical NTK of ``f`` at ``w`` -- the tangent kernel of ``g`` in ``v`` at ``v_T``
      (``Dg(v) = Df(w0 + v/alpha)``), whose constancy is what lazy training means;
    - ``weight_gap``: ``||w_T - w_lin_T|| / ||w0||`` (``= ||v_T - v_lin_T|| / (alpha ||w0||)``);
    - ``train_loss``/``test_rmse``: the network's final training loss and held-out RMSE;

    plus ``loss0`` (training loss at ``T = 0``), ``eta`` and ``horizon``.
    """
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science import data
    from pytest_ntk.science.empirical import fc_empirical_ntk
    from pytest_ntk.science.models import OutputScaled
    from pytest_ntk.science.nets import FullyConnected
    from pytest_ntk.science.numerics import x64
    from pytest_ntk.science.train import ntk_max_eigenvalue, train_pair

    s = settings
    net = FullyConnected(depth=s["depth"], width=s["width"], activation=s["activation"])
    teacher = data.teacher(
        FullyConnected(depth=1, width=s["teacher_width"], activation="tanh"),
        s["n_train"] + s["n_test"], s["d"], data_seed,
    )
    n = s["n_train"]
    x_train, y_train = teacher.x[:n], teacher.y[:n]
    x_test, y_test = teacher.x[n:], teacher.y[n:]
    alphas = np.asarray(s["alphas"], np.float64)
    model = OutputScaled(net)

    with x64():
        w0s = [net.init(jax.random.PRNGKey(seed), s["d"], jnp.float64) for seed in seeds]
        eta = float(s["lr_fraction"]) * 2.0 * n / ntk_max_eigenvalue(net, w0s[0], x_train)
        # members: seed-major, alpha-minor (every seed's w0 is trained at every alpha)
        w0_stack = jax.tree_util.tree_map(lambda a: np.repeat(a, len(alphas), axis=0), _stack(w0s))
        alpha_col = np.tile(alphas, len(seeds))
        w0_norm = np.repeat(np.linalg.norm(_flat(_stack(w0s)), axis=1), len(alphas))

    theta0 = [fc_empirical_ntk(net, w0, x_train, dtype=np.float64) for w0 in w0s]
    out = {"eta": eta, "horizon": eta * s["steps"], "alphas": alphas,
           "loss0": float(0.5 * np.mean(y_train**2))}
    for kind, centre in (("centred", 1.0), ("uncentred", 0.0)):
        params = {
            "v": jax.tree_util.tree_map(np.zeros_like, w0_stack),
            "w0": w0_stack,
            "alpha": alpha_col.copy(),
            "centre": np.full(alpha_col.shape, centre),
        }
        pair = train_pair(
            model, x_train, y_train, seeds=list(range(alpha_col.size)), steps=s["steps"], lr=eta,
            dtype=jnp.float64, params=params, x_eval=x_test,
        )
        net_r, lin_r = pair.network, pair.linearized
        g_net = np.concatenate([net_r.f_train, net_r.f_test], axis=1)
        g_lin = np.concatenate([lin_r.f_train, lin_r.f_test], axis=1)
        v_net, v_lin = _flat(net_r.params["v"]), _flat(lin_r.params["v"])
        shape = (len(seeds), len(alphas))
        # the trained weights w_T = w0 + v_T / alpha of each member, and their empirical NTK
        w_t = jax.tree_util.tree_map(
            lambda a, b: np.asarray(a, np.float64) + np.asarray(b, np.float64)
            / alpha_col.reshape((-1,) + (1,) * (np.ndim(a) - 1)), w0_stack, net_r.params["v"])
        kernel_change = np.empty(alpha_col.size)
        for i in range(alpha_col.size):
            theta_i = theta0[i // len(alphas)]
            w_i = jax.tree_util.tree_map(lambda a, i=i: a[i], w_t)
            theta_t = fc_empirical_ntk(net, w_i, x_train, dtype=np.float64)
            kernel_change[i] = np.linalg.norm(theta_t - theta_i) / np.linalg.norm(theta_i)
        out[kind] = {
            "output_distance": np.max(np.abs(g_net - g_lin), axis=1).reshape(shape),
            "weight_change": (np.linalg.norm(v_net, axis=1) / (alpha_col * w0_norm)).reshape(shape),
            "v_change": (np.linalg.norm(v_net, axis=1) / w0_norm).reshape(shape),
            "kernel_change": kernel_change.reshape(shape),
            "weight_gap": (np.linalg.norm(v_net - v_lin, axis=1) / (alpha_col * w0_norm)).reshape(shape),
            "train_loss": np.asarray(net_r.final_loss, np.float64).reshape(shape),
            "test_rmse": np.sqrt(np.mean((net_r.f_test - y_test[None]) ** 2, axis=1)).reshape(shape),
        }
    return out


def _stack(trees):
    import jax

    return jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(b) for b in a]), *trees)


@suite.computation
def lazy_training(run) -> dict:
    """The cached :func:`lazy_runs` of this profile and ``--ntk-seed`` (every claim of the folder reads it)."""
    s = run.settings
    seeds = [derive_seed(run.base_seed, SEED_KEY, i + 1) for i in range(s["n_seeds"])]
    return lazy_runs(s, seeds, derive_seed(run.base_seed, SEED_KEY, 0))
