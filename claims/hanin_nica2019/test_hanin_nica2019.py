r"""Claims of Hanin & Nica (2019), *Finite Depth and Width Corrections to the Neural Tangent Kernel*,
arXiv:1909.05989 (ICLR 2020). Networks, sampler and derived predictions: ``conftest.py``.

What the paper says (the passages used; see README.md for where they were read):

- Abstract: "We prove the precise scaling, at finite depth and width, for the mean and variance of
  the neural tangent kernel (NTK) in a randomly initialized ReLU network. The standard deviation is
  exponential in the ratio of network depth to width. Thus, even in the limit of infinite
  overparameterization, the NTK is not deterministic if depth and width simultaneously tend to
  infinity. [...] This is sharp contrast to the regime where depth is fixed and network width is
  very large."
- Theorem 1 (as the suite has cited it; the theorem's own text could not be re-read from the
  stored copies, see README): for a ReLU net with input dimension ``n_0``, hidden widths
  ``n_1 .. n_{d-1}``, He-initialized weights and zero-initialized biases, and
  ``beta = sum_{j=1}^{d-1} 1/n_j``, ``E[K_N(x,x)^2] / E[K_N(x,x)]^2 ~= exp(5 beta) (1 + O(sum_j
  1/n_j^2))``, ``~=`` meaning bounded above and below by constants that do not depend on the
  widths or the depth.
- Appendix, "Overall Scaling" (arXiv v1 source): "E[K_N^2] = [ d^2/n_0^2 ||x||^4 + d/n_0 ||x||^2
  [sum_{j=1}^d exp(-5 sum_{i=1}^j 1/n_i)] + sum_{j_1 <= j_2} exp(-5 sum_{i=1}^{j_2} 1/n_i) ]
  exp(5 beta)" and then "when d/n is small [...] E[K_N^2]/E[K_N]^2 ~= exp(5 beta)" and "When
  d/n is not small, we find E[K_N^2] ~= (d^2/n_0^2 ||x||^4 + dn/n_0 + n^2) exp(5 beta). Thus, we
  again find E[K_N^2] ~= exp(5 beta)."

The NTK here is the paper's: weight terms of mean ``2 ||x||^2 / n_0`` per layer and bias terms of
mean 1 (``conftest`` docstring: NTK parameterization, He scale, zero biases); the samples come from
an exact O(depth) reduction of the network, checked against real networks by
``hanin_nica2019.sampler_matches_networks``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_ntk.verdicts.stats import t_quantile

CONF = 0.95

RIVAL_EXACT = "exactly e^{5 beta} (slope 5 at every beta)"
RIVAL_NONE = "no depth-to-width effect (slope 0)"
RIVAL_WEIGHTS = "weight terms only: e^{5 beta} f(4 beta) (bias terms left out)"


def _log_ci(entry: dict) -> tuple[float, float, float]:
    """``log(E[K^2]/E[K]^2)`` of all the networks of a configuration with a batch-means interval
    (Student t over the groups' estimates)."""
    est = math.log(entry["ratio"])
    g = np.asarray(entry["log_groups"])
    half = t_quantile(0.5 + CONF / 2, g.size - 1) * g.std(ddof=1) / math.sqrt(g.size)
    return est, est - half, est + half


def _within_slope(x, y, label) -> tuple[float, float, float, float, int]:
    """Least-squares slope of ``y`` on ``x`` with one intercept per ``label`` (width):
    ``(slope, lo, hi, stderr, dof)`` with a Student-t interval."""
    x, y, label = (np.asarray(v, np.float64) for v in (x, y, label))
    xc, yc = x.copy(), y.copy()
    for lab in np.unique(label):
        sel = label == lab
        xc[sel] -= x[sel].mean()
        yc[sel] -= y[sel].mean()
    sxx = float(np.sum(xc * xc))
    slope = float(np.sum(xc * yc) / sxx)
    dof = x.size - np.unique(label).size - 1
    resid = yc - slope * xc
    se = math.sqrt(float(np.sum(resid * resid)) / dof / sxx)
    half = t_quantile(0.5 + CONF / 2, dof) * se
    return slope, slope - half, slope + half, se, dof


def _table(claim, fl, configs, theory):
    rows = []
    for (w, d) in configs:
        e, b = fl[(w, d)], d / w
        rows.append([int(w), int(d), float(b), float(e["ratio"]), float(math.exp(5 * b)),
                     float(e["ratio"] / math.exp(5 * b)), float(theory.continuum_ratio(b) / math.exp(5 * b)),
                     float(theory.layer_sum_model(d, w) / math.exp(5 * b)), float(e["mean"] / (3 * (d + 1)))])
    claim.table("normalized NTK second moment R = E[K^2]/E[K]^2 (paper's weighting)",
                ["width", "depth", "beta = depth/width", "R measured", "exp(5 beta)", "R / exp(5 beta)",
                 "R / exp(5 beta), derived (infinite width)", "R / exp(5 beta), independent-layer model",
                 "E[K] / (3 d)"], rows)


@pytest.mark.claim(
    "hanin_nica2019.exponent_constant",
    source="arXiv:1909.05989, Theorem 1 (E[K_N(x,x)^2]/E[K_N(x,x)]^2 ~= exp(5 beta), ~= up to bounded factors) "
           "and the appendix 'Overall Scaling' (the same for d/n small and not small)",
    statement=(
        "For He-initialized ReLU nets with zero-initialized biases, the NTK's normalized second moment "
        "E[K(x,x)^2]/E[K(x,x)]^2 equals exp(5 beta), beta = depth/width, up to bounded factors: the ratio "
        "divided by exp(5 beta) stays between 1/4 and 2 at every beta = ${betas} and width = ${widths} "
        "(${samples} networks per configuration in ${groups} groups, input dimension ${dim}, ${profile} profile). "
        "This tests the theorem's '~=' (bounded factors), not the constant 5: over beta <= 3/8 the band also admits "
        "exp(c beta) for c from about 1.3 to 6.8; the constant is tested by slope_approaches_five. The reading of "
        "'~=' as bounded factors rests on the theorem text, which could not be re-read here."
    ),
    expect="holds",
)
def test_exponent_constant(claim, ntk_fluctuations, settings, theory):
    r"""``log(R) - 5 beta`` with ``R = E[K^2]/E[K]^2`` at every grid configuration, against a fixed band.

    What the theorem states is ``R ~= exp(5 beta)``: ``R e^{-5 beta}`` is bounded above and below by
    constants independent of depth and width (the constants are not given). The band, fixed from the
    derivation before running: the derived infinite-width prefactor ``R e^{-5 beta}``
    (``conftest.continuum_ratio``) falls from 0.87 at ``beta = 1/16`` to 0.47 at ``beta = 3/8``, and the
    finite-width factor ``(1 + 5/n)^{beta n} / e^{5 beta}`` lowers it by at most ``e^{-0.65 beta}``
    (0.78 at ``n = 16``, ``beta = 3/8``): about 0.37 .. 0.87 in all. ``[1/4, 2]`` contains that with a
    factor 1.5 to spare below (Monte Carlo and the independent-layer approximation) and 2 above; it
    is a bounded-factors band, not the derived curve.

    Two interval measurements, each on the configuration nearest its bound (batch-means 95%
    intervals over the groups): the smallest ``log(R) - 5 beta`` against ``log(1/4)`` and the largest
    against ``log 2``. Rival of the lower one: "no depth-to-width effect" -- the fixed-depth picture in
    which the NTK becomes deterministic as the width grows, ``R -> 1``, i.e. ``log(R) - 5 beta = -5
    beta``, below ``log(1/4)`` for ``beta > 0.277``: the grid's top ``beta`` separates the two. No theory
    predicts a ratio above ``2 e^{5 beta}`` here (the appendix's expression over the theorem's mean
    gives about ``1.1 e^{5 beta}`` at small ``beta``, the derivation less than ``e^{5 beta}``), so the
    upper bound has no rival.
    """
    s, fl = settings, ntk_fluctuations
    grid = [(w, round(b * w)) for w in s["widths"] for b in s["betas"]]
    _table(claim, fl, grid, theory)
    cis = {}
    for (w, d) in grid:
        est, lo, hi = _log_ci(fl[(w, d)])
        shift = 5.0 * d / w
        cis[(w, d)] = (est - shift, lo - shift, hi - shift)
    low = min(cis, key=lambda c: cis[c][1])
    high = max(cis, key=lambda c: cis[c][2])
    beta_max = max(d / w for (w, d) in grid)
    claim.interval(cis[low][0], cis[low][1:], lower=math.log(0.25),
                   rivals={"no depth-to-width effect (R -> 1 as in the fixed-depth limit)": -5.0 * beta_max},
                   how=f"batch means over {s['groups']} groups; the configuration nearest the bound: width "
                       f"{low[0]}, depth {low[1]}",
                   name="min over the grid of log(R) - 5 beta")
    claim.interval(cis[high][0], cis[high][1:], upper=math.log(2.0),
                   how=f"batch means over {s['groups']} groups; the configuration nearest the bound: width "
                       f"{high[0]}, depth {high[1]}",
                   name="max over the grid of log(R) - 5 beta")


@pytest.mark.claim(
    "hanin_nica2019.slope_approaches_five",
    source="arXiv:1909.05989, Theorem 1 (R ~= exp(5 beta)) with this suite's derivation of the bounded prefactor "
           "(conftest docstring): the local rate d log R / d beta rises toward 5",
    statement=(
        "The local slope d log(E[K^2]/E[K]^2) / d beta of He-initialized ReLU nets rises toward the paper's 5 as "
        "beta grows: fitted over beta = ${low_betas} and over beta = ${high_betas} (widths ${slope_widths}, one "
        "intercept per width) it matches the derived infinite-width curve (2.63 at beta -> 0, 5 - 1/beta at large "
        "beta) within 0.3 in each window and is larger in the higher window -- neither the constant 5 of an exact "
        "exp(5 beta) nor the 0 of no depth-to-width effect (${samples} networks per configuration, ${profile} profile)."
    ),
    expect="holds",
)
def test_slope_approaches_five(claim, ntk_fluctuations, settings, theory):
    r"""Two window slopes of ``log R`` against ``beta`` and their difference.

    If ``R = e^{5 beta} P(beta)`` with ``P`` bounded (the theorem), ``d log R / d beta = 5 + (log
    P)'``: the slope tends to 5 only where ``P`` settles. The derived prefactor (``conftest``) falls
    like ``(4/9)/(2 beta)``, so the slope is ``1 + 2.63 beta``-like at first -- 2.63 at ``beta -> 0``
    -- and ``5 - 1/beta`` at large ``beta``. Predictions: the least-squares slope of the derived
    infinite-width ``log R`` over each window's betas (``theory.secant_slope``; 2.87 over 1/16..3/16
    and 3.22 over 1/4..3/8 in the quick profile). Tolerance 0.3 (fixed before running): the
    finite-width independent-layer model puts the window slopes 0.06-0.13 below the infinite-width
    ones at widths 64-128, its approximation (no forward/backward correlation beyond the gates) is
    of the same order, and the 95% interval of a window slope from 2 widths x 3 betas x 10 groups
    is about +-0.1.

    Rivals, judged with the same band: an exact ``e^{5 beta}`` (slope 5 in every window); no
    depth-to-width effect (slope 0); and the sum of the weight terms alone, ``e^{5 beta} f(4 beta)``
    with ``f(u) = 2 (u - 1 + e^{-u}) / u^2`` (the outside review's prefactor; what the suite's
    earlier, standard-parameterization NTK is close to: 3.77 and 3.92 in the quick windows). The
    rise itself: ``slope(high) - slope(low)`` must be positive (derived +0.34): the whole interval
    above 0. The exact ``e^{5 beta}`` and no effect both predict a rise of 0 -- the bound's negation,
    so they are not passed as rival points (pytest-ntk refuses a rival on the allowed side's edge);
    they are rejected exactly when the interval lies above 0. The difference's interval combines
    the two independent fits' standard errors (Student t with the smaller number of degrees of
    freedom).
    """
    s, fl = settings, ntk_fluctuations
    fits = {}
    for window in ("low_betas", "high_betas"):
        xs, ys, labels = [], [], []
        for w in s["slope_widths"]:
            for b in s[window]:
                d = round(b * w)
                g = fl[(w, d)]["log_groups"]
                xs += [d / w] * len(g)
                ys += list(g)
                labels += [w] * len(g)
        fits[window] = _within_slope(xs, ys, labels)
    configs = [(w, round(b * w)) for w in s["slope_widths"] for b in list(s["low_betas"]) + list(s["high_betas"])]
    _table(claim, fl, configs, theory)
    claim.attach("window slopes", {k: {"slope": v[0], "ci": [v[1], v[2]], "stderr": v[3], "dof": v[4]}
                                   for k, v in fits.items()})

    def weights_only(b):
        return theory.continuum_ratio(b, 1.0, 0.0)

    for window, label in (("low_betas", "low"), ("high_betas", "high")):
        slope, lo, hi, _, _ = fits[window]
        claim.interval(slope, (lo, hi), predicted=theory.secant_slope(s[window]), atol=0.3,
                       rivals={RIVAL_EXACT: 5.0, RIVAL_NONE: 0.0,
                               RIVAL_WEIGHTS: theory.secant_slope(s[window], weights_only)},
                       how=f"least squares over {len(s['slope_widths'])} widths x {len(s[window])} betas x "
                           f"{s['groups']} groups, one intercept per width",
                       name=f"d log R / d beta over beta in [{min(s[window]):.4g}, {max(s[window]):.4g}] "
                            f"({label} window)")
    (sl, _, _, se_l, df_l), (sh, _, _, se_h, df_h) = fits["low_betas"], fits["high_betas"]
    rise, se = sh - sl, math.sqrt(se_l**2 + se_h**2)
    half = t_quantile(0.5 + CONF / 2, min(df_l, df_h)) * se
    claim.interval(rise, (rise - half, rise + half), lower=0.0,
                   how="difference of the two window fits, standard errors combined; an exact e^{5 beta} and no "
                       "depth-to-width effect both predict 0, the bound's negation",
                   name="rise of the local slope from the low to the high window "
                        f"(derived {theory.secant_slope(s['high_betas']) - theory.secant_slope(s['low_betas']):+.3f})")


@pytest.mark.claim(
    "hanin_nica2019.fixed_ratio_does_not_vanish",
    source="arXiv:1909.05989, Theorem 1 and abstract ('even in the limit of infinite overparameterization, "
           "the NTK is not deterministic if depth and width simultaneously tend to infinity')",
    statement=(
        "At fixed depth/width the NTK's fluctuation does not vanish as the width grows: E[K^2]/E[K]^2 - 1 at "
        "depth/width = ${ratio_beta} has a log-log width slope >= 0 over widths ${ratio_widths} (the theory: a "
        "slight rise toward its infinite-width value), unlike the 1/width of a deterministic-limit NTK "
        "(${samples} networks each in ${groups} groups, ${profile} profile)."
    ),
    expect="holds",
)
def test_fixed_ratio(claim, ntk_fluctuations, settings, theory):
    r"""Fit ``log(R - 1)`` per group against log width at fixed ``beta``; one-sided.

    Prediction: the slope is not negative (a lower bound of 0 on the whole 95% interval). The
    theory predicts slight growth, not a constant: at fixed ``beta`` the per-layer factor ``(1 +
    5/n)^{beta n}`` rises toward ``e^{5 beta}`` as ``n`` grows, and the independent-layer model puts
    ``R - 1`` at 0.314, 0.352, 0.378, 0.393 for widths 16..128 at ``beta = 1/8`` (slope +0.11),
    below the infinite-width 0.411; so "does not vanish" is tested as "does not fall". Rival (a
    point, rejected when the interval excludes it): the NTK concentrating at large width whatever
    the depth, ``R - 1 ~ 1/width`` (slope -1).
    """
    s, fl = settings, ntk_fluctuations
    configs = [(w, round(s["ratio_beta"] * w)) for w in s["ratio_widths"]]
    xs, ys = [], []
    for (w, d) in configs:
        g = np.exp(fl[(w, d)]["log_groups"]) - 1.0
        xs += [w] * len(g)
        ys += list(g)
    _table(claim, fl, configs, theory)
    claim.slope(xs, ys, lower=0.0,
                rivals={"the NTK concentrates at large width whatever the depth (R - 1 ~ 1/width)": -1.0},
                x_name="width", y_name="E[K^2]/E[K]^2 - 1",
                name="E[K^2]/E[K]^2 - 1 vs width at fixed depth/width")


@pytest.mark.claim(
    "hanin_nica2019.fixed_depth_vanishes",
    source="arXiv:1909.05989, Theorem 1 (beta = depth/width -> 0 at fixed depth: exp(5 beta) - 1 ~ 5 depth/width); "
           "the contrast of the abstract ('in sharp contrast to the regime where depth is fixed')",
    statement=(
        "Contrast: at fixed depth the NTK's fluctuation vanishes like 1/width: E[K^2]/E[K]^2 - 1 at depth "
        "${fixed_depth} has a log-log width slope of -1 (+-0.25) over widths ${depth_widths} (${samples} networks "
        "each in ${groups} groups, ${profile} profile)."
    ),
    expect="holds",
)
def test_fixed_depth(claim, ntk_fluctuations, settings, theory):
    r"""Fit ``log(R - 1)`` per group against log width at fixed depth.

    Prediction: slope -1. Tolerance 0.25 (fixed before running): ``R - 1`` is ``c beta + O(beta^2)``
    with ``beta = depth/n``; over the widths used the independent-layer model's own log-log slope is
    -1.03 at depth 2 (and ``e^{5 depth/n} - 1`` against ``5 depth/n`` alone would give -1.14), and the
    95% interval from 5 widths x 10 groups is a few hundredths. Rivals (same band): the NTK staying
    random at any width (slope 0), and the relative standard deviation's ``1/sqrt(width)`` mistaken for
    the variance's law (slope -1/2).
    """
    s, fl = settings, ntk_fluctuations
    configs = [(w, int(s["fixed_depth"])) for w in s["depth_widths"]]
    xs, ys = [], []
    for (w, d) in configs:
        g = np.exp(fl[(w, d)]["log_groups"]) - 1.0
        xs += [w] * len(g)
        ys += list(g)
    _table(claim, fl, configs, theory)
    claim.slope(xs, ys, expected=-1.0, tol=0.25,
                rivals={"the NTK stays random at any width (slope 0)": 0.0,
                        "1/sqrt(width), the law of the relative standard deviation (slope -1/2)": -0.5},
                x_name="width", y_name="E[K^2]/E[K]^2 - 1",
                name="E[K^2]/E[K]^2 - 1 vs width at fixed depth")


@pytest.mark.claim(
    "hanin_nica2019.sampler_matches_networks",
    source="this suite's exact reduction (conftest docstring) against real networks; the NTK of "
           "arXiv:1909.05989 (sum over weights and biases, He initialization, zero biases)",
    statement=(
        "Control of the measurement: real He-initialized ReLU networks (direct forward/backward pass, "
        "float64) give pytest-ntk's empirical NTK to rounding on the same weights, E[K] = d (1 + 2||x||^2/n_0) "
        "(twice the paper's d (1/2 + ||x||^2/n_0)), and the same E[K^2]/E[K]^2 as the exact O(depth) reduction "
        "within 0.06 in log, at (width, depth) = ${control.configs} (${control.samples} networks each, "
        "${profile} profile)."
    ),
    expect="holds",
)
def test_sampler_matches_networks(claim, sampler_control, settings):
    r"""The samplers behind every other claim, checked against networks.

    1. Exact: the direct networks' ``K`` (both weightings) against pytest-ntk's ``empirical_ntk`` of
       the same weights with zero biases (``FullyConnected(..., "ntk", W_std=sqrt 2, b_std=1)`` for the
       paper's weighting, the standard parameterization for the old one): relative tolerance 1e-9
       (float64 rounding over a few hundred products). An identity check: no competing value exists.
    2. The mean ``E[K] / (3 d)`` (``||x||^2 = n_0``): 1 exactly in the paper's weighting (weight terms
       2, bias terms 1 per layer); tolerance 0.03 against a batch-means interval of about +-0.01.
       Rival: the standard parameterization's weighting, ``(n_0 + L n + d) / (3 d)``, far above.
    3. ``log R`` of the networks against the reduction's (10x as many draws): they are equal in
       distribution, so only Monte Carlo separates them; tolerance 0.06, about twice the 95%
       batch-means half-width of the networks' estimate. Rival: the standard parameterization's
       weighting (the suite's earlier NTK) -- ``log R`` 0.14-0.16 higher at these configurations --
       showing that the comparison resolves the weighting of weight against bias terms.
    """
    s, c = settings, settings["control"]
    ctl = sampler_control
    exact = np.concatenate([ctl[tuple(cfg)]["exact"] for cfg in c["configs"]])
    claim.close(exact[:, [0, 2]].ravel(), exact[:, [1, 3]].ravel(), rtol=1e-9, atol=0.0,
                name="K of the direct networks vs pytest-ntk's empirical_ntk on the same weights")
    rows = []
    for cfg in c["configs"]:
        w, d = (int(v) for v in cfg)
        e = ctl[(w, d)]
        rows.append([w, d, float(e["net_ratio"]), float(e["red_ratio"]), float(e["red_std_ratio"]),
                     float(np.mean(e["net_mean_groups"]) / (3 * (d + 1)))])
        std_mean = (s["dim"] + d * w + (d + 1)) / (3.0 * (d + 1))
        claim.samples(e["net_mean_groups"] / (3.0 * (d + 1)), predicted=1.0, rtol=0.0, atol=0.03,
                      rivals={"standard-parameterization weighting": std_mean},
                      name=f"E[K] / (3 d) of the networks, width {w}, depth {d}")
        est = math.log(e["net_ratio"]) - math.log(e["red_ratio"])
        gn, gr = np.asarray(e["net_log_groups"]), np.asarray(e["red_log_groups"])
        se = math.sqrt(gn.var(ddof=1) / gn.size + gr.var(ddof=1) / gr.size)
        half = t_quantile(0.5 + CONF / 2, gn.size - 1) * se
        claim.interval(est, (est - half, est + half), predicted=0.0, atol=0.06,
                       rivals={"standard-parameterization weighting (the suite's earlier NTK)":
                               math.log(e["red_std_ratio"]) - math.log(e["red_ratio"])},
                       how=f"batch means over {gn.size} groups of networks and of reduction draws",
                       name=f"log R of networks minus log R of the reduction, width {w}, depth {d}")
    claim.table("networks against the reduction", ["width", "depth", "R networks", "R reduction",
                                                   "R reduction, standard weighting", "E[K] / (3 d) networks"], rows)
