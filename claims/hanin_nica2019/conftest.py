"""Hanin & Nica (2019), *Finite Depth and Width Corrections to the Neural Tangent Kernel*
(arXiv:1909.05989): settings and shared work.

The networks are those of the paper's Theorem 1: fully connected ReLU, weights N(0, 2/fan_in)
(He initialization), biases initialized at zero and trained, one output; the NTK
``K_N(x, x) = sum_p (d N(x) / d theta_p)^2`` over all weights and biases. In pytest-ntk that is
``FullyConnected(depth, width, "relu", W_std=sqrt(2), b_std=0, parameterization="standard")``,
``depth`` hidden layers (the paper's ``d`` counts layers with weights, ``d = depth + 1``, and
``beta = sum_{j=1}^{d-1} 1/n_j = depth / width``).

``SETTINGS[profile]`` (``quick``: 2 CPU cores; ``paper``: wider grid and many more networks):

    ``dim``: input dimension ``n_0``; the input is one point with ``||x||^2 = n_0``.
    ``grid_widths`` x ``grid_betas``: the depth x width grid of claim
        ``hanin_nica2019.exponent_constant`` (``depth = beta * width``);
    ``ratio_beta``, ``ratio_widths``: claim ``hanin_nica2019.fixed_ratio_does_not_vanish``
        (depth/width held at ``ratio_beta``; these configurations are also grid points);
    ``fixed_depth``, ``depth_widths``: the contrast, claim ``hanin_nica2019.fixed_depth_vanishes``;
    ``samples``: independent networks per configuration, split into ``groups`` (one estimate of
        E[K^2]/E[K]^2 per group, so every fit has replicates).

Each configuration's diagonal NTK samples come from :func:`pytest_ntk.science.empirical.monte_carlo_kernels`
(the structured empirical NTK, float64) and are cached through ``ntk_cache`` under a key naming the
model, the input, the seed, the sample count and a digest of this file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pytest_ntk.verdicts import derive_seed

SUITE = "hanin_nica2019"
RECIPE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

SETTINGS = {
    "quick": {
        "dim": 8,
        "grid_widths": [16, 32, 64], "grid_betas": [1 / 16, 1 / 8, 3 / 16],
        "ratio_beta": 1 / 8, "ratio_widths": [16, 32, 64],
        "fixed_depth": 2, "depth_widths": [16, 32, 64, 128],
        "samples": 2000, "groups": 4,
    },
    "paper": {
        "dim": 8,
        "grid_widths": [32, 64, 128, 256], "grid_betas": [1 / 16, 1 / 8, 3 / 16, 1 / 4],
        "ratio_beta": 1 / 8, "ratio_widths": [32, 64, 128, 256],
        "fixed_depth": 2, "depth_widths": [32, 64, 128, 256, 512],
        "samples": 20000, "groups": 10,
    },
}


@pytest.fixture(scope="session")
def hn_settings(ntk_profile) -> dict:
    """The active profile's settings (``SETTINGS`` above, with pyproject overrides for ``hanin_nica2019``)."""
    return ntk_profile.pick(SETTINGS, suite=SUITE)


def hn_model(depth: int, width: int):
    from pytest_ntk.science.nets import FullyConnected

    return FullyConnected(int(depth), int(width), "relu", W_std=2**0.5, b_std=0.0, parameterization="standard")


def hn_input(dim: int, base_seed: int) -> np.ndarray:
    from pytest_ntk.science import data

    return data.sphere(1, dim, derive_seed(base_seed, "hanin_nica2019/input")) * np.sqrt(dim)


def _ntk_diagonal(depth: int, width: int, x: np.ndarray, seed: int, samples: int) -> np.ndarray:
    import jax

    from pytest_ntk.science.empirical import monte_carlo_kernels

    mc = monte_carlo_kernels(hn_model(depth, width), jax.random.PRNGKey(seed), x, n_samples=samples,
                             dtype=np.float64, keep_samples=True)
    return mc.ntk_samples[:, 0, 0]


def second_moment_ratio(theta: np.ndarray) -> float:
    """``mean(K^2) / mean(K)^2`` of NTK samples (>= 1 for any sample, by Cauchy-Schwarz)."""
    return float(np.mean(theta**2) / np.mean(theta) ** 2)


def layer_sum_model(depth: int, width: int, dim: int) -> float:
    r"""E[K^2]/E[K]^2 of the diagonal NTK under an independent-layer approximation (this suite's
    derivation, not the paper's; used only to explain the measurements).

    ``K = sum_l ||h^{l-1}||^2 ||delta^l||^2 + sum_l ||delta^l||^2`` over the ``depth + 1`` layers
    with weights (weight terms, then bias terms). Each hidden layer ``j`` multiplies the forward
    norm by ``F_j = (2/n) sum_i relu(g_i)^2`` and the backward norm by ``G_j = (2/n) sum_i
    w_i^2 1[z_i > 0]`` (i.i.d. standard Gaussians), both of mean 1 with ``E[F^2] = E[G^2] = 1 +
    5/n`` (the paper's 5) but ``E[F G] = 1 + 1/n`` (they share only the gates). Weight term ``l``
    uses ``F_j`` for ``j < l`` and ``G_j`` for ``j >= l``; bias term ``l`` uses ``G_j`` for
    ``j >= l``. With layers independent, ``E[T_a T_b] = E[T_a] E[T_b] prod_j m_j(a, b)`` where
    ``m_j`` is ``1 + 5/n`` if both terms use the same factor of layer ``j``, ``1 + 1/n`` if one
    uses ``F_j`` and the other ``G_j``, else 1. Term means: ``n_0`` (first weight layer, with
    ``||x||^2 = n_0``), ``n`` (other weight layers), 1 (biases).
    """
    n, L = int(width), int(depth)
    same, cross = 1.0 + 5.0 / n, 1.0 + 1.0 / n
    terms = []  # (mean, usage per hidden layer j=1..L: 'F', 'G' or '')
    for l in range(1, L + 2):
        terms.append((float(dim) if l == 1 else float(n), ["F" if j < l else "G" for j in range(1, L + 1)]))
    for l in range(1, L + 2):
        terms.append((1.0, ["G" if j >= l else "" for j in range(1, L + 1)]))
    total = sum(m for m, _ in terms)
    second = 0.0
    for ma, ua in terms:
        for mb, ub in terms:
            f = 1.0
            for a, b in zip(ua, ub):
                if a and b:
                    f *= same if a == b else cross
            second += ma * mb * f
    return second / total**2


def configurations(s: dict) -> list[tuple[int, int]]:
    """Every (width, depth) any claim needs, without repeats."""
    configs = {(w, int(round(b * w))) for w in s["grid_widths"] for b in s["grid_betas"]}
    configs |= {(w, int(round(s["ratio_beta"] * w))) for w in s["ratio_widths"]}
    configs |= {(w, int(s["fixed_depth"])) for w in s["depth_widths"]}
    return sorted(configs)


@pytest.fixture(scope="session")
def ntk_fluctuations(hn_settings, ntk_seed, ntk_cache) -> dict:
    """{(width, depth): per-group E[K^2]/E[K]^2 (groups,), all-sample ratio} for every configuration."""
    s = hn_settings
    x = hn_input(s["dim"], ntk_seed)
    out = {}
    for width, depth in configurations(s):
        for_beta = depth / width
        if depth < 1 or abs(for_beta * width - depth) > 1e-9:
            raise ValueError(f"hanin_nica2019: configuration width={width}, depth={depth} is not a whole depth")
        seed = derive_seed(ntk_seed, "hanin_nica2019/ntk", 1000 * width + depth)
        key = {"suite": SUITE, "what": "ntk_diagonal", "recipe": RECIPE, "model": hn_model(depth, width), "x": x,
               "seed": seed, "samples": s["samples"]}
        theta = ntk_cache.get_or_compute(
            key, lambda: _ntk_diagonal(depth, width, x, seed, s["samples"]), name="hanin_nica2019_ntk")
        groups = np.array_split(np.asarray(theta), s["groups"])
        out[(width, depth)] = {
            "groups": np.asarray([second_moment_ratio(g) for g in groups]),
            "ratio": second_moment_ratio(np.asarray(theta)),
            "model": layer_sum_model(depth, width, s["dim"]),
        }
    return out
