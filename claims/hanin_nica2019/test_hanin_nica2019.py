"""Claims of Hanin & Nica (2019), *Finite Depth and Width Corrections to the Neural Tangent Kernel*,
arXiv:1909.05989 (ICLR 2020). Settings and the networks: ``conftest.py``.

What the paper's Theorem 1 says (as used here). For a ReLU net with input dimension n_0, hidden
widths n_1 .. n_{d-1}, He-initialized weights and zero-initialized (trained) biases, and
``beta = sum_{j=1}^{d-1} 1/n_j`` (= depth/width for equal widths):

    E[K_N(x,x)^2] / E[K_N(x,x)]^2  ~=  exp(5 beta) (1 + O(sum_j 1/n_j^2)),

with ``~=`` an equality up to bounded factors. The paper's overall-scaling section derives, "up to
1/n corrections", ``E[K_N^2] = [d^2 ||x||^4 / n_0^2 + (bias terms)] exp(5 beta)``: the square of the
weights' mean contribution times exp(5 beta), i.e. every pair of layer contributions is treated as
fluctuating together. The constant 5 is that of Gaussian weights: one ReLU layer multiplies the
second moment of a squared norm by ``E[((2/n) sum_i relu(g_i)^2)^2] = 1 + 5/n``. Consequences tested
here: (1) the log of the normalized second moment grows linearly in beta with slope 5; (2) at
fixed depth/width it does not vanish as the width grows; (3) at fixed depth it vanishes like
1/width.

What we find (see README.md): (2) and (3) hold, but the slope in (1) is about 3.2, not 5. The
NTK is a sum over layers of (forward norm) x (backward norm) terms; a hidden layer's forward and
backward factors each have second moment 1 + 5/n but are correlated only through the ReLU
gates (``E[F G] = 1 + 1/n``), so two different layers' terms do not fluctuate together and the
sum fluctuates less than each term. An independent-layer model of exactly that
(``conftest.layer_sum_model``, our derivation) reproduces the measured ratios within the Monte
Carlo error; its local slope d log(ratio)/d beta is 3.3-3.9 for beta <= 0.75 at widths 32-64 and
still only 4.2-4.4 at beta = 2 (the per-term rate n log(1 + 5/n) is the ceiling it creeps toward).
"""

from __future__ import annotations

import numpy as np
import pytest


def _table(claim, fl, configs, dim_note=""):
    rows = []
    for (w, d) in configs:
        e = fl[(w, d)]
        rows.append([int(w), int(d), float(d / w), float(e["ratio"] - 1.0), float(np.exp(5.0 * d / w) - 1.0),
                     float(e["model"] - 1.0), float(np.log(e["ratio"]) / (d / w))])
    claim.table("normalized NTK second moment E[K^2]/E[K]^2 - 1",
                ["width", "depth", "beta = depth/width", "measured (all networks)", "exp(5 beta) - 1 (paper)",
                 "independent-layer model" + dim_note, "log(measured) / beta"], rows)


@pytest.mark.claim(
    "hanin_nica2019.exponent_constant",
    source="arXiv:1909.05989, Theorem 1 (E[K_N^2]/E[K_N]^2 ~= exp(5 beta)) and its overall-scaling section",
    statement=(
        "For He-initialized ReLU nets the NTK's normalized second moment E[K(x,x)^2]/E[K(x,x)]^2 "
        "grows like exp(5 beta), beta = depth/width: log of it is linear in beta with slope 5 "
        "(+-1). Quick profile: widths 16, 32, 64 x beta = 1/16, 1/8, 3/16 (depth = beta width), "
        "2000 networks per configuration in 4 groups, input dimension 8."
    ),
    expect="holds",
)
def test_exponent_constant(claim, ntk_fluctuations, hn_settings):
    """Fit ``log(E[K^2]/E[K]^2)`` (one estimate per group of 500 networks) against beta, linear axes.

    Prediction: slope 5 (the paper's constant). Tolerance 1 (chosen before running): at finite
    width the exact per-layer factor is ``1 + 5/n``, i.e. a slope ``n log(1 + 5/n)`` = 4.35, 4.65,
    4.82 at n = 16, 32, 64, and ``~=`` (bounded factors) shifts the intercept, not the slope;
    [4, 6] admits that and a CI of about +-0.3, while excluding the constant 2 of linear networks
    (``E[((1/n) sum g_i^2)^2] = 1 + 2/n``) and any law without exponential growth.
    """
    s = hn_settings
    fl = ntk_fluctuations
    grid = [(w, int(round(b * w))) for w in s["grid_widths"] for b in s["grid_betas"]]
    betas, logs = [], []
    for (w, d) in grid:
        g = fl[(w, d)]["groups"]
        betas += [d / w] * len(g)
        logs += list(np.log(g))
    _table(claim, fl, grid)
    claim.slope(betas, logs, expected=5.0, tol=1.0, log=False, name="d log(E[K^2]/E[K]^2) / d beta")


@pytest.mark.claim(
    "hanin_nica2019.fixed_ratio_does_not_vanish",
    source="arXiv:1909.05989, Theorem 1 and abstract ('even in the limit of infinite overparameterization, "
           "the NTK is not deterministic if depth and width simultaneously tend to infinity')",
    statement=(
        "At fixed depth/width the NTK's fluctuation does not vanish as the width grows: "
        "E[K^2]/E[K]^2 - 1 at depth/width = 1/8 has a log-log width slope of 0 (+-0.3), unlike the "
        "1/width of fixed depth. Quick profile: widths 16, 32, 64 (depths 2, 4, 8), 2000 networks "
        "each in 4 groups."
    ),
    expect="holds",
)
def test_fixed_ratio(claim, ntk_fluctuations, hn_settings):
    """Fit ``log(E[K^2]/E[K]^2 - 1)`` per group against log width at fixed beta.

    Prediction: slope 0. Tolerance 0.3 (chosen before running): with the exact per-layer factor
    ``(1 + 5/n)^(beta n)`` the fluctuation still creeps up toward ``exp(5 beta) - 1`` -- from 0.72 at
    n = 16 to 0.83 at n = 64 for beta = 1/8, a slope of +0.1 -- and the CI from 12 points is about
    +-0.15; [-0.3, 0.3] admits both and excludes the fixed-depth law (-1) by a wide margin.
    """
    s = hn_settings
    fl = ntk_fluctuations
    configs = [(w, int(round(s["ratio_beta"] * w))) for w in s["ratio_widths"]]
    xs, ys = [], []
    for (w, d) in configs:
        g = fl[(w, d)]["groups"]
        xs += [w] * len(g)
        ys += list(g - 1.0)
    _table(claim, fl, configs)
    claim.slope(xs, ys, expected=0.0, tol=0.3, name="E[K^2]/E[K]^2 - 1 vs width at fixed depth/width")


@pytest.mark.claim(
    "hanin_nica2019.fixed_depth_vanishes",
    source="arXiv:1909.05989, Theorem 1 (beta = depth/width -> 0 at fixed depth: exp(5 beta) - 1 ~ 5 depth/width); "
           "the contrast of the abstract ('in sharp contrast to the regime where depth is fixed')",
    statement=(
        "Contrast: at fixed depth the NTK's fluctuation vanishes like 1/width: E[K^2]/E[K]^2 - 1 at "
        "depth 2 has a log-log width slope of -1 (+-0.25). Quick profile: widths 16..128, 2000 "
        "networks each in 4 groups."
    ),
    expect="holds",
)
def test_fixed_depth(claim, ntk_fluctuations, hn_settings):
    """Fit ``log(E[K^2]/E[K]^2 - 1)`` per group against log width at fixed depth.

    Prediction: slope -1. Tolerance 0.25 (chosen before running): ``exp(5 depth/n) - 1`` is not
    exactly ``5 depth/n``; over n = 16..128 at depth 2 its own log-log slope is -1.14, and the CI
    from 16 points is about +-0.1.
    """
    s = hn_settings
    fl = ntk_fluctuations
    configs = [(w, int(s["fixed_depth"])) for w in s["depth_widths"]]
    xs, ys = [], []
    for (w, d) in configs:
        g = fl[(w, d)]["groups"]
        xs += [w] * len(g)
        ys += list(g - 1.0)
    _table(claim, fl, configs)
    claim.slope(xs, ys, expected=-1.0, tol=0.25, name="E[K^2]/E[K]^2 - 1 vs width at fixed depth")
