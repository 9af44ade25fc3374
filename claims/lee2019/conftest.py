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
``diverge`` -- claim ``lee2019.linearized_diverges_above_critical_rate`` (a measurement control of the
    linearized dynamics, Section 2.2): ``width``, ``seeds``: linearized networks trained above
    ``2 n / lambda_max(Theta_hat_0)`` (not the theorem's eta_critical, which is smaller);
    ``lr_fraction``: the step as a fraction of each network's own ``2 n / lambda_max(Theta_hat_0)``
    (the ``lr_fraction`` of :func:`pytest_ntk.science.train.train`); ``steps``: steps of full-batch GD.

Everything expensive is computed once per session by the computations below (``pytest_ntk.Suite``:
cached under the settings they use, the base seed and a digest of this file).
"""

from __future__ import annotations

import math

import numpy as np

from pytest_ntk import Suite
from pytest_ntk.science.models import tree_norm
from pytest_ntk.verdicts import derive_seed

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

suite = Suite("lee2019", __file__, SETTINGS)
settings, _record = suite.fixtures()


def dataset(s: dict, base_seed: int):
    """Inputs on the sphere and targets drawn from the infinite-width NNGP prior (float64)."""
    from pytest_ntk.science import data
    from pytest_ntk.science.nets import FullyConnected

    teacher = FullyConnected(s["depth"], 1, s["activation"], W_std=s["W_std"], b_std=s["b_std"])
    t = data.teacher(teacher, s["n"], s["dim"], derive_seed(base_seed, "lee2019/data"), kind="gp")
    return np.asarray(t.x), np.asarray(t.y)


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


def linearized_weight_change(theta0: np.ndarray, f0: np.ndarray, y: np.ndarray, lr: float,
                             steps: np.ndarray) -> np.ndarray:
    r"""``||theta^lin_k - theta_0||_2`` of the linearized network after each of ``steps``, (T,).

    Each step moves the parameters by ``-(lr/n) J_0^T r_j`` with ``r_j = (I - lr Theta_hat_0 / n)^j r_0``,
    so after ``k`` steps ``theta^lin_k - theta_0 = -(lr/n) J_0^T S_k`` with
    ``S_k = V diag(sum_{j<k} a^j) V^T r_0``, ``a = 1 - lr lambda / n``, and
    ``||theta^lin_k - theta_0||^2 = (lr/n)^2 S_k^T Theta_hat_0 S_k`` (no Jacobian needed).
    """
    n = theta0.shape[0]
    lam, vec = np.linalg.eigh(theta0)
    a = 1.0 - lr * lam / n
    coeff = vec.T @ (f0 - y)
    out = []
    for k in steps:
        geometric = np.array([sum(float(ai) ** j for j in range(int(k))) for ai in a])
        s_k = geometric * coeff  # S_k in the eigenbasis
        out.append((lr / n) * math.sqrt(max(float(np.sum(lam * s_k**2)), 0.0)))
    return np.asarray(out)


def _lazy_width(s: dict, width: int, x, y, lr: float, seeds: list[int]) -> dict:
    r"""Train ``seeds`` networks of one width; record, per seed and checkpoint (t = 0 first):

    ``rms_gap``: ``||f_t(x) - f^lin_t(x)||_2 / sqrt(n)``, with ``f^lin`` the linearized network's
    full-batch gradient descent from the same init, ``y + (I - lr Theta_hat_0 / n)^k (f_0 - y)``
    (exact for the linear model; :func:`linearized_path`);
    ``weight_change``: ``||theta_t - theta_0||_2`` over all parameters (the N(0, 1) variables of the
    NTK parameterization, Lee et al.'s theta);
    ``weight_change_relative``: the same divided by ``||theta_0||`` (~ width: table only);
    ``max_param_change``: ``max_j |theta_t,j - theta_0,j|`` (the largest single-parameter move);
    ``layer_change``: ``||theta_t - theta_0||_2`` of each layer's weights and biases, (S, T, depth + 1);
    ``weight_change_linearized``: ``||theta^lin_t - theta_0||_2`` of the linearized network
    (:func:`linearized_weight_change`);
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
    theta0_norm = tree_norm(theta0, axis=0)

    def per_seed(params, i):
        return jax.tree_util.tree_map(lambda a: a[i], params)

    def ntks(params):
        return np.stack([fc_empirical_ntk(model, per_seed(params, i), x, dtype=np.float64)
                         for i in range(len(seeds))])

    ntk0 = ntks(theta0)
    f_lin = np.stack([linearized_path(ntk0[i], f0[i], y, lr, steps) for i in range(len(seeds))])  # (S, T, n)
    w_lin = np.stack([linearized_weight_change(ntk0[i], f0[i], y, lr, steps) for i in range(len(seeds))])  # (S, T)
    zeros = np.zeros(len(seeds))
    f_path, w_change, w_max, k_change = [f0], [zeros], [zeros], [zeros]
    layer_change = [np.zeros((len(seeds), s["depth"] + 1))]
    params = theta0
    for _ in range(s["chunks"]):
        res = train(model, x, y, seeds=seeds, steps=chunk, lr=lr, dtype=np.float64, params=params)
        params = res.params
        f_path.append(res.f_train)
        delta = jax.tree_util.tree_map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                                       params, theta0)
        w_change.append(tree_norm(delta, axis=0))
        layer_change.append(np.stack([tree_norm(layer, axis=0) for layer in delta], axis=1))
        w_max.append(np.max(np.stack([np.abs(a).reshape(a.shape[0], -1).max(axis=1)
                                      for a in jax.tree_util.tree_leaves(delta)]), axis=0))
        k_t = ntks(params)
        k_change.append(np.linalg.norm(k_t - ntk0, axis=(1, 2)) / np.linalg.norm(ntk0, axis=(1, 2)))
    f_path = np.stack(f_path, axis=1)  # (S, T, n)
    return {
        "steps": steps,
        "rms_gap": np.linalg.norm(f_path - f_lin, axis=2) / math.sqrt(n),
        "weight_change": np.stack(w_change, axis=1),
        "weight_change_relative": np.stack(w_change, axis=1) / theta0_norm[:, None],
        "max_param_change": np.stack(w_max, axis=1),
        "layer_change": np.stack(layer_change, axis=1),
        "weight_change_linearized": w_lin,
        "theta0_norm": theta0_norm,
        "n_params": model.n_params(x.shape[1]),
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
    for name in ("rms_gap", "weight_change", "weight_change_relative", "max_param_change", "layer_change",
                 "weight_change_linearized",
                 "theta0_norm", "n_params", "ntk_change", "final_loss", "final_loss_linearized"):
        out[name] = np.stack([p[name] for p in per_width])  # (W, S[, T])
    out["steps"] = per_width[0]["steps"]
    return out


@suite.computation(uses="lazy")
def lazy_runs(run) -> dict:
    """Network vs linearized model along training, per (width, seed, checkpoint)."""
    return _lazy(run.settings["lazy"], run.base_seed)


def _diverge(s_lazy: dict, s: dict, base_seed: int) -> dict:
    """Linearized (and, for the table, real) networks trained at ``lr_fraction`` of their own ``2n / lambda_max(Theta_hat_0)``."""
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
    limit = FullyConnected(s_lazy["depth"], 1, s_lazy["activation"], W_std=s_lazy["W_std"],
                           b_std=s_lazy["b_std"]).ntk(x)
    lam_max_limit = float(np.linalg.eigvalsh(limit)[-1])  # the analytic NTK's (the rival's)
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
            "lambda_max_limit": lam_max_limit,
            "seeds": np.asarray(seeds), "network_final_loss": np.asarray(net_final),
            "network_peak_loss_ratio": np.asarray(net_peak),
            "network_diverged_at": np.asarray(net_diverged_at)}


@suite.computation(uses=("lazy", "diverge"))
def divergence_runs(run) -> dict:
    """Per-step losses of linearized networks above the critical rate."""
    return _diverge(run.settings["lazy"], run.settings["diverge"], run.base_seed)
