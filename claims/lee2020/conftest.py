"""Lee et al. (2020), "Finite Versus Infinite Neural Networks: an Empirical Study" (arXiv:2007.15801).

Three of the paper's findings, each computed once per profile and ``--ntk-seed`` by a cached
computation (:class:`pytest_ntk.Suite`; keyed by the settings it uses, the seed and this file):

(a) ``lee_finite_vs_kernel(which)`` -- *centring and ensembling move finite networks toward the kernel.*
    ``n_ensembles * ensemble_size`` one-hidden-layer ReLU networks (NTK parameterization) of width
    ``widths[which]`` are trained by full-batch gradient descent (float32, :func:`pytest_ntk.science.train.train`)
    for ``steps`` steps at ``lr = lr_fraction * 2n / lambda_max(Theta)``, ``Theta`` the infinite-width
    NTK on the training inputs; every initialisation is trained twice, as the plain network ``f(w)``
    and as the *centred* network ``f(w) - f(w0)`` (:class:`pytest_ntk.science.models.Centred`: the
    initial output subtracted during training, as in the paper). The infinite-width reference is the
    NTK mean prediction at the same time ``t = lr * steps``: :func:`pytest_ntk.science.predict.gradient_descent_mse`
    with the analytic NTK and ``f0 = 0`` (gradient descent with the same ``lr``). Computed alongside,
    for the same held-out points: what rival theories predict for the trained networks' mean
    (:data:`RIVAL_MEANS`: the NNGP posterior mean; the NNGP kernel's dynamics at the same ``t``,
    which is what training only the readout layer gives; NTK regression at ``t = inf``; the NTK
    mean prediction of a network one hidden layer deeper), and the
    variance over initialisations that the infinite-width theory predicts (:func:`ntk_gp_variance`).

(b) ``lee_ridge()`` -- *diagonal regularization of kernels acts like early stopping.*
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
    ``t_j = n / (Kbar r_j)`` with ``Kbar = tr(Theta)/n`` and ``log10 r_j`` in ``log10_over_kbar`` (so
    ``n/t`` sweeps the kernel's spectrum); for each ``t`` the best-matching ridge ``rho*(t)`` minimises
    the distance between the two predictions on the held-out points over a log grid of
    ``grid_per_decade`` ridges per decade (an argmin on the grid's edge raises). Each regularizer is
    also taken at its best: the smallest held-out MSE over the ridge grid and over early-stopping
    times ``t = n / rho`` on the same grid (a minimum on a grid's edge raises).

    The data (``data.teacher(kind="gp")``): the depth-2 ReLU NNGP with ``b_std = 1`` has a large
    constant component, so each data set's clean targets are an offset (of order 1, either sign)
    plus a signal whose held-out variance is small against the label noise (the computation returns
    both; at ``--ntk-seed 0`` the 16 quick data sets have signal variances 0.007-0.06 against a noise variance of 0.25): a
    low signal-to-noise regime, where how much a regularizer removes of the noise decides the error.

(c) ``lee_float_precision()`` -- *float32 kernel regression degrades against float64 as n grows.*
    NTK (depth-2 ReLU) Gram matrices on ``n`` points of ``S^{d-1}`` for growing ``n``: the float64
    solve (Cholesky, as :func:`pytest_ntk.science.predict.kernel_regression`) against the same regression done
    entirely in float32 (the Gram and targets rounded to float32, Cholesky ``spotrf`` -- or LDL^T if
    the rounded Gram is no longer numerically positive definite -- and the float32 product with the
    test-train kernel). A backward-stable solve has relative error up to ``~ kappa(K) * eps``; the
    NTK's condition number ``kappa`` grows with ``n`` (its smallest eigenvalues fall as points crowd
    the sphere, its largest grows like ``n``), so at float32's ``eps ~ 6e-8`` the error grows with ``n``.

SETTINGS (per profile)
----------------------
(a) ``ens``: ``widths`` ({"narrow", "wide"}), ``depth``, ``d``, ``n_train``, ``n_test``, ``n_ensembles``
    ensembles of ``ensemble_size`` members, ``steps``, ``lr_fraction``; targets are one draw of the
    architecture's NNGP prior (:func:`pytest_ntk.science.data.teacher`, ``kind="gp"``).
(b) ``ridge``: ``depth``, ``d``, ``n_train``, ``n_test``, ``noise`` (std of the Gaussian label noise on
    the training targets; held-out targets are clean), ``n_seeds`` data sets (16, so that a mean over
    data sets has a usable confidence interval), ``log10_over_kbar`` (the times),
    ``grid_per_decade``, ``grid_decades`` (the ridge grid, as log10 multiples of Kbar).
(c) ``fp``: ``depth``, ``d``, ``sizes`` (n), ``n_test``, ``n_seeds``; targets from a random width-64
    ReLU teacher network.

``quick`` is sized for 2 CPU cores (widths 128/512, 64 training points, 32 initialisations; 256-point
regressions on 16 data sets; n up to 1024); ``paper`` follows the paper's scale more closely where a kernel solve
allows it on one GPU (widths 512/4096, n up to 8192). The paper uses CIFAR-10; here the data are
synthetic (sphere inputs, teacher targets), which the claims' statements say.
"""

from __future__ import annotations

import numpy as np

from pytest_ntk import Suite
from pytest_ntk.science.models import rms
from pytest_ntk.verdicts import derive_seed

SETTINGS = {
    "quick": {
        "ens": {"widths": {"narrow": 128, "wide": 512}, "depth": 1, "d": 8, "n_train": 64, "n_test": 64,
                "n_ensembles": 4, "ensemble_size": 8, "steps": 300, "lr_fraction": 0.5},
        "ridge": {"depth": 2, "d": 8, "n_train": 256, "n_test": 256, "noise": 0.5, "n_seeds": 16,
                  "log10_over_kbar": (0.5, 0.0, -0.5, -1.0, -1.5), "grid_per_decade": 50,
                  "grid_decades": (-3.5, 2.0)},
        "fp": {"depth": 2, "d": 4, "sizes": (128, 256, 512, 1024), "n_test": 256, "n_seeds": 3},
    },
    "paper": {
        "ens": {"widths": {"narrow": 512, "wide": 4096}, "depth": 1, "d": 16, "n_train": 256, "n_test": 256,
                "n_ensembles": 8, "ensemble_size": 8, "steps": 1000, "lr_fraction": 0.5},
        "ridge": {"depth": 2, "d": 16, "n_train": 1024, "n_test": 1024, "noise": 0.5, "n_seeds": 16,
                  "log10_over_kbar": (0.5, 0.0, -0.5, -1.0, -1.5, -2.0), "grid_per_decade": 50,
                  "grid_decades": (-4.0, 2.0)},
        "fp": {"depth": 2, "d": 4, "sizes": (256, 512, 1024, 2048, 4096, 8192), "n_test": 512, "n_seeds": 5},
    },
}

#: Base keys of the three seed streams (``derive_seed(--ntk-seed, key, i)``).
SEED_KEYS = {"ens": "lee2020-finite-vs-kernel", "ridge": "lee2020-ridge-early-stopping",
             "fp": "lee2020-float32"}

#: The rivals of the NTK mean prediction for the ensembles' held-out outputs (claim ``lee2020.ensemble_closer``).
RIVAL_MEANS = {
    "nngp_posterior": "NNGP posterior mean K(x,X) K^-1 y (Bayesian inference with the NNGP kernel)",
    "readout_only": "NNGP-kernel dynamics at the same t and lr (only the readout layer trains)",
    "ntk_converged": "NTK regression at t = infinity (the stopping time ignored)",
    "deeper_ntk": "NTK mean prediction of a network one hidden layer deeper",
}

suite = Suite("lee2020", __file__, SETTINGS, single_threaded_blas=True)
settings, _record = suite.fixtures()


def _seeds(base_seed: int, part: str, n: int) -> list[int]:
    """Seeds 1..n of a part's stream (index 0 is the ensembles' data seed)."""
    return [derive_seed(base_seed, SEED_KEYS[part], i + 1) for i in range(n)]


# ---------------------------------------------------------------------------- (a)
def ntk_gp_variance(theta, nngp, n: int, t: float, lr: float) -> np.ndarray:
    r"""Marginal variances at the held-out points of the infinite-width network trained for time ``t``.

    Lee et al. (2019, arXiv:1902.06720, Sec. 2.3.2; the "NTK-GP" of Lee et al. 2020): the linearized
    network trained by gradient descent is ``f_t(x) = f_0(x) + A_t (y - f_0(X))`` with
    ``A_t = Theta(x, X) Theta^{-1} (I - (I - lr Theta/n)^steps)`` (:func:`~pytest_ntk.science.predict.gradient_descent_mse`'s
    read-out of ``y``), and at infinite width ``f_0 ~ GP(0, K)``, ``K`` the NNGP kernel; so over
    initialisations ``f_t(x)`` is Gaussian with mean ``A_t y`` and covariance
    ``K(x,x) - A_t K(X,x) - K(x,X) A_t^T + A_t K(X,X) A_t^T``. ``theta``/``nngp``: the kernels on the
    training points followed by the held-out points.
    """
    from pytest_ntk.science import predict

    _, a = predict.gradient_descent_mse(theta[:n, :n], np.eye(n), theta[n:, :n], t, lr=lr)  # (m, n)
    k_tt, k_st, k_ss = nngp[:n, :n], nngp[n:, :n], nngp[n:, n:]
    cov = k_ss - a @ k_st.T - k_st @ a.T + a @ k_tt @ a.T
    return np.diag(cov).copy()


def finite_vs_kernel(settings: dict, which: str, seeds: list[int], data_seed: int) -> dict:
    """Plain and centred networks against the infinite-width predictions (module docstring, (a)).

    Returns the held-out outputs ``f_plain``/``f_centred`` (members x points), the kernel
    predictions at the held-out points -- ``mu`` (the NTK mean prediction at ``t``) and the rivals'
    ``rivals[name]`` (:data:`RIVAL_MEANS`, among them the NTK of a network one hidden layer deeper)
    -- and the variances ``var_ntk_gp`` (:func:`ntk_gp_variance`),
    ``var_nngp_posterior`` and ``var_prior`` per held-out point; ``d_single``/``d_centred`` (per
    member: RMS over held-out points of its output minus ``mu``); ``lr``, ``t``, the held-out RMSEs
    and the final training losses.
    """
    import jax.numpy as jnp

    from pytest_ntk.science import data, predict
    from pytest_ntk.science.models import Centred
    from pytest_ntk.science.nets import FullyConnected
    from pytest_ntk.science.train import train

    s = settings
    width = int(s["widths"][which])
    net = FullyConnected(depth=s["depth"], width=width, activation="relu")
    n, m = s["n_train"], s["n_test"]
    teacher = data.teacher(net, n + m, s["d"], data_seed, kind="gp")
    x_train, y_train, x_test, y_test = teacher.x[:n], teacher.y[:n], teacher.x[n:], teacher.y[n:]

    theta = net.ntk(teacher.x)
    theta_tt, theta_st = theta[:n, :n], theta[n:, :n]
    lr = s["lr_fraction"] * predict.critical_lr(theta_tt)
    t = lr * s["steps"]
    _, mu = predict.gradient_descent_mse(theta_tt, y_train, theta_st, t, lr=lr)

    # the rivals' predictions of the same held-out outputs (RIVAL_MEANS)
    nngp = net.nngp(teacher.x)
    k_tt, k_st = nngp[:n, :n], nngp[n:, :n]
    post_mean, post_var = predict.gp_posterior(k_tt, y_train, k_st, np.diag(nngp[n:, n:]))
    if not lr < predict.critical_lr(k_tt):
        raise RuntimeError(f"lee2020: lr={lr:.4g} is not stable for the NNGP kernel's dynamics")
    _, mu_readout = predict.gradient_descent_mse(k_tt, y_train, k_st, t, lr=lr)
    _, mu_converged = predict.gradient_descent_mse(theta_tt, y_train, theta_st, np.inf)
    deeper = FullyConnected(depth=s["depth"] + 1, width=1, activation="relu").ntk(teacher.x)
    if not lr < predict.critical_lr(deeper[:n, :n]):
        raise RuntimeError(f"lee2020: lr={lr:.4g} is not stable for the deeper network's NTK")
    _, mu_deeper = predict.gradient_descent_mse(deeper[:n, :n], y_train, deeper[n:, :n], t, lr=lr)
    rivals = {"nngp_posterior": post_mean, "readout_only": mu_readout, "ntk_converged": mu_converged,
              "deeper_ntk": mu_deeper}

    k = len(seeds)
    # every initialisation twice: as the plain network (centre 0), then centred (centre 1)
    model = Centred(net)
    params = model.stacked_params(list(seeds) * 2, s["d"], jnp.float32, centre=[0.0] * k + [1.0] * k)
    result = train(model, x_train, y_train, seeds=list(range(2 * k)), steps=s["steps"],
                   lr=lr, params=params, x_eval=x_test)
    f_plain = np.asarray(result.f_test[:k], np.float64)
    f_centred = np.asarray(result.f_test[k:], np.float64)

    return {
        "width": width, "lr": float(lr), "t": float(t), "y_test": np.asarray(y_test),
        "f_plain": f_plain, "f_centred": f_centred, "mu": mu, "rivals": rivals, "rival_names": dict(RIVAL_MEANS),
        "var_ntk_gp": ntk_gp_variance(theta, nngp, n, t, lr), "var_nngp_posterior": post_var,
        "var_prior": np.diag(nngp[n:, n:]).copy(),
        "d_single": rms(f_plain - mu[None], axis=-1), "d_centred": rms(f_centred - mu[None], axis=-1),
        "kernel_test_rmse": float(rms(mu - y_test)),
        "plain_test_rmse": rms(f_plain - y_test[None], axis=-1),
        "centred_test_rmse": rms(f_centred - y_test[None], axis=-1),
        "final_loss": np.asarray(result.final_loss),
    }


# ---------------------------------------------------------------------------- (b)
def ridge_vs_early_stopping(settings: dict, seeds: list[int]) -> dict:
    """Early stopping against ridge on each data set (module docstring, (b)).

    Per data set (rows) and time of the grid (columns): ``t``, ``rho_star``, ``c = rho_star * t / n``,
    the held-out MSE of early stopping at ``t`` and of ridge at ``rho_star`` (against the clean
    targets), and the relative distance of the two predictions at ``rho_star``. Per data set:
    ``es_best`` (the smallest held-out MSE of early stopping over a log grid of times as fine as
    the ridge grid), ``ridge_best`` (the smallest over the ridge grid), ``interpolant`` (the
    held-out MSE of the unregularized predictor, ``t = inf``, ``rho = 0``), ``t_best``/``rho_best``
    (where the minima are), and the clean targets' held-out mean ``offset`` and variance
    ``signal_var`` against the label-noise variance ``noise**2``. Also the two error curves of the
    first data set (``curve_*``) for plots.
    """
    import scipy.linalg

    from pytest_ntk.science import data, predict
    from pytest_ntk.science.nets import FullyConnected

    s = settings
    net = FullyConnected(depth=s["depth"], width=1, activation="relu")
    n, m = s["n_train"], s["n_test"]
    r = 10.0 ** np.asarray(s["log10_over_kbar"], np.float64)
    lo, hi = s["grid_decades"]
    exps = np.linspace(lo, hi, int(round((hi - lo) * s["grid_per_decade"])) + 1)
    keys = ("t", "n_over_t", "rho_star", "c", "mse_es", "mse_ridge", "rel_distance", "kbar")
    rows = {key: [] for key in keys}
    per_set = {key: [] for key in ("es_best", "ridge_best", "interpolant", "t_best", "rho_best", "offset",
                                   "signal_var")}
    curves = {}
    for i, seed in enumerate(seeds):
        teacher = data.teacher(net, n + m, s["d"], seed, kind="gp")
        noise = np.random.default_rng(seed + 2).standard_normal(n) * s["noise"]
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
        f_ridge = (coef[None] / (lam[None] + rhos[:, None])) @ a.T  # (R, m)
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

        # each regularizer at its best: early stopping on times t = n / rho over the ridge grid
        grid_t = n / rhos
        _, f_path = predict.gradient_descent_mse(k_tt, y_train, k_st, grid_t)  # (R, m)
        path_mse = np.mean((f_path - y_test[None]) ** 2, axis=1)
        ridge_mse = np.mean((f_ridge - y_test[None]) ** 2, axis=1)
        for name, curve in (("early stopping", path_mse), ("ridge", ridge_mse)):
            j = int(np.argmin(curve))
            if j in (0, len(curve) - 1):
                raise RuntimeError(f"lee2020: the best {name} lies on the grid's edge for seed {seed}")
        _, f_interp = predict.gradient_descent_mse(k_tt, y_train, k_st, np.inf)
        per_set["es_best"].append(float(path_mse.min()))
        per_set["ridge_best"].append(float(ridge_mse.min()))
        per_set["t_best"].append(float(grid_t[np.argmin(path_mse)]))
        per_set["rho_best"].append(float(rhos[np.argmin(ridge_mse)]))
        per_set["interpolant"].append(float(np.mean((f_interp - y_test) ** 2)))
        per_set["offset"].append(float(np.mean(y_test)))
        per_set["signal_var"].append(float(np.var(y_test)))
        if i == 0:
            curves = {"curve_t": grid_t, "curve_mse_es": path_mse, "curve_rho": rhos, "curve_mse_ridge": ridge_mse}
    out = {key: np.asarray(v) for key, v in rows.items()}
    out.update({key: np.asarray(v) for key, v in per_set.items()})
    out.update(curves)
    out["noise_var"] = float(s["noise"]) ** 2
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
    net = FullyConnected(depth=s["depth"], width=1, activation="relu")
    teacher_net = FullyConnected(depth=1, width=64, activation="relu")
    m = s["n_test"]
    keys = ("rel_error", "condition", "mse64", "mse32", "ldl")
    out = {key: np.zeros((len(seeds), len(s["sizes"]))) for key in keys}
    for i, seed in enumerate(seeds):
        for j, n in enumerate(s["sizes"]):
            teacher = data.teacher(teacher_net, n + m, s["d"], seed + j, kind="network")
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
    out["sizes"] = np.asarray(s["sizes"], np.float64)
    return out


# ---------------------------------------------------------------------------- fixtures
@suite.computation(uses="ens")
def lee_finite_vs_kernel(run, which: str) -> dict:
    """:func:`finite_vs_kernel` for the width ``which`` ("narrow"/"wide"); both widths share seeds and data."""
    s = run.settings["ens"]
    seeds = _seeds(run.base_seed, "ens", s["n_ensembles"] * s["ensemble_size"])
    return finite_vs_kernel(s, which, seeds, derive_seed(run.base_seed, SEED_KEYS["ens"], 0))


@suite.computation(uses="ridge")
def lee_ridge(run) -> dict:
    """:func:`ridge_vs_early_stopping` on the profile's data sets."""
    s = run.settings["ridge"]
    return ridge_vs_early_stopping(s, _seeds(run.base_seed, "ridge", s["n_seeds"]))


@suite.computation(uses="fp")
def lee_float_precision(run) -> dict:
    """:func:`float_precision` on the profile's data sets."""
    s = run.settings["fp"]
    return float_precision(s, _seeds(run.base_seed, "fp", s["n_seeds"]))
