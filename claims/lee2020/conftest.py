"""Lee et al. (2020), "Finite Versus Infinite Neural Networks: an Empirical Study" (arXiv:2007.15801).

Three of the paper's findings, each computed once per profile and ``--ntk-seed`` by a cached,
session-scoped fixture (the claims call it inside ``claim.stage``):

(a) ``finite_vs_kernel(which)`` -- *centring and ensembling move finite networks toward the kernel.*
    ``n_ensembles * ensemble_size`` one-hidden-layer ReLU networks (NTK parameterization) of width
    ``widths[which]`` are trained by full-batch gradient descent (float32, :func:`pytest_ntk.science.train.train`)
    for ``steps`` steps at ``lr = lr_fraction * 2n / lambda_max(Theta)``, ``Theta`` the infinite-width
    NTK on the training inputs; every initialisation is trained twice, as the plain network ``f(w)``
    and as the *centred* network ``f(w) - f(w0)`` (the initial output subtracted during training, as
    in the paper). The reference is the infinite-width mean prediction at the same time
    ``t = lr * steps``: :func:`pytest_ntk.science.predict.gradient_descent_mse` with the analytic NTK and
    ``f0 = 0`` (gradient descent with the same ``lr``). Distances are RMS over held-out points.

(b) ``ridge_vs_early_stopping()`` -- *diagonal regularization of kernels acts like early stopping.*
    NTK (depth-2 ReLU) regression on noisy targets. Gradient flow on ``L = 1/(2n) ||f - y||^2`` for a
    time ``t`` predicts, with ``Theta = V diag(lambda) V^T``,

        f_t(x)   = Theta(x, X) V diag((1 - exp(-lambda t / n)) / lambda) V^T y        (early stopping)
        f_rho(x) = Theta(x, X) V diag(1 / (lambda + rho)) V^T y                       (ridge rho)

    The two spectral filters agree for ``lambda >> n/t`` (both ``1/lambda``) and, for ``lambda << n/t``,
    ``t/n`` against ``1/rho``: they coincide in both limits when ``rho = n/t``. In between the filter
    ratio depends on ``u = lambda t / n``: the ridge that matches a single mode exactly is
    ``rho = c(u) n/t`` with ``c(u) = u/(1 - e^-u) - u``, which falls from 1 (u -> 0) to 0 (u -> inf).
    So the predicted correspondence is ``rho*(t) = c n / t`` with a constant ``c`` in (0, 1] set by
    which modes carry the prediction -- a straight line of slope -1 in log-log. The times are
    ``t_j = n / (Kbar r_j)`` with ``Kbar = tr(Theta)/n`` and ``r_j`` in ``ridge_over_kbar`` (so ``n/t``
    sweeps the kernel's spectrum); for each ``t`` the best-matching ridge ``rho*(t)`` minimises the
    distance between the two predictions on the held-out points over a log grid of
    ``grid_per_decade`` ridges per decade (an argmin on the grid's edge raises).

(c) ``float_precision()`` -- *float32 kernel regression degrades against float64 as n grows.*
    NTK (depth-2 ReLU) Gram matrices on ``n`` points of ``S^{d-1}`` for growing ``n``: the float64
    solve (Cholesky, as :func:`pytest_ntk.science.predict.kernel_regression`) against the same regression done
    entirely in float32 (the Gram and targets rounded to float32, Cholesky ``spotrf`` -- or LDL^T if
    the rounded Gram is no longer numerically positive definite -- and the float32 product with the
    test-train kernel). A backward-stable solve has relative error up to ``~ kappa(K) * eps``; the
    NTK's condition number ``kappa`` grows with ``n`` (its smallest eigenvalues fall as points crowd
    the sphere, its largest grows like ``n``), so at float32's ``eps ~ 6e-8`` the error grows with ``n``.

SETTINGS (per profile)
----------------------
(a) ``ens_*``: ``widths`` ({"narrow", "wide"}), ``depth``, ``d``, ``n_train``, ``n_test``, ``n_ensembles``
    ensembles of ``ensemble_size`` members, ``steps``, ``lr_fraction``; targets are one draw of the
    architecture's NNGP prior (:func:`pytest_ntk.science.data.teacher`, ``kind="gp"``).
(b) ``ridge_*``: ``depth``, ``d``, ``n_train``, ``n_test``, ``noise`` (std of the Gaussian label noise on
    the training targets; held-out targets are clean), ``n_seeds`` data sets, ``ridge_over_kbar`` (the
    times), ``grid_per_decade``, ``grid_decades`` (the ridge grid, as multiples of Kbar).
(c) ``fp_*``: ``depth``, ``d``, ``sizes`` (n), ``n_test``, ``n_seeds``; targets from a random width-64
    ReLU teacher network.

``quick`` is sized for 2 CPU cores (widths 128/512, 64 training points, 4 ensembles of 8; 256-point
regressions; n up to 1024); ``paper`` follows the paper's scale more closely where a kernel solve
allows it on one GPU (widths 512/4096, n up to 8192). The paper uses CIFAR-10; here the data are
synthetic (sphere inputs, teacher targets), which the claims' statements say.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

SETTINGS = {
    "quick": {
        "ens_widths": {"narrow": 128, "wide": 512}, "ens_depth": 1, "ens_d": 8,
        "ens_n_train": 64, "ens_n_test": 64, "ens_n_ensembles": 4, "ens_ensemble_size": 8,
        "ens_steps": 300, "ens_lr_fraction": 0.5,
        "ridge_depth": 2, "ridge_d": 8, "ridge_n_train": 256, "ridge_n_test": 256, "ridge_noise": 0.5,
        "ridge_n_seeds": 3, "ridge_over_kbar": (10**0.5, 1.0, 10**-0.5, 0.1, 10**-1.5),
        "ridge_grid_per_decade": 50, "ridge_grid_decades": (-3.5, 2.0),
        "fp_depth": 2, "fp_d": 4, "fp_sizes": (128, 256, 512, 1024), "fp_n_test": 256, "fp_n_seeds": 3,
    },
    "paper": {
        "ens_widths": {"narrow": 512, "wide": 4096}, "ens_depth": 1, "ens_d": 16,
        "ens_n_train": 256, "ens_n_test": 256, "ens_n_ensembles": 8, "ens_ensemble_size": 8,
        "ens_steps": 1000, "ens_lr_fraction": 0.5,
        "ridge_depth": 2, "ridge_d": 16, "ridge_n_train": 1024, "ridge_n_test": 1024, "ridge_noise": 0.5,
        "ridge_n_seeds": 5, "ridge_over_kbar": (10**0.5, 1.0, 10**-0.5, 0.1, 10**-1.5, 0.01),
        "ridge_grid_per_decade": 50, "ridge_grid_decades": (-4.0, 2.0),
        "fp_depth": 2, "fp_d": 4, "fp_sizes": (256, 512, 1024, 2048, 4096, 8192), "fp_n_test": 512,
        "fp_n_seeds": 5,
    },
}

#: Base keys of the three seed streams (``derive_seed(--ntk-seed, key, i)``).
SEED_KEYS = {"ens": "lee2020-finite-vs-kernel", "ridge": "lee2020-ridge-early-stopping",
             "fp": "lee2020-float32"}

# Part of every cache key: an edit of this file invalidates the cached results.
_CODE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _rms(a, axis=-1):
    return np.sqrt(np.mean(np.square(a), axis=axis))


# ---------------------------------------------------------------------------- (a)
@dataclass(frozen=True)
class MaybeCentred:
    """``g(p, x) = f(w, x) - centre * f(w0, x)``: the centred network for ``centre = 1``, ``f`` for 0.

    ``p = {"w", "w0", "centre"}``; ``w0`` and ``centre`` sit behind ``jax.lax.stop_gradient``, so
    only ``w`` trains. Plain and centred members thus share one compiled training program.
    """

    net: object  # a FullyConnected

    def init(self, key, in_dim, dtype=None):
        import jax.numpy as jnp

        dtype = dtype or jnp.float32
        w = self.net.init(key, in_dim, dtype)
        return {"w": w, "w0": w, "centre": jnp.zeros((), dtype)}

    def apply(self, p, x):
        import jax

        sg = jax.lax.stop_gradient
        return self.net.apply(p["w"], x) - sg(p["centre"]) * self.net.apply(sg(p["w0"]), x)

    def describe(self):
        return {"kind": "MaybeCentred", "net": self.net.describe()}


def finite_vs_kernel(settings: dict, which: str, seeds: list[int], data_seed: int) -> dict:
    """Plain and centred networks against the infinite-width NTK mean prediction (module docstring, (a)).

    Returns ``d_single`` and ``d_centred`` (per network: RMS over held-out points of its prediction
    minus the kernel mean), ``d_ensemble`` (per ensemble: the same for the ensemble mean of the plain
    networks) and ``d_members`` (per ensemble: root-mean-square of its members' ``d_single``), plus
    ``lr``, ``t`` and the kernel prediction's own held-out RMSE.
    """
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science import data, predict
    from pytest_ntk.science.nets import FullyConnected
    from pytest_ntk.science.train import train

    s = settings
    width = int(s["ens_widths"][which])
    net = FullyConnected(depth=s["ens_depth"], width=width, activation="relu")
    n, m = s["ens_n_train"], s["ens_n_test"]
    teacher = data.teacher(net, n + m, s["ens_d"], data_seed, kind="gp")
    x_train, y_train, x_test, y_test = teacher.x[:n], teacher.y[:n], teacher.x[n:], teacher.y[n:]

    theta = net.ntk(teacher.x)
    theta_tt, theta_st = theta[:n, :n], theta[n:, :n]
    lr = s["ens_lr_fraction"] * predict.critical_lr(theta_tt)
    t = lr * s["ens_steps"]
    _, mu = predict.gradient_descent_mse(theta_tt, y_train, theta_st, t, lr=lr)

    k = len(seeds)
    inits = [net.init(jax.random.PRNGKey(seed), s["ens_d"], jnp.float32) for seed in seeds]
    w = jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(b) for b in a]), *inits)
    both = jax.tree_util.tree_map(lambda a: np.concatenate([a, a]), w)  # plain members, then centred
    params = {"w": both, "w0": both, "centre": np.concatenate([np.zeros(k), np.ones(k)]).astype(np.float32)}
    result = train(MaybeCentred(net), x_train, y_train, seeds=list(range(2 * k)), steps=s["ens_steps"],
                   lr=lr, params=params, x_eval=x_test)
    f_plain, f_centred = result.f_test[:k], result.f_test[k:]

    d_single = _rms(f_plain - mu[None])
    d_centred = _rms(f_centred - mu[None])
    size = s["ens_ensemble_size"]
    groups = np.arange(k).reshape(s["ens_n_ensembles"], size)
    d_ensemble = np.array([_rms(f_plain[g].mean(axis=0) - mu) for g in groups])
    d_members = np.array([np.sqrt(np.mean(d_single[g] ** 2)) for g in groups])
    return {
        "width": width, "lr": float(lr), "t": float(t),
        "d_single": d_single, "d_centred": d_centred, "d_ensemble": d_ensemble, "d_members": d_members,
        "kernel_test_rmse": float(_rms(mu - y_test)),
        "plain_test_rmse": _rms(f_plain - y_test[None]), "centred_test_rmse": _rms(f_centred - y_test[None]),
        "final_loss": np.asarray(result.final_loss),
    }


# ---------------------------------------------------------------------------- (b)
def ridge_vs_early_stopping(settings: dict, seeds: list[int]) -> dict:
    """Best-matching ridge per gradient-flow time, and the two test errors (module docstring, (b)).

    Per data seed (rows) and time (columns): ``t``, ``rho_star``, ``c = rho_star * t / n``, the
    held-out MSE of early stopping at ``t`` and of ridge at ``rho_star`` (against the clean targets),
    and the relative distance of the two predictions at ``rho_star``. Also the curves
    (``curve_t``/``curve_mse_es``, ``curve_rho``/``curve_mse_ridge``) of the first seed for plots.
    """
    import scipy.linalg

    from pytest_ntk.science import data, predict
    from pytest_ntk.science.nets import FullyConnected

    s = settings
    net = FullyConnected(depth=s["ridge_depth"], width=1, activation="relu")
    n, m = s["ridge_n_train"], s["ridge_n_test"]
    r = np.asarray(s["ridge_over_kbar"], np.float64)
    lo, hi = s["ridge_grid_decades"]
    exps = np.linspace(lo, hi, int(round((hi - lo) * s["ridge_grid_per_decade"])) + 1)
    rows = {key: [] for key in ("t", "n_over_t", "rho_star", "c", "mse_es", "mse_ridge", "rel_distance", "kbar")}
    curves = {}
    for i, seed in enumerate(seeds):
        teacher = data.teacher(net, n + m, s["ridge_d"], seed, kind="gp")
        noise = np.random.default_rng(seed + 2).standard_normal(n) * s["ridge_noise"]
        y_train = teacher.y[:n] + noise
        y_test = teacher.y[n:]
        theta = net.ntk(teacher.x)
        k_tt, k_st = theta[:n, :n], theta[n:, :n]
        kbar = float(np.trace(k_tt) / n)
        times = n / (kbar * r)
        _, f_es = predict.gradient_descent_mse(k_tt, y_train, k_st, times)  # (T, m), gradient flow
        lam, vec = scipy.linalg.eigh(k_tt)
        coef = vec.T @ y_train
        a = k_st @ vec  # (m, n)
        rhos = kbar * 10.0**exps
        f_ridge = (a[None] * (coef / (lam[None] + rhos[:, None]))[:, None, :]).sum(-1)  # (R, m)
        # the eigen-formula is kernel_regression's ridge solution: check it (first data set, at the
        # smallest, a middle and the largest ridge; the formula is the same for every data set)
        for rho in (rhos[[0, len(rhos) // 2, -1]] if i == 0 else ()):
            ref = predict.kernel_regression(k_tt, y_train, k_st, ridge=rho)
            j = int(np.argmin(np.abs(rhos - rho)))
            np.testing.assert_allclose(f_ridge[j], ref, rtol=1e-6, atol=1e-9 * np.max(np.abs(ref)))
        dist = np.linalg.norm(f_ridge[None] - f_es[:, None], axis=-1)  # (T, R)
        best = np.argmin(dist, axis=1)
        if np.any(best == 0) or np.any(best == len(rhos) - 1):
            raise RuntimeError(f"lee2020 ridge grid too narrow: best ridge on the grid's edge for seed {seed} "
                               f"(indices {best.tolist()} of {len(rhos)})")
        rho_star = rhos[best]
        mse_es = np.mean((f_es - y_test[None]) ** 2, axis=1)
        mse_ridge = np.mean((f_ridge[best] - y_test[None]) ** 2, axis=1)
        rows["t"].append(times)
        rows["n_over_t"].append(n / times)
        rows["rho_star"].append(rho_star)
        rows["c"].append(rho_star * times / n)
        rows["mse_es"].append(mse_es)
        rows["mse_ridge"].append(mse_ridge)
        rows["rel_distance"].append(dist[np.arange(len(times)), best] / np.linalg.norm(f_es, axis=1))
        rows["kbar"].append(np.full(len(times), kbar))
        if i == 0:
            curve_t = n / (kbar * np.logspace(lo + 1, hi - 0.5, 61))
            _, f_curve = predict.gradient_descent_mse(k_tt, y_train, k_st, curve_t)
            curves = {"curve_t": curve_t, "curve_mse_es": np.mean((f_curve - y_test[None]) ** 2, axis=1),
                      "curve_rho": rhos, "curve_mse_ridge": np.mean((f_ridge - y_test[None]) ** 2, axis=1)}
    out = {key: np.asarray(v) for key, v in rows.items()}
    out.update(curves)
    return out


# ---------------------------------------------------------------------------- (c)
def float_precision(settings: dict, seeds: list[int]) -> dict:
    """float32 against float64 kernel regression over growing n (module docstring, (c)).

    Per seed (rows) and size (columns): ``rel_error`` = ``||f32 - f64|| / ||f64||`` of the held-out
    predictions, ``condition`` = ``kappa(K)`` of the float64 Gram, the held-out MSE of both and
    ``ldl`` (1 where float32 Cholesky failed and LDL^T was used).
    """
    import scipy.linalg

    from pytest_ntk.science import data, predict
    from pytest_ntk.science.nets import FullyConnected

    s = settings
    net = FullyConnected(depth=s["fp_depth"], width=1, activation="relu")
    teacher_net = FullyConnected(depth=1, width=64, activation="relu")
    m = s["fp_n_test"]
    keys = ("rel_error", "condition", "mse64", "mse32", "ldl")
    out = {key: np.zeros((len(seeds), len(s["fp_sizes"]))) for key in keys}
    for i, seed in enumerate(seeds):
        for j, n in enumerate(s["fp_sizes"]):
            teacher = data.teacher(teacher_net, n + m, s["fp_d"], seed + j, kind="network")
            y_train, y_test = teacher.y[:n], teacher.y[n:]
            theta = net.ntk(teacher.x)
            k_tt, k_st = theta[:n, :n], theta[n:, :n]
            # float64 reference: the Cholesky solve of predict.kernel_regression, without its
            # condition check (kappa is computed once below; an eigvalsh costs ~10 Cholesky factorisations)
            kappa = predict.condition_number(k_tt)
            if not kappa < 1e12:
                raise RuntimeError(f"NTK Gram at n={n} has condition number {kappa:.3e}: float64 reference unreliable")
            f64 = k_st @ scipy.linalg.cho_solve(scipy.linalg.cho_factor(0.5 * (k_tt + k_tt.T), lower=True), y_train)
            k32, y32 = k_tt.astype(np.float32), y_train.astype(np.float32)
            try:
                alpha32 = scipy.linalg.solve(k32, y32, assume_a="pos")
                ldl = 0.0
            except np.linalg.LinAlgError:
                alpha32 = scipy.linalg.solve(k32, y32, assume_a="sym")
                ldl = 1.0
            if alpha32.dtype != np.float32:
                raise RuntimeError(f"float32 solve returned {alpha32.dtype}")
            f32 = (k_st.astype(np.float32) @ alpha32).astype(np.float64)
            if not np.all(np.isfinite(f32)):
                raise FloatingPointError(f"float32 kernel regression gave non-finite predictions at n={n}")
            out["rel_error"][i, j] = np.linalg.norm(f32 - f64) / np.linalg.norm(f64)
            out["condition"][i, j] = kappa
            out["mse64"][i, j] = np.mean((f64 - y_test) ** 2)
            out["mse32"][i, j] = np.mean((f32 - y_test) ** 2)
            out["ldl"][i, j] = ldl
    out["sizes"] = np.asarray(s["fp_sizes"], np.float64)
    return out


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def lee_settings(ntk_profile) -> dict:
    """The active profile's row of :data:`SETTINGS`."""
    return ntk_profile.pick(SETTINGS, suite="lee2020")


def _seeds(ntk_seed, key, n):
    from pytest_ntk.verdicts import derive_seed

    return [derive_seed(ntk_seed, key, i + 1) for i in range(n)]


@pytest.fixture(scope="session")
def lee_finite_vs_kernel(lee_settings, ntk_seed, ntk_cache):
    """``get(which)`` -> cached :func:`finite_vs_kernel` for the width ``which`` ("narrow"/"wide").

    The same initialisations' seeds and data serve both widths.
    """
    from pytest_ntk.verdicts import derive_seed

    s = lee_settings
    seeds = _seeds(ntk_seed, SEED_KEYS["ens"], s["ens_n_ensembles"] * s["ens_ensemble_size"])
    data_seed = derive_seed(ntk_seed, SEED_KEYS["ens"], 0)

    def get(which):
        key = {"suite": "lee2020", "part": "finite_vs_kernel", "code": _CODE, "settings": s, "which": which,
               "seeds": seeds, "data_seed": data_seed}
        return ntk_cache.get_or_compute(key, lambda: finite_vs_kernel(s, which, seeds, data_seed),
                                        name="lee2020_finite_vs_kernel")

    return get


@pytest.fixture(scope="session")
def lee_ridge(lee_settings, ntk_seed, ntk_cache):
    """``get()`` -> cached :func:`ridge_vs_early_stopping`."""
    s = lee_settings
    seeds = _seeds(ntk_seed, SEED_KEYS["ridge"], s["ridge_n_seeds"])
    key = {"suite": "lee2020", "part": "ridge", "code": _CODE, "settings": s, "seeds": seeds}
    return lambda: ntk_cache.get_or_compute(key, lambda: ridge_vs_early_stopping(s, seeds), name="lee2020_ridge")


@pytest.fixture(scope="session")
def lee_float_precision(lee_settings, ntk_seed, ntk_cache):
    """``get()`` -> cached :func:`float_precision`."""
    s = lee_settings
    seeds = _seeds(ntk_seed, SEED_KEYS["fp"], s["fp_n_seeds"])
    key = {"suite": "lee2020", "part": "float32", "code": _CODE, "settings": s, "seeds": seeds}
    return lambda: ntk_cache.get_or_compute(key, lambda: float_precision(s, seeds), name="lee2020_float32")
