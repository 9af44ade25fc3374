"""The NNGP limit: at initialization a wide network's outputs are a Gaussian process whose covariance
is the NNGP kernel. Lee, Bahri, Novak, Schoenholz, Pennington & Sohl-Dickstein (2018),
arXiv:1711.00165, Section 2; Matthews, Rowland, Hron, Turner & Ghahramani (2018),
arXiv:1804.11271 (convergence in distribution as the widths grow). Settings per profile: ``conftest.py``.

How normality is tested (decided before running, except the standardised fourth moment of
``gaussian_wide``, whose docstring says when and why it was chosen). Given its hidden layers, a network's ``out_dim``
readout units are independent Gaussians with covariance ``K_hat`` (the empirical NNGP of those
hidden layers), whatever the width: within one network the outputs are Gaussian by
construction, and the only way they can fail to be Gaussian is *across* networks, through the
randomness of ``K_hat``. So (i) the Kolmogorov-Smirnov test uses one readout unit per network, whose
values over independent networks are i.i.d. (a Kolmogorov-Smirnov test of the whitened outputs
against N(0, 1), fully specified by the analytic NNGP, so no parameter is estimated); pooling all
``out_dim`` units would make the samples dependent and the test's p-value meaningless; and
(ii) the departure from Gaussianity is measured by its size (the standardised fourth moment of
``gaussian_wide``, over all units with the networks as the independent draws, and the kurtosis
claim): the excess kurtosis of a Gaussian
scale mixture is ``3 Var[K_hat(x,x)] / E[K_hat(x,x)]^2``, which falls like 1/width -- here the
many outputs per network do help, as each network's ``out_dim`` draws average the Gaussian noise.

Sources (paraphrased from the papers, not verbatim from a stored copy; the search tools here hold
only their opening pages). Lee et al. (2018), Section 2.3: in the limit of infinitely wide hidden
layers (taken one after the other), each output unit of a network with i.i.d. weights of variance
``sigma_w^2 / N_l`` and biases of variance ``sigma_b^2`` is a Gaussian process ``GP(0, K^L)`` with
``K^l(x, x') = sigma_b^2 + sigma_w^2 E_{z ~ GP(0, K^{l-1})}[phi(z(x)) phi(z(x'))]``. Matthews et al.
(2018), main theorem: for a continuous activation obeying a linear envelope ``|phi(u)| <= c + m|u|``
(ReLU does) and any widths growing together (strictly increasing width functions), the outputs on
any countable set of inputs converge in distribution to that Gaussian process. Conditions as tested:
equal hidden widths growing together, ReLU, Gaussian weights and biases (the NTK parameterization
gives the same function at initialization as this standard one), inputs on the unit sphere.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats


def _whiten(f: np.ndarray, nngp: np.ndarray) -> np.ndarray:
    """``z = L^{-1} f`` over the inputs (``L L^T = nngp``) for every network and readout unit:
    ``f`` (networks, inputs, units) -> ``z`` (inputs, networks, units)."""
    S, n, U = f.shape
    L = np.linalg.cholesky(nngp)
    return scipy.linalg.solve_triangular(L, f.transpose(1, 0, 2).reshape(n, S * U), lower=True).reshape(n, S, U)


def _whitened_first_unit(f: np.ndarray, nngp: np.ndarray) -> np.ndarray:
    """``L^{-1} f(x)`` for readout unit 0 of every network, ``L L^T = nngp``; pooled, (networks * inputs,)."""
    return _whiten(f[:, :, :1], nngp)[:, :, 0].ravel()


def _rival_kernels(settings: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """Closed-form covariances of the near-miss rivals (analytic recursions, float64) on the inputs ``x``:
    the NNGP without bias terms (``b_std = 0``) and the NNGP of one hidden layer fewer."""
    from pytest_ntk.science.nets import FullyConnected

    m = settings["model"]
    width = settings["covariance"]["width"]

    def nngp(depth: int, b_std: float) -> np.ndarray:
        return FullyConnected(depth, width, m["activation"], W_std=m["W_std"], b_std=b_std, out_dim=m["out_dim"]).nngp(x)

    return {"NNGP without bias terms (b_std = 0)": nngp(m["depth"], 0.0),
            f"NNGP of one hidden layer fewer (depth {m['depth'] - 1})": nngp(m["depth"] - 1, m["b_std"])}


@pytest.mark.claim(
    "nngp_limit.covariance",
    source="arXiv:1711.00165, Section 2 (the NNGP kernel recursion); arXiv:1804.11271, main theorem (convergence to the GP)",
    statement=(
        "At initialization the outputs of a wide network have the NNGP covariance of their own architecture: the "
        "Monte Carlo covariance E[f(x_i) f(x_j)] over networks and readout units matches "
        "FullyConnected.nngp on every pair of ${model.n_inputs} inputs, within ${covariance.atol} on the "
        "correlation scale (95% CI over networks), and rejects, with the same tolerance, three rival "
        "covariances, each by its variances on the diagonal and its correlations off it: the NTK, the NNGP "
        "without bias terms (b_std = 0), and the NNGP of one hidden layer fewer. ${model.depth} hidden "
        "${model.activation} layers of width ${covariance.width}, bias std ${model.b_std}, "
        "${model.out_dim} readout units, ${covariance.seeds} networks (${profile} profile)."
    ),
    expect="holds",
)
def test_covariance(claim, wide_outputs, settings):
    """Per entry (i <= j): per-network estimates ``C_s[i,j] = (1/out_dim) sum_a f_a(x_i) f_a(x_j)``
    divided by ``sqrt(K_ii K_jj)``, against ``K_ij / sqrt(K_ii K_jj)`` (claim.samples: CI of the mean).

    Tolerance 0.03 (chosen before running). The finite-width bias of E[f f^T] at depth 2 is
    O(1/width) -- a fraction of a percent at width 512. Per network, C_s varies by
    ``Var[K_hat]/K^2 ~ 10/width`` (two ReLU layers, each ~5/width) plus ``2/out_dim`` from the
    readout, an SD of about 0.17 and a 95% CI half-width of about 0.017 over 400 networks; 0.03
    is the smallest tolerance that CI can certify, and it still catches any error above 3% in the
    analytic recursion or the sampling.

    Rivals, each a covariance A that a plausible wrong theory puts on the outputs, judged at every
    entry with the same CI and tolerance and split by the same rule: on the diagonal the
    variances ``A_ii / K_ii``, off the diagonal the rival's correlations ``A_ij / sqrt(A_ii A_jj)``
    (its shape at the measured scale). A rival is judged at an entry only where its closed form
    lies outside the prediction's band, ``|rival - prediction| > atol`` (a rival inside the band
    does not contradict the prediction); this is decided from the analytic kernels, never from the
    samples, and at both quick seeds every rival is judged at every entry.

    - "NTK instead of NNGP": the analytic NTK Theta of the same network (the kernel that governs
      training, often confused with the prior's). On the diagonal ``Theta_ii / K_ii`` (the NTK adds
      every earlier layer's contribution to the NNGP, ~ depth + 1 times for ReLU: 2.89 here), off
      it the NTK's correlations (0.14-0.29 against the NNGP's 0.41-0.56 at seed 0). Far from the
      prediction; it cannot decide a verdict the prediction's own band does not. (A first version
      put the unnormalised ``Theta_ij / sqrt(K_ii K_jj)`` on the off-diagonal entries too; there
      the NTK's larger scale and smaller correlation can cancel -- 0.404 vs the NNGP's 0.414 for
      one pair at seed 0 -- so those entries could not separate the theories. The split was made
      after that run; the prediction's tolerance is unchanged.)
    - Near misses, added later (a rival can only make a HOLDS harder; the tolerance is unchanged):
      "NNGP without bias terms" -- the same recursion with ``b_std = 0``. For ReLU with
      ``W_std^2 = 2`` the variance is carried unchanged through each layer and each bias adds
      ``b_std^2``; with inputs on S^7 the first layer's ``W_std^2 / d = 0.25`` is small enough that
      the biases' 3 x 0.01 are 11% of the output variance: the closed forms give variances
      0.893 (0.107 below the prediction, over 3 tolerances) and correlations 0.032-0.050 below the
      NNGP's at seeds 0 and 1 -- 1.1 to 1.7 tolerances, so off the diagonal the rival (gap g) is
      rejected only when the measured entry is above ``prediction - (g - atol) + CI half-width``,
      i.e. at most a few thousandths below the prediction, or above it: a real constraint.
      "NNGP of one hidden layer fewer" -- the wrong depth. Each ReLU layer applies the arc-cosine
      map to the correlations once more, so the shallower kernel's correlations are 0.09-0.27
      lower (at least 3 tolerances: decided by the correlations), while its variances differ only by
      one bias term, 0.964 -- 0.036 from the prediction, just outside the band. There a measured
      variance at the prediction (E[f(x)^2] equals the NNGP's exactly for ReLU at any width) with
      the expected CI half-width ~0.017 cannot reject the rival: the diagonal entries are expected
      to be INCONCLUSIVE against it with 400 networks, and the claim with them. That was known from
      the closed forms before this version ran; the verdict is reported as measured.

    Finding (quick): INCONCLUSIVE at both seeds, 26 of 30 rival judgements ruled out. Seed 0: the
    prediction HOLDS at all 10 entries (largest gap 0.0069); the NTK and the bias-free NNGP are
    rejected at every entry (the latter off the diagonal narrowly: lower ends of the gap CIs
    0.031-0.044 against 0.03); the shallower NNGP is rejected at all 6 off-diagonal entries (gap
    CIs from 0.15 up) but not at the 4 variances (measured 0.995-1.004, gap CIs to 0.964 starting
    at 0.014-0.025). Seed 1: entry (0, 0) is INCONCLUSIVE on the prediction itself (1.015, gap
    CI up to 0.031, as before); the shallower NNGP's variance is rejected at (0, 0) and (1, 1)
    (measured 1.015, 1.013) but not at (2, 2), (3, 3); the bias-free NNGP's correlation is not
    rejected at (0, 3) and (2, 3) (closed-form gaps 0.032, 0.038; gap CIs from 0.023, 0.030).
    So the correlations separate the NNGP from the shallower one by a wide margin and from the
    bias-free one narrowly (not at every entry at seed 1); the variances separate the bias-free
    one but, at this tolerance with 400 networks, cannot tell depth 2 from depth 1.
    """
    f, K, T = wide_outputs["f"], wide_outputs["nngp"], wide_outputs["ntk"]
    atol = settings["covariance"]["atol"]
    out_dim = f.shape[2]
    C = np.einsum("sia,sja->sij", f, f) / out_dim  # (S, n, n)
    scale = np.sqrt(np.outer(np.diag(K), np.diag(K)))

    def corr(A):
        return A / np.sqrt(np.outer(np.diag(A), np.diag(A)))

    # name -> (rival's value at each entry by the split rule: variance / K_ii on the diagonal, correlation off it)
    kernels = {"NTK instead of NNGP": T, **_rival_kernels(settings, wide_outputs["x"])}
    split = {name: np.where(np.eye(K.shape[0], dtype=bool), np.diag(A)[:, None] / np.diag(K)[:, None], corr(A))
             for name, A in kernels.items()}
    n = K.shape[0]
    for i in range(n):
        for j in range(i, n):
            predicted = K[i, j] / scale[i, j]
            kind = "its variance" if i == j else "its correlation"
            rivals = {f"{name} ({kind})": float(v[i, j]) for name, v in split.items()
                      if abs(v[i, j] - predicted) > atol}
            claim.samples(C[:, i, j] / scale[i, j], predicted=predicted, atol=atol, rivals=rivals,
                          name=f"E[f(x{i}) f(x{j})] / sqrt(K_ii K_jj)")
    mean = C.mean(axis=0)
    claim.table("Monte Carlo covariance vs NNGP (correlation scale: / sqrt(K_ii K_jj)); rivals: variance on the "
                "diagonal, correlation off it",
                ["i", "j", "Monte Carlo", "NNGP (prediction)", "gap"] + [f"rival: {name}" for name in split]
                + ["NTK unnormalised Theta_ij / sqrt(K_ii K_jj)"],
                [[i, j, float(mean[i, j] / scale[i, j]), float(K[i, j] / scale[i, j]),
                  float((mean[i, j] - K[i, j]) / scale[i, j])] + [float(v[i, j]) for v in split.values()]
                 + [float(T[i, j] / scale[i, j])]
                 for i in range(n) for j in range(i, n)])
    claim.attach("relative_frobenius_gap", float(np.linalg.norm(mean - K) / np.linalg.norm(K)))


NORMALITY_DOC = """
    One readout unit per network, whitened with the analytic NNGP (``z = L^{-1} f``, ``L L^T = K``):
    in the limit the 4 components of every network are i.i.d. N(0, 1), so the pooled values are
    tested against N(0, 1) with a one-sample Kolmogorov-Smirnov test (scipy.stats.kstest).
    The claim holds when the p-value is at least alpha = 0.01 (chosen before running; a
    correct null is rejected 1% of the time). With 1600 values the test detects a distance
    between distribution functions above about 0.04; the finite-width deviation at width 512
    (a scale mixture with Var[K_hat]/K^2 ~ 0.02) is about 0.001, far below it, while a width-2
    network (K_hat varies by O(1)) is far above it. The p-value is a bound (``at_least``) and takes
    no rival: its alternative, "not Gaussian", is its negation.
"""


def _ks(claim, outputs, alpha: float, label: str):
    z = _whitened_first_unit(outputs["f"], outputs["nngp"])
    res = scipy.stats.kstest(z, "norm")
    claim.table("Kolmogorov-Smirnov test of whitened outputs",
                ["width", "values", "KS distance D", "p-value", "alpha", "excess kurtosis", "variance"],
                [[int(outputs["width"]), int(z.size), float(res.statistic), float(res.pvalue), alpha,
                  float(scipy.stats.kurtosis(z)), float(np.var(z))]])
    claim.at_least(res.pvalue, alpha, name=f"KS p-value of whitened outputs vs N(0, 1), {label}")


def _standardised_fourth_moment(f: np.ndarray, K: np.ndarray, confidence: float = 0.95):
    """``kappa = E[z^4] / E[z^2]^2`` of the whitened outputs ``z = L^{-1} f`` (``L L^T = K``) pooled over
    networks, inputs and readout units, with a delta-method interval over the networks.

    ``f`` (networks, inputs, units). Per network ``s``: ``a_s`` = mean of ``z^4`` and ``b_s`` = mean of
    ``z^2`` over its inputs and units; ``kappa_hat = mean(a) / mean(b)^2``. The networks are
    independent draws (the units of one network share its hidden layers), so the interval uses the
    per-network influence ``a_s / m2^2 - 2 m4 b_s / m2^3`` (``m4``, ``m2`` the pooled means): half-width
    ``z_(1+c)/2 * SD(influence) / sqrt(networks)`` (the influence function up to an additive
constant, which the SD ignores). Returns ``(kappa_hat, (lo, hi))``.
    """
    S = f.shape[0]
    z = _whiten(f, K)
    a, b = np.mean(z**4, axis=(0, 2)), np.mean(z**2, axis=(0, 2))
    m4, m2 = a.mean(), b.mean()
    kappa = m4 / m2**2
    influence = a / m2**2 - 2.0 * m4 * b / m2**3
    half = scipy.stats.norm.ppf(0.5 + confidence / 2) * influence.std(ddof=1) / np.sqrt(S)
    return float(kappa), (float(kappa - half), float(kappa + half))


@pytest.mark.claim(
    "nngp_limit.gaussian_wide",
    source="arXiv:1804.11271, main theorem (convergence in distribution to the GP); arXiv:1711.00165, Section 2.3",
    statement=(
        "At initialization the outputs of a wide network are Gaussian with the NNGP covariance: the "
        "whitened outputs of ${covariance.seeds} independent width-${covariance.width} networks (one "
        "readout unit each, ${model.n_inputs} inputs) pass a Kolmogorov-Smirnov test against N(0, 1) at "
        "level ${normality.alpha}, and their standardised fourth moment E[z^4]/E[z^2]^2 over all readout units "
        "is that of N(0, 1) (3, within ${normality.m4_atol}), not the heavier tail of a network that does not "
        "approach the Gaussian limit (the width-${normality.narrow_width} networks' value, or the width-"
        "${kurtosis.widths.0} networks') (${profile} profile)."
    ),
    expect="holds",
)
def test_gaussian_wide(claim, wide_outputs, narrow_outputs, kurtosis_outputs, settings):
    _ks(claim, wide_outputs, settings["normality"]["alpha"], f"width {wide_outputs['width']}")
    kappa, ci = _standardised_fourth_moment(wide_outputs["f"], wide_outputs["nngp"])
    w_near = min(kurtosis_outputs["widths"])
    near, near_ci = _standardised_fourth_moment(kurtosis_outputs["f"][w_near], kurtosis_outputs["nngp"])
    narrow, narrow_ci = _standardised_fourth_moment(narrow_outputs["f"], narrow_outputs["nngp"])
    claim.interval(kappa, ci, predicted=3.0, atol=settings["normality"]["m4_atol"], confidence=0.95,
                   rivals={f"no Gaussian limit: the width-{narrow_outputs['width']} networks' value": narrow,
                           f"no approach to the limit beyond width {w_near}: the width-{w_near} networks' value": near},
                   how=f"delta method over the {wide_outputs['f'].shape[0]} networks (independent draws), values "
                       "pooled over inputs and readout units",
                   name=f"E[z^4]/E[z^2]^2 of whitened outputs, width {wide_outputs['width']} (N(0, 1): 3)")
    claim.table("standardised fourth moment of the whitened outputs (all readout units; CI over networks)",
                ["width", "networks", "E[z^4]/E[z^2]^2", "95% CI", "N(0, 1)"],
                [[int(w), int(o.shape[0]), v, f"[{c[0]:.3f}, {c[1]:.3f}]", 3.0]
                 for w, o, v, c in ((wide_outputs["width"], wide_outputs["f"], kappa, ci),
                                    (w_near, kurtosis_outputs["f"][w_near], near, near_ci),
                                    (narrow_outputs["width"], narrow_outputs["f"], narrow, narrow_ci))])


@pytest.mark.claim(
    "nngp_limit.gaussian_narrow_control",
    source="arXiv:1804.11271, main theorem (a limit in width: nothing is claimed at width 2)",
    statement=(
        "Negative control: with ${normality.narrow_width} units per hidden layer the empirical NNGP K_hat "
        "of a network is far from its mean, so the outputs over networks are a wide scale mixture of "
        "Gaussians, not the NNGP's Gaussian; the same Kolmogorov-Smirnov test (${normality.seeds} "
        "networks, level ${normality.alpha}) rejects (${profile} profile)."
    ),
    expect="fails",
)
def test_gaussian_narrow_control(claim, narrow_outputs, settings):
    _ks(claim, narrow_outputs, settings["normality"]["alpha"], f"width {narrow_outputs['width']}")


test_gaussian_wide.__doc__ = "Whitened outputs of wide networks vs N(0, 1)." + NORMALITY_DOC + """
    Second measurement, with rivals: the standardised fourth moment ``kappa = E[z^4] / E[z^2]^2`` of
    the whitened outputs, pooled over networks, inputs and all readout units; 3 for N(0, 1), and
    ``3 (1 + Var[sigma^2] / E[sigma^2]^2)`` for a Gaussian scale mixture, so it measures the shape,
    not the scale (a variance off by 1.5%, which the covariance claim judges, moves ``E[z^4]`` by
    0.09 but not ``kappa``). Within one network the units are i.i.d. Gaussians given its hidden
    layers, so their marginal over networks is the output distribution tested; the networks are the
    independent draws, and the 95% interval is the delta method's over them (``how`` in the report).
    Tolerance ``normality.m4_atol = 0.25``: the finite-width excess at width 512 (``kurtosis_vanishes``
    measures excess x width of about 24-30 on the unwhitened outputs: 0.05-0.06; an empirical rate,
    not a derived one) plus the interval (about +-0.02 with 400 networks of 256 units), with a margin;
    it rejects a value beyond about 3.3 (networks narrower than about 105-130, by this statistic's
    excess x width of 28-35 at seeds 0 and 1) and cannot tell width 512 from width 128 (about 3.23).

    History: a first version judged the per-network mean of ``z^4`` over one unit (SD 5-6.6 per
    network, CI +-0.5-0.65) against 3 +- 1.0 -- as wide as a width-30 network's excess kurtosis, so
    an outside review found it could not tell width 512 from width 30 (at seed 1 it read
    INCONCLUSIVE: 3.41, CI of the gap to 1.06); a second version used all units but the raw
    ``E[z^4]``, which a second review showed mixes the variance into the shape. The standardised
    moment, the pooling and the tolerance were chosen after those runs; the band is narrower than the
    first, not wider, and set from the kurtosis claim's rate, not from this measurement.

    Rivals (point values, judged with the same band): no Gaussian limit -- the outputs' shape does
    not change with width, so the wide networks' ``kappa`` is the width-2 networks'; and its near
    form, no approach to the limit beyond the narrowest width of the kurtosis grid (width 32, about
    4). Both are measured on those networks, whitened the same way, and carry their own sampling
    error (their intervals are in the table; about +-0.1 at width 32; at width 2 the per-network
    moments are so heavy-tailed that the delta-method interval is not reliable), which the judgement
    ignores: the verdict only needs them well outside the band.
"""
test_gaussian_narrow_control.__doc__ = "The same test on width-2 networks (expected to reject)." + NORMALITY_DOC


def _excess_kurtosis(f: np.ndarray) -> float:
    """Excess kurtosis of the outputs, per input over all networks and units (mean 0 is exact by
    symmetry of the weights), averaged over the inputs: ``mean_x [m4(x) / m2(x)^2 - 3]``."""
    m2 = np.mean(f**2, axis=(0, 2))
    m4 = np.mean(f**4, axis=(0, 2))
    return float(np.mean(m4 / m2**2 - 3.0))


@pytest.mark.claim(
    "nngp_limit.kurtosis_vanishes",
    source="arXiv:1804.11271 and arXiv:1711.00165, Section 2 (Gaussian limit); the 1/width "
           "rate of the leading correction (the connected 4-point function): Yaida 2020, arXiv:1910.00019",
    statement=(
        "The outputs' departure from Gaussianity vanishes with width at the rate of the leading "
        "finite-width correction: the excess kurtosis of the outputs at initialization falls like "
        "width^-1 (log-log slope -1 +- 0.25), not width^0 (no Gaussian limit) nor width^-1/2. Widths "
        "${kurtosis.widths}, ${model.depth} hidden ${model.activation} layers, ${kurtosis.seeds} networks "
        "x ${model.out_dim} readout units per width, in ${kurtosis.groups} groups (${profile} profile)."
    ),
    expect="holds",
)
def test_kurtosis_vanishes(claim, kurtosis_outputs, settings):
    """Excess kurtosis per (width, group of networks), fitted against width on log-log axes.

    For a scale mixture of Gaussians the excess kurtosis is ``3 Var[K_hat]/E[K_hat]^2 > 0``, and
    ``Var[K_hat]`` is O(1/width) at leading order (a sum over ``width`` units), so the slope is -1
    plus an O(1/width) curvature. Tolerance 0.25 (chosen before running): over widths 32..256 a
    second-order term b/width^2 with |b/a| up to ~8 (several layers' worth of 1/width
    corrections) moves the fitted exponent by up to ~0.15, and the CI from 16 points is about
    +-0.1. A non-positive estimate (possible only from sampling noise) would make the log-log fit
    an ERROR, not a verdict.

    Source of the rate: Yaida (2020, arXiv:1910.00019) -- at finite width the connected 4-point
    function of the outputs (hence the excess kurtosis) is O(1/width) at leading order; Matthews
    et al. and Lee et al. give only the limit. Rivals (judged with the same +-0.25 band): exponent
    0, "no Gaussian limit" (the excess kurtosis stays O(1), the negation of the GP limit), and
    exponent -1/2, the central-limit rate of a fluctuation (what one would guess by analogy with
    the NTK's O(width^-1/2) fluctuations; the kurtosis is a ratio of *variances*, O(1/width)).
    """
    k = settings["kurtosis"]
    widths, groups = kurtosis_outputs["widths"], k["groups"]
    xs, ys, rows = [], [], []
    for w in widths:
        f = kurtosis_outputs["f"][w]
        per_group = [_excess_kurtosis(g) for g in np.array_split(f, groups)]
        xs += [w] * groups
        ys += per_group
        rows.append([int(w), float(np.mean(per_group)), float(np.std(per_group, ddof=1)),
                     float(np.mean(per_group) * w)])
    claim.slope(xs, ys, expected=-1.0, tol=0.25, rivals={"no Gaussian limit": 0.0, "width^-1/2": -0.5},
                x_name="width", y_name="excess kurtosis", name="excess kurtosis of outputs vs width")
    claim.table("excess kurtosis of the outputs", ["width", "mean over groups", "SD over groups", "mean * width"],
                rows)
