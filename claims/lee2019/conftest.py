"""Lee et al. (2019), *Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient
Descent* (arXiv:1902.06720): settings and shared work.

``SETTINGS[profile]`` (``quick``: 2 CPU cores; ``paper``: closer to the published scale, a GPU):

``lazy`` -- claims ``lee2019.outputs_near_linearized``, ``lee2019.weights_change``,
``lee2019.ntk_change`` (Theorem 2.1), all three measured on the same training runs:
    ``depth``, ``activation``, ``W_std``, ``b_std``: the network (NTK parameterization).
    ``n``, ``dim``: training inputs on the sphere S^(dim-1) (``data.sphere``); the targets are one
    draw of the infinite-width NNGP prior of the same architecture (``data.teacher(kind="gp")``),
    a target the networks can fit.
    ``widths``, ``seeds``: networks trained per width (the same seeds at every width).
    ``lr_fraction``: the step as a fraction of the critical rate ``2 n / lambda_max(Theta_inf)`` of
    the analytic NTK (one rate for every width and seed, the theorem's eta_0; 0.5 is also below
    the theorem's ``2 / (lambda_min + lambda_max)``).
    ``steps``, ``chunks``: full-batch gradient descent for ``steps`` steps, observed after each of
    ``chunks`` equal chunks (the sup over training is taken over these checkpoints and t = 0).
``diverge`` -- claim ``lee2019.linearized_diverges_above_critical_rate`` (Section 2):
    ``width``, ``seeds``: linearized networks trained above the critical rate;
    ``lr_fraction``: the step as a fraction of each network's own ``2 n / lambda_max(Theta_hat_0)``
    (the ``lr_fraction`` of :func:`pytest_ntk.science.train.train`); ``steps``: steps of full-batch GD.

Shared work is computed once per session by the fixtures below and cached through ``ntk_cache``
under a key naming every input and a digest of this file.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from pytest_ntk.verdicts import derive_seed

SUITE = "lee2019"
RECIPE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

SETTINGS = {
    "quick": {
        "lazy": {"depth": 2, "activation": "relu", "W_std": 2**0.5, "b_std": 0.1, "n": 16, "dim": 8,
                 "widths": [128, 256, 512, 1024], "seeds": 4, "lr_fraction": 0.5, "steps": 128,
                 "chunks": 16},
        "diverge": {"width": 512, "seeds": 2, "lr_fraction": 1.5, "steps": 40},
    },
    "paper": {
        "lazy": {"depth": 2, "activation": "relu", "W_std": 2**0.5, "b_std": 0.1, "n": 64, "dim": 16,
                 "widths": [256, 512, 1024, 2048, 4096, 8192], "seeds": 8, "lr_fraction": 0.5,
                 "steps": 1024, "chunks": 64},
        "diverge": {"width": 2048, "seeds": 4, "lr_fraction": 1.5, "steps": 40},
    },
}


@pytest.fixture(scope="session")
def lee_settings(ntk_profile) -> dict:
    """The active profile's settings (``SETTINGS`` above, with pyproject overrides for ``lee2019``)."""
    return ntk_profile.pick(SETTINGS, suite=SUITE)


def dataset(s: dict, base_seed: int):
    """Inputs on the sphere and targets drawn from the infinite-width NNGP prior (float64)."""
    from pytest_ntk.science import data
    from pytest_ntk.science.nets import FullyConnected

    teacher = FullyConnected(s["depth"], 1, s["activation"], W_std=s["W_std"], b_std=s["b_std"])
    t = data.teacher(teacher, s["n"], s["dim"], derive_seed(base_seed, "lee2019/data"), kind="gp")
    return np.asarray(t.x), np.asarray(t.y)


def _tree_norm(tree) -> np.ndarray:
    """Euclidean norm over all leaves, per seed (leaves stacked over seeds on axis 0)."""
    import jax

    leaves = jax.tree_util.tree_leaves(tree)
    return np.sqrt(sum(np.sum(np.asarray(a, np.float64).reshape(a.shape[0], -1) ** 2, axis=1) for a in leaves))


def linearized_path(theta0: np.ndarray, f0: np.ndarray, y: np.ndarray, lr: float, steps: np.ndarray) -> np.ndarray:
    r"""Training outputs of the linearized network after each of ``steps`` full-batch GD steps, (T, n).

    Each step maps the residual ``r = f - y`` to ``(I - lr Theta_hat_0 / n) r``, so with
    ``Theta_hat_0 = V diag(lambda) V^T``: ``f_k = y + V diag((1 - lr lambda / n)^k) V^T (f_0 - y)``,
    with integer powers (a factor ``1 - lr lambda / n`` below 0 is legitimate below the critical
    rate). Written out here rather than through :func:`pytest_ntk.science.predict.gradient_descent_mse`,
    whose ``t / lr`` is a float: a negative factor raised to 7.999999... is NaN.
    """
    n = theta0.shape[0]
    lam, vec = np.linalg.eigh(theta0)
    factor = 1.0 - lr * lam / n
    coeff = vec.T @ (f0 - y)
    powers = np.stack([factor ** int(k) for k in steps])  # (T, n)
    return y[None, :] + (powers * coeff[None, :]) @ vec.T


def _lazy_width(s: dict, width: int, x, y, lr: float, seeds: list[int]) -> dict:
    r"""Train ``seeds`` networks of one width; record, per seed and checkpoint (t = 0 first):

    ``rms_gap``: ``||f_t(x) - f^lin_t(x)||_2 / sqrt(n)``, with ``f^lin`` the linearized network's
    full-batch gradient descent from the same init, ``y + (I - lr Theta_hat_0 / n)^k (f_0 - y)``
    (exact for the linear model; :func:`linearized_path`);
    ``weight_change``: ``||theta_t - theta_0|| / ||theta_0||`` over all parameters;
    ``ntk_change``: ``||Theta_hat_t - Theta_hat_0||_F / ||Theta_hat_0||_F`` on the training inputs.
    """
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science.empirical import fc_empirical_ntk
    from pytest_ntk.science.nets import FullyConnected
    from pytest_ntk.science.numerics import x64
    from pytest_ntk.science.train import train

    model = FullyConnected(s["depth"], width, s["activation"], W_std=s["W_std"], b_std=s["b_std"])
    n = x.shape[0]
    chunk = s["steps"] // s["chunks"]
    steps = chunk * np.arange(s["chunks"] + 1)
    with x64():
        keys = jnp.stack([jax.random.PRNGKey(sd) for sd in seeds])
        theta0 = jax.vmap(lambda k: model.init(k, x.shape[1], jnp.float64))(keys)
        f0 = np.asarray(jax.vmap(model.apply, in_axes=(0, None))(theta0, jnp.asarray(x)), np.float64)
    theta0_norm = _tree_norm(theta0)

    def per_seed(params, i):
        return jax.tree_util.tree_map(lambda a: a[i], params)

    def ntks(params):
        return np.stack([fc_empirical_ntk(model, per_seed(params, i), x, dtype=np.float64)
                         for i in range(len(seeds))])

    ntk0 = ntks(theta0)
    f_lin = np.stack([linearized_path(ntk0[i], f0[i], y, lr, steps) for i in range(len(seeds))])  # (S, T, n)
    f_path, w_change, k_change = [f0], [np.zeros(len(seeds))], [np.zeros(len(seeds))]
    params = theta0
    for _ in range(s["chunks"]):
        res = train(model, x, y, seeds=seeds, steps=chunk, lr=lr, dtype=np.float64, params=params)
        params = res.params
        f_path.append(res.f_train)
        delta = jax.tree_util.tree_map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                                       params, theta0)
        w_change.append(_tree_norm(delta) / theta0_norm)
        k_t = ntks(params)
        k_change.append(np.linalg.norm(k_t - ntk0, axis=(1, 2)) / np.linalg.norm(ntk0, axis=(1, 2)))
    f_path = np.stack(f_path, axis=1)  # (S, T, n)
    return {
        "steps": steps,
        "rms_gap": np.linalg.norm(f_path - f_lin, axis=2) / math.sqrt(n),
        "weight_change": np.stack(w_change, axis=1),
        "ntk_change": np.stack(k_change, axis=1),
        "final_loss": np.asarray(res.final_loss),
        "final_loss_linearized": 0.5 * np.mean((f_lin[:, -1] - y) ** 2, axis=1),
    }


def _lazy(s: dict, base_seed: int) -> dict:
    from pytest_ntk.science import predict
    from pytest_ntk.science.nets import FullyConnected

    x, y = dataset(s, base_seed)
    limit = FullyConnected(s["depth"], 1, s["activation"], W_std=s["W_std"], b_std=s["b_std"]).ntk(x)
    lr = s["lr_fraction"] * predict.critical_lr(limit)
    seeds = [derive_seed(base_seed, "lee2019/lazy", i + 1) for i in range(s["seeds"])]
    out = {"lr": float(lr), "critical_lr": float(predict.critical_lr(limit)), "widths": np.asarray(s["widths"]),
           "seeds": np.asarray(seeds)}
    per_width = [_lazy_width(s, w, x, y, lr, seeds) for w in s["widths"]]
    for name in ("rms_gap", "weight_change", "ntk_change", "final_loss", "final_loss_linearized"):
        out[name] = np.stack([p[name] for p in per_width])  # (W, S[, T])
    out["steps"] = per_width[0]["steps"]
    return out


@pytest.fixture(scope="session")
def lazy_runs(lee_settings, ntk_seed, ntk_cache) -> dict:
    """Network vs linearized model along training, per (width, seed, checkpoint); cached."""
    s = lee_settings["lazy"]
    key = {"suite": SUITE, "what": "lazy", "recipe": RECIPE, "settings": s, "seed": ntk_seed}
    return ntk_cache.get_or_compute(key, lambda: _lazy(s, ntk_seed), name="lee2019_lazy")


def _diverge(s_lazy: dict, s: dict, base_seed: int) -> dict:
    """Linearized (and, for the table, real) networks trained at ``lr_fraction`` of their critical rate."""
    import jax

    from pytest_ntk.science.empirical import fc_empirical_ntk
    from pytest_ntk.science.errors import TrainingDiverged
    from pytest_ntk.science.nets import FullyConnected
    from pytest_ntk.science.train import train

    x, y = dataset(s_lazy, base_seed)
    n = x.shape[0]
    model = FullyConnected(s_lazy["depth"], s["width"], s_lazy["activation"], W_std=s_lazy["W_std"],
                           b_std=s_lazy["b_std"])
    seeds = [derive_seed(base_seed, "lee2019.linearized_diverges_above_critical_rate", i + 1)
             for i in range(s["seeds"])]
    losses, lrs, lam_max, net_final, net_peak, net_diverged_at = [], [], [], [], [], []
    for seed in seeds:
        res = train(model, x, y, seeds=[seed], steps=s["steps"], lr_fraction=s["lr_fraction"], dtype=np.float64,
                    linearized=True)
        theta0 = jax.tree_util.tree_map(lambda a: a[0], res.params0)
        # lambda_max of the empirical NTK by a dense eigensolver, independent of train's power iteration
        lam_max.append(float(np.linalg.eigvalsh(fc_empirical_ntk(model, theta0, x, dtype=np.float64))[-1]))
        losses.append(res.losses[0])
        lrs.append(res.lr)
        try:
            net = train(model, x, y, seeds=[seed], steps=s["steps"], lr=res.lr, dtype=np.float64)
            net_final.append(float(net.final_loss[0]))
            net_peak.append(float(net.losses[0].max() / net.losses[0, 0]))
            net_diverged_at.append(-1)
        except TrainingDiverged as exc:
            net_final.append(float("nan"))
            net_peak.append(float("nan"))
            net_diverged_at.append(int(exc.step))
    return {"n": n, "losses": np.stack(losses), "lr": np.asarray(lrs), "lambda_max": np.asarray(lam_max),
            "seeds": np.asarray(seeds), "network_final_loss": np.asarray(net_final),
            "network_peak_loss_ratio": np.asarray(net_peak),
            "network_diverged_at": np.asarray(net_diverged_at)}


@pytest.fixture(scope="session")
def divergence_runs(lee_settings, ntk_seed, ntk_cache) -> dict:
    """Per-step losses of linearized networks above the critical rate; cached."""
    s_lazy, s = lee_settings["lazy"], lee_settings["diverge"]
    key = {"suite": SUITE, "what": "diverge", "recipe": RECIPE, "settings": s, "lazy": s_lazy, "seed": ntk_seed}
    return ntk_cache.get_or_compute(key, lambda: _diverge(s_lazy, s, ntk_seed), name="lee2019_diverge")
