"""Jacot, Gabriel & Hongler (2018), *Neural Tangent Kernel* (arXiv:1806.07572): settings and shared work.

``SETTINGS[profile]`` -- what each claim of ``claims/jacot2018/`` runs at. ``quick`` is sized for 2
CPU cores; ``paper`` is the published scale (a GPU). The network of the paper's Fig. 1 is
``L = 4`` layers (3 hidden), ReLU, NTK parameterization, ``beta = 0.1`` (the bias scale, our
``b_std``) and weights N(0, 1) (our ``W_std = 1``).

``convergence`` -- claim ``jacot2018.ntk_convergence`` (Theorem 1, Fig. 1):
    ``depth``, ``activation``, ``W_std``, ``b_std``: the network (Fig. 1's).
    ``n_circle``: inputs ``x_i = (cos g_i, sin g_i)`` on the unit circle (``data.circle``), as in Fig. 1.
    ``widths``, ``seeds``: widths and independent initialisations per width (Fig. 1 shows widths
    500 and 10000, ten networks each; quick spans 32..1024 with 24 seeds so the slope has a CI).
``pd`` -- claims ``jacot2018.ntk_positive_definite``, ``..._identity_control`` and
    ``..._quadratic_control`` (Proposition 2): ``n_points`` well-separated points on the sphere
    S^(``dim`` - 1) (``dim`` = 3 only: a Fibonacci lattice), the same for every activation; the analytic Gram of a network of ``depth``
    hidden layers; ``margin``: the smallest eigenvalue must exceed
    ``margin * n_points * eps_float64 * lambda_max`` (see the claim's docstring). ``n_points`` must
    exceed the rank bound of the quadratic network's NTK on the sphere (81 for depth 3 on S^2), or
    the test could not tell a polynomial activation from a non-polynomial one. No network is
    trained: both profiles are the same.
``decay`` -- claim ``jacot2018.residual_decay`` (Section 5, least-squares regression):
    ``depth``, ``width``: the network trained (quick: one hidden layer, the smallest depth of
    Proposition 2, so that a width of 4096 is cheap; paper: Fig. 1's depth at width 8192).
    ``n``, ``dim``: training points on the sphere. ``top_k``: eigen-directions of Theta_inf tracked.
    ``lr_fraction``: the step as a fraction of the critical rate 2n / lambda_max(Theta_inf) (0.05:
    ``lr lambda_1 / n = 0.1``; the claim predicts the discrete recursion, not the flow).
    ``horizon``: train until ``lambda_k t / n`` reaches this (the k-th direction has decayed by
    e^-horizon). ``chunks``: checkpoints. ``seeds``: networks.

Everything expensive is computed once per session by the computations below (``pytest_ntk.Suite``:
cached under the settings they use, the base seed and a digest of this file).
"""

from __future__ import annotations

import math

import numpy as np

from pytest_ntk import Suite
from pytest_ntk.verdicts import derive_seed

SETTINGS = {
    "quick": {
        "convergence": {"depth": 3, "activation": "relu", "W_std": 1.0, "b_std": 0.1, "n_circle": 8,
                        "widths": [32, 64, 128, 256, 512, 1024], "seeds": 24},
        "pd": {"depth": 3, "W_std": 1.0, "b_std": 0.1, "n_points": 128, "dim": 3, "margin": 100.0},
        "decay": {"depth": 1, "width": 4096, "activation": "relu", "W_std": 1.0, "b_std": 0.1,
                  "n": 16, "dim": 3, "top_k": 4, "lr_fraction": 0.05, "horizon": 3.0, "chunks": 8,
                  "seeds": 3},
    },
    "paper": {
        "convergence": {"depth": 3, "activation": "relu", "W_std": 1.0, "b_std": 0.1, "n_circle": 16,
                        "widths": [125, 250, 500, 1000, 2000, 4000, 10000], "seeds": 32},
        "pd": {"depth": 3, "W_std": 1.0, "b_std": 0.1, "n_points": 128, "dim": 3, "margin": 100.0},
        "decay": {"depth": 3, "width": 8192, "activation": "relu", "W_std": 1.0, "b_std": 0.1,
                  "n": 32, "dim": 3, "top_k": 4, "lr_fraction": 0.05, "horizon": 3.0, "chunks": 16,
                  "seeds": 4},
    },
}


suite = Suite("jacot2018", __file__, SETTINGS)
settings, _record = suite.fixtures()


# ---------------------------------------------------------------------------- claim (a)
def _convergence(settings: dict, base_seed: int) -> dict:
    """Per (width, seed): ``||Theta_hat - Theta_inf||_F / ||Theta_inf||_F`` on the circle inputs."""
    import jax

    from pytest_ntk.science import data
    from pytest_ntk.science.empirical import monte_carlo_kernels
    from pytest_ntk.science.nets import FullyConnected

    s = settings
    x, angle = data.circle(s["n_circle"], derive_seed(base_seed, "jacot2018.ntk_convergence/inputs"))
    limit = FullyConnected(s["depth"], 1, s["activation"], W_std=s["W_std"], b_std=s["b_std"]).ntk(x)
    norm = np.linalg.norm(limit)
    distances, spreads = [], []
    for width in s["widths"]:
        model = FullyConnected(s["depth"], width, s["activation"], W_std=s["W_std"], b_std=s["b_std"])
        key = jax.random.PRNGKey(derive_seed(base_seed, "jacot2018.ntk_convergence", width))
        mc = monte_carlo_kernels(model, key, x, n_samples=s["seeds"], dtype=np.float64, keep_samples=True)
        distances.append(np.linalg.norm(mc.ntk_samples - limit, axis=(1, 2)) / norm)
        spreads.append(mc.relative_spread("ntk"))
    return {"x": x, "angle": angle, "limit": limit, "widths": np.asarray(s["widths"]),
            "distances": np.stack(distances), "spreads": np.asarray(spreads)}


@suite.computation(uses="convergence")
def ntk_convergence(run) -> dict:
    """Relative distances of empirical NTKs to the analytic limit, (len(widths), seeds)."""
    return _convergence(run.settings["convergence"], run.base_seed)


# ---------------------------------------------------------------------------- claim (b)
PD_ACTIVATIONS = ("relu", "erf", "identity", "square")


def sphere_polynomial_dimension(degree: int, dim: int) -> int:
    """Dimension of the polynomials of degree <= ``degree`` restricted to the sphere S^(dim - 1):
    the homogeneous polynomials of degrees ``degree`` and ``degree - 1`` in ``dim`` variables
    (spherical harmonics of degree <= ``degree``), ``C(p + d - 1, d - 1) + C(p + d - 2, d - 1)``.
    A dot-product kernel that is a polynomial of degree ``p`` in ``<x, x'>`` has rank at most this
    on the sphere ((p + 1)^2 on S^2)."""
    return math.comb(degree + dim - 1, dim - 1) + math.comb(degree + dim - 2, dim - 1)


def spread_sphere_points(n: int) -> np.ndarray:
    """``n`` well-separated points on the unit sphere S^2, (n, 3): the Fibonacci lattice,
    ``z_i = 1 - (2i + 1)/n`` and longitude ``(i + 1/2)`` times the golden angle ``pi (3 - sqrt 5)``.
    Nearest neighbours lie 0.27-0.30 apart for n = 128 (about ``sqrt(4 pi / n)``), where i.i.d.
    uniform points leave some pairs an order of magnitude closer. No seed: the kernels tested are
    functions of ``<x, x'>``, so a rotation of the points (the only randomness a seed could add
    without changing their spacing) would not change any spectrum."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _pd_spectra(settings: dict) -> dict:
    """Eigenvalues (ascending) of the analytic NTK Gram of each of :data:`PD_ACTIVATIONS` on the same
    ``n_points`` points of S^2 (:func:`spread_sphere_points`; deterministic, whatever the seed).

    Spread points, not i.i.d. uniform ones: erf's NTK is smooth and its smallest eigenvalue on 128
    i.i.d. uniform points ranged over 2.7e-14 .. 3.2e-10 of the largest across 40 base seeds (below
    float64's bound at 9 of them; it depends on the whole configuration, not only on the closest
    pair), and a certificate of positive-definiteness needs an eigenvalue the arithmetic can resolve.
    Proposition 2 holds for any distinct points."""
    from pytest_ntk.science.nets import FullyConnected

    s = settings
    if s["dim"] != 3:
        raise ValueError(f"jacot2018 settings pd.dim = {s['dim']!r}: the positive-definiteness claims use "
                         "spread points on S^2 (dim 3) only")
    # Theta_inf of the square network: a polynomial of degree 2^depth in <x, x'>
    rank_bound = sphere_polynomial_dimension(2 ** s["depth"], s["dim"])
    if rank_bound >= s["n_points"]:
        raise ValueError(f"jacot2018 settings pd.n_points = {s['n_points']!r} must exceed {rank_bound}, the rank "
                         f"bound of the quadratic network's NTK (depth {s['depth']}, dim {s['dim']}): with fewer "
                         "points the test cannot tell a polynomial activation from a non-polynomial one")
    x = spread_sphere_points(s["n_points"])
    out = {"x": x, "bound": s["margin"] * s["n_points"] * float(np.finfo(np.float64).eps),
           "square_rank_bound": rank_bound}
    for activation in PD_ACTIVATIONS:
        model = FullyConnected(s["depth"], 1, activation, W_std=s["W_std"], b_std=s["b_std"])
        out[activation] = np.linalg.eigvalsh(model.ntk(x))
    return out


@suite.computation(uses="pd")
def pd_spectra(run) -> dict:
    """Spectra of the analytic NTK Grams of the positive-definiteness claims and their controls."""
    return _pd_spectra(run.settings["pd"])


# ---------------------------------------------------------------------------- claim (c)
def _decay(settings: dict, base_seed: int) -> dict:
    r"""Train ``seeds`` wide networks by full-batch gradient descent and record their residuals.

    Targets: with ``V`` the top-``k`` unit eigenvectors of the analytic ``Theta_inf`` on ``x``, each
    network ``s`` gets ``y_s = f_s(x; theta_0) - V 1`` so that its initial residual
    ``r_s(0) = f_s(0) - y_s = V 1`` has coefficient exactly 1 along each tracked direction and 0
    elsewhere. Gradient descent on ``1/(2n) ||f - y||^2`` at ``lr`` for ``chunks`` equal chunks of
    steps (training is restarted from the weights reached, which is exact for full-batch gradient
    descent without momentum), recording ``f(x)`` after each chunk.
    """
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science import data, predict
    from pytest_ntk.science.empirical import fc_empirical_ntk
    from pytest_ntk.science.nets import FullyConnected
    from pytest_ntk.science.numerics import x64
    from pytest_ntk.science.train import train

    s = settings
    x = data.sphere(s["n"], s["dim"], derive_seed(base_seed, "jacot2018.residual_decay/inputs"))
    n = x.shape[0]
    limit_model = FullyConnected(s["depth"], 1, s["activation"], W_std=s["W_std"], b_std=s["b_std"])
    theta_inf = limit_model.ntk(x)
    nngp = limit_model.nngp(x)  # the readout layer's own NTK (the rival's kernel in the claim)
    lam, vecs = np.linalg.eigh(theta_inf)
    lam, vecs = lam[::-1], vecs[:, ::-1]
    k = s["top_k"]
    V = vecs[:, :k]
    r0 = V.sum(axis=1)
    lr = s["lr_fraction"] * predict.critical_lr(theta_inf)
    total_steps = s["horizon"] * n / (lr * lam[k - 1])
    chunk = int(math.ceil(total_steps / s["chunks"]))
    steps = chunk * np.arange(s["chunks"] + 1)

    model = FullyConnected(s["depth"], s["width"], s["activation"], W_std=s["W_std"], b_std=s["b_std"])
    seeds = [derive_seed(base_seed, "jacot2018.residual_decay", i + 1) for i in range(s["seeds"])]
    residuals, linear, thetas = [], [], []
    for seed in seeds:
        with x64():
            params0 = model.init(jax.random.PRNGKey(seed), x.shape[1], jnp.float64)
            f0 = np.asarray(model.apply(params0, jnp.asarray(x)), np.float64)
        y = f0 - r0
        theta0 = fc_empirical_ntk(model, params0, x, dtype=np.float64)
        path = [f0 - y]
        params = params0
        for _ in range(s["chunks"]):
            res = train(model, x, y, seeds=[seed], steps=chunk, lr=lr, dtype=np.float64, params=params)
            params = res.params
            path.append(res.f_train[0] - y)
        residuals.append(np.stack(path))
        # the linearized model's gradient descent from the same init, in closed form on Theta_hat_0
        f_lin, _ = predict.gradient_descent_mse(theta0, y, None, lr * steps, lr=lr, f0_train=f0)
        linear.append(f_lin - y)
        thetas.append(theta0)
    return {"x": x, "theta_inf": theta_inf, "nngp": nngp, "eigenvalues": lam, "V": V, "lr": float(lr),
            "steps": steps, "times": lr * steps, "seeds": np.asarray(seeds),
            "residuals": np.stack(residuals), "linear_residuals": np.stack(linear),
            "theta0": np.stack(thetas)}


@suite.computation(uses="decay")
def residual_decay_runs(run) -> dict:
    """Residual trajectories of the trained networks and of their linearizations."""
    return _decay(run.settings["decay"], run.base_seed)
