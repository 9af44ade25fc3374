"""Chizat, Oyallon & Bach (2019), arXiv:1812.07956: lazy training by output scaling.

Five claims on one set of runs (``lazy_training`` in conftest.py): for every initialisation
``w0`` and every scale ``alpha``, the alpha-scaled model and its linearization are trained from
the same ``w0`` by full-batch gradient descent over the same horizon ``T`` (conftest.py gives the
model, the step and the data).

What the paper says (abstract, arXiv:1812.07956): the lazy-training phenomenon "is due to a choice
of scaling, often implicit, that makes the model behave as its linearization around the
initialization, thus yielding a model equivalent to learning with positive-definite kernels";
"we provide bounds on the distance between the lazy and linearized optimization paths"; and
(introduction) "By introducing an explicit scale factor, we show that essentially any parametric
model can be trained in this lazy regime if its output is close to zero at initialization". The
bounds tested are those of its Sec. 2 finite-horizon theorem (``THEOREM``, as the suite has cited it:
Theorem 2.2, assuming ``h(w0) = 0``, a differentiable model with locally Lipschitz differential and
a smooth loss, gradient flow on ``R(alpha h(w)) / alpha^2`` over a fixed horizon ``T``). (The body of
the paper could not be retrieved from the stored copies available here, so the theorem's wording is
the suite's, not re-quoted.)

Tolerances (fixed before any run; for ``lazy_weight_change``'s new measurement and
``lazy_kernel_change``, before they first ran):

- An ``O(alpha^-p)`` rate is checked as a log-log slope ``-p +- 0.1 p`` (an ``O(1)`` bound as slope
  ``0 +- 0.1``). The theorem's bounds are leading order: the next term of the expansion in
  ``1/alpha`` bends the local slope by a relative ``O(1/alpha)``; for a network that is already
  nearly linear at alpha = 1 (NTK parameterization), that stays inside 10% of the exponent (0.1
  for a bounded quantity) over the grid.
- Slopes are fitted on each seed's series divided by its geometric mean over alpha
  (:func:`per_seed_normalised`): the theorem holds at a fixed ``w0`` and its constant depends on it.
"""

from __future__ import annotations

import numpy as np
import pytest

THEOREM = (
    "arXiv:1812.07956, Sec. 2, Theorem 2.2 (finite horizon, assumes h(w0) = 0): over [0, T], "
    "||w_alpha(t) - w0|| = O(1/alpha), ||w_alpha(t) - w_bar_alpha(t)|| = O(1/alpha^2), "
    "||alpha h(w_alpha(t)) - alpha h_bar(w_bar_alpha(t))|| = O(1/alpha)"
)
SETUP = ("A depth-${depth} width-${width} ${activation} network (NTK parameterization), ${n_train} training points "
         "on S^(d-1), d = ${d}, ${n_seeds} initialisations x alpha in {${alphas}}, ${steps} full-batch GD steps "
         "in float64 (${profile} profile)")


def per_seed_normalised(values) -> np.ndarray:
    """Each row (one initialisation ``w0``) divided by its geometric mean over alpha.

    The constant in the theorem's ``O(1/alpha)`` depends on ``w0``. Dividing each seed's series by
    its own geometric mean removes that constant (a per-seed intercept, as in a fixed-effects fit)
    without changing any slope in alpha, so the slope's interval reflects the scatter of each seed
    about its own power law. (The fit then counts n - 2 instead of n - n_seeds - 1 degrees of
    freedom: with 24 points and 4 seeds the interval is ~7% too narrow, far inside the tolerances.)
    """
    v = np.asarray(values, np.float64)
    return v / np.exp(np.mean(np.log(v), axis=1, keepdims=True))


def _grid(runs, values):
    """(alpha repeated per seed, values) flattened in the same seed-major order."""
    alphas = np.asarray(runs["alphas"], np.float64)
    return np.tile(alphas, values.shape[0]), np.asarray(values).ravel()


def _table(claim, runs, kind, quantity, title):
    values = runs[kind][quantity]
    rows = [[float(a)] + [float(v) for v in values[:, j]] for j, a in enumerate(runs["alphas"])]
    claim.table(title, ["alpha"] + [f"seed {i}" for i in range(values.shape[0])], rows)


@pytest.mark.claim(
    "chizat2019.lazy_output_distance",
    source=THEOREM,
    statement=(
        "With a centred model (h(w0) = 0) scaled by alpha and the loss by 1/alpha^2, the trained "
        "predictor stays within O(1/alpha) of the trained linearized predictor over a fixed horizon: "
        "the sup over training and held-out points of |alpha h - alpha h_bar| at time T falls like "
        "alpha^-1 (log-log slope -1 +- 0.1; rivals: slope 0, not lazy, and slope -2, the weight gap's "
        "rate). " + SETUP
    ),
    expect="holds",
)
def test_output_distance_falls_like_one_over_alpha(claim, lazy_training):
    """The third bound of the theorem: ``||alpha h(w_alpha) - alpha h_bar(w_bar_alpha)|| = O(1/alpha)``.

    Rivals: exponent 0 -- no lazy regime, the scaled model departs from its linearization by an
    alpha-independent amount (what happens without ``h(w0) = 0``, ``lazy_uncentred_control``); and
    exponent -2 -- a wrong bookkeeping in which the output gap follows the weight gap
    ``O(1/alpha^2)``, forgetting that the output is multiplied by alpha (alpha * O(1/alpha^2)).
    """
    runs = lazy_training
    c = runs["centred"]
    _table(claim, runs, "centred", "output_distance", "sup_x |g - g_lin| at T (centred)")
    # That training really happened (lazy, not idle) is shown, not judged: the source predicts
    # nothing about the loss at T. (A first version judged loss_T / loss_0 <= 0.05 here as a guard;
    # it measured 0.062 at the worst seed and FAILED the claim before the distance was recorded. It
    # was removed because it is not a prediction of the paper; the ratios are attached instead.)
    claim.attach("horizon", {"eta": runs["eta"], "T": runs["horizon"], "loss_at_0": runs["loss0"],
                             "final_train_loss": c["train_loss"].tolist(),
                             "loss_ratio_T_over_0": (c["train_loss"] / runs["loss0"]).tolist()})
    x, y = _grid(runs, per_seed_normalised(c["output_distance"]))
    claim.slope(x, y, expected=-1.0, tol=0.1,
                rivals={"not lazy (no decay)": 0.0, "the weight gap's rate 1/alpha^2": -2.0},
                name="sup|g - g_lin| vs alpha (per-seed normalised)")


@pytest.mark.claim(
    "chizat2019.lazy_weight_change",
    source=THEOREM,
    statement=(
        "The weights of the centred alpha-scaled model move by O(1/alpha) over a fixed horizon. Since "
        "w_T - w0 = v_T / alpha by construction (training runs in v = alpha (w - w0)), the 1/alpha factor is "
        "built in and the content of the bound is that v_T stays bounded: alpha ||w_T - w0|| / ||w0|| = "
        "||v_T|| / ||w0|| has log-log slope 0 +- 0.1 in alpha (rival: slope +1, weights that move O(1), "
        "||v_T|| growing like alpha). " + SETUP
    ),
    expect="holds",
)
def test_weight_change_falls_like_one_over_alpha(claim, lazy_training):
    """The first bound of the theorem, ``||w_alpha(t) - w0|| = O(1/alpha)``, with the built-in part removed.

    The model is trained in the coordinates ``v = alpha (w - w0)`` (conftest.py), so
    ``||w_T - w0|| = ||v_T|| / alpha`` holds by construction: the previous measurement, the slope of
    ``||w_T - w0|| / ||w0||`` (-0.997 at seed 0), was -1 plus the slope of ``||v_T||``, i.e. largely
    built in. What the theorem adds is that ``v_T`` stays bounded as alpha grows -- the scaled model
    follows its alpha-independent linearization, ``v_T -> v_bar_T``. That is judged here:
    ``||v_T|| / ||w0||`` against alpha, slope 0 +- 0.1 (the module docstring's tolerance rule for an ``O(1)``
    quantity: ``v_T = v_bar_T + O(1/alpha)`` bends the slope by the relative size of that
    correction, which the weight-gap claim measures to be small).

    Numerically this is the previous fit shifted by exactly +1 (``log ||v_T|| = log ||w_T - w0||
    + log alpha``, same interval width): the rewrite changes what the statement claims -- a
    bounded ``v_T``, the part that could fail -- not the data. The measurement that is not tied
    to the coordinates is ``lazy_kernel_change``.

    Rival: exponent +1 -- the weights move ``O(1)`` whatever alpha (no lazy regime), so ``||v_T||``
    grows like alpha; what the uncentred model shows (its table is attached for comparison).
    """
    runs = lazy_training
    _table(claim, runs, "centred", "v_change", "alpha ||w_T - w0|| / ||w0|| = ||v_T|| / ||w0|| (centred)")
    _table(claim, runs, "centred", "weight_change", "||w_T - w0|| / ||w0|| (centred; slope -1 built in)")
    _table(claim, runs, "uncentred", "v_change", "||v_T|| / ||w0|| (uncentred, for comparison)")
    x, y = _grid(runs, per_seed_normalised(runs["centred"]["v_change"]))
    claim.slope(x, y, expected=0.0, tol=0.1, rivals={"not lazy: weights move O(1), ||v_T|| ~ alpha": 1.0},
                name="alpha-scaled weight change ||v_T|| vs alpha (per-seed normalised)")


KERNEL_SOURCE = (THEOREM + "; the lazy regime is the one in which the model's differential, hence its tangent "
                 "kernel, barely moves during training (Sec. 2)")


def _kernel_grid(claim, runs):
    _table(claim, runs, "centred", "kernel_change", "||Theta(w_T) - Theta(w0)|| / ||Theta(w0)|| (centred)")
    _table(claim, runs, "uncentred", "kernel_change", "the same, uncentred (for comparison)")
    return _grid(runs, per_seed_normalised(runs["centred"]["kernel_change"]))


@pytest.mark.claim(
    "chizat2019.lazy_kernel_change",
    source="derived here from " + KERNEL_SOURCE,
    statement=(
        "The tangent kernel of the centred alpha-scaled model barely moves over a fixed horizon, as follows from the "
        "theorem's O(1/alpha) bound on the weight change with a locally Lipschitz differential (this suite's step; "
        "the theorem bounds the weights, not the kernel): ||Theta(w_T) - Theta(w0)||_F / ||Theta(w0)||_F on the "
        "training inputs (Theta the empirical NTK of f, the tangent kernel of the scaled model in v) falls at least "
        "as fast as alpha^-1 (log-log slope at most -1 + 0.1; rival: slope 0, a kernel that keeps moving an "
        "alpha-independent amount). " + SETUP
    ),
)
def test_kernel_change_falls_at_least_like_one_over_alpha(claim, lazy_training):
    """What the theorem implies for the tangent kernel: an upper bound on its change, ``O(1/alpha)``.

    From the theorem's first bound, ``||w_T - w0|| = O(1/alpha)``, and a locally Lipschitz
    differential ``Dh``: ``||Dh(w_T) - Dh(w0)|| = O(1/alpha)``, so ``||Theta(w_T) - Theta(w0)|| /
    ||Theta(w0)|| = O(1/alpha)``. Like every bound of the theorem it is an upper bound: a kernel that
    falls faster satisfies it. Judged as a one-sided slope: the whole 95% CI at most ``-1 + 0.1``
    (the tolerance rule of the module docstring, applied to a bound).

    Rival: exponent 0 -- no lazy regime, the kernel moves an alpha-independent amount (what an
    uncentred model, whose weights must move ``O(1)``, does; its table is attached).

    History: this claim first ran as the two-sided ``-1 +- 0.1`` and FAILED (slope -1.23, CI
    [-1.28, -1.19] at ``--ntk-seed 0``); that reading is sharper than the theorem, which bounds the
    change from above only. The sharper statement is kept, under its own id and without attributing
    it to the source, as ``chizat2019.lazy_kernel_change_rate``.
    """
    x, y = _kernel_grid(claim, lazy_training)
    claim.slope(x, y, upper=-0.9, rivals={"not lazy: the kernel keeps moving": 0.0}, x_name="alpha",
                y_name="relative NTK change", name="relative NTK change vs alpha (per-seed normalised)")


@pytest.mark.claim(
    "chizat2019.lazy_kernel_change_rate",
    source=("derived here from " + KERNEL_SOURCE + ": the kernel change is first order in the weight change, "
            "so its exponent is exactly -1 (not the paper's statement; the paper gives upper bounds)"),
    statement=(
        "Sharper than the theorem: the relative tangent-kernel change falls exactly like alpha^-1 over alpha in "
        "{${alphas}} (log-log slope -1 +- 0.1; rival: slope 0). " + SETUP
    ),
)
def test_kernel_change_rate_is_one_over_alpha(claim, lazy_training):
    """The first-order argument's sharper prediction: exponent exactly -1 (two-sided ``-1 +- 0.1``).

    The change of ``Theta`` is first order in the weight change (generically not smaller), so the
    asymptotic exponent is -1. This is this project's derivation, not the paper's claim (``expect``
    is left unset: a FAILS here says nothing against the source).

    Finding (quick, ``--ntk-seed 0``): FAILS -- fitted slope -1.23 (95% CI [-1.28, -1.19]); the rival 0
    is ruled out (the kernel change falls from 2-4% at alpha = 1 to 0.04% at alpha = 32, while the
    uncentred model's stays at 1-2.5%). The local slopes between neighbouring alphas run from
    -1.4..-1.65 (alpha 1 -> 2) to -1.02..-1.09 (16 -> 32): the ``1/alpha`` law is the asymptote, but
    over alpha <= 4 a term falling like ``1/alpha^2`` (second order in the weight change) is as large
    as the first-order one. With ``--ntk-seed 1`` the verdict is INCONCLUSIVE instead (slope -1.10,
    CI [-1.17, -1.03]): one initialisation's kernel change falls *slower* than ``1/alpha`` at
    alpha <= 4 (local slope -0.61) while the others fall faster; at alpha 16 -> 32 every local slope
    is -0.96..-1.05 at both seeds. The verdict depends on the seed; the pre-asymptotic departure
    from ``1/alpha`` at alpha <= 4 does not.
    """
    x, y = _kernel_grid(claim, lazy_training)
    claim.slope(x, y, expected=-1.0, tol=0.1, rivals={"not lazy: the kernel keeps moving": 0.0}, x_name="alpha",
                y_name="relative NTK change", name="relative NTK change vs alpha (per-seed normalised)")


@pytest.mark.claim(
    "chizat2019.lazy_weights_to_linearized",
    source=THEOREM,
    statement=(
        "The weights of the centred alpha-scaled model and of its linearization, trained from the "
        "same w0, differ by O(1/alpha^2) at a fixed horizon: ||w_T - w_bar_T|| / ||w0|| falls like "
        "alpha^-2 (log-log slope -2 +- 0.2; rival: slope -1, the paths differ as much as the weights "
        "move). " + SETUP
    ),
    expect="holds",
)
def test_weight_gap_falls_like_one_over_alpha_squared(claim, lazy_training):
    """The second bound of the theorem, ``||w_alpha(t) - w_bar_alpha(t)|| = O(1/alpha^2)``.

    ``w_T - w_bar_T = (v_T - v_bar_T) / alpha`` and ``v_bar`` does not depend on alpha, so this
    measures how fast ``v_T`` approaches the linearized path, ``O(1/alpha)``: not built in.

    Rival: exponent -1 -- the network's and the linearization's weight paths differ by as much as
    the weights move, ``O(1/alpha)`` (no cancellation at first order).
    """
    runs = lazy_training
    _table(claim, runs, "centred", "weight_gap", "||w_T - w_bar_T|| / ||w0|| (centred)")
    x, y = _grid(runs, per_seed_normalised(runs["centred"]["weight_gap"]))
    claim.slope(x, y, expected=-2.0, tol=0.2,
                rivals={"the weight change's rate 1/alpha (no cancellation)": -1.0},
                name="weight gap to the linearization vs alpha (per-seed normalised)")


@pytest.mark.claim(
    "chizat2019.lazy_uncentred_control",
    source=("arXiv:1812.07956, Sec. 2: the lazy-training bounds assume h(w0) = 0 (the paper centres or "
            "zero-initialises the output; otherwise the scaled initial output alpha h(w0) grows with alpha)"),
    statement=(
        "Negative control: WITHOUT centring (alpha f(w), loss / alpha^2, f(w0) != 0) the distance "
        "between the trained predictor and the trained linearized predictor does NOT fall like 1/alpha: "
        "the 1/alpha law (log-log slope -1 +- 0.1, as for the centred model) is expected to fail, because "
        "the initial residual alpha f(w0) - y grows like alpha and the weights must move O(1) to cancel "
        "it. " + SETUP
    ),
    expect="fails",
)
def test_uncentred_model_is_not_lazy(claim, lazy_training):
    runs = lazy_training
    u = runs["uncentred"]
    _table(claim, runs, "uncentred", "output_distance", "sup_x |g - g_lin| at T (uncentred)")
    _table(claim, runs, "uncentred", "weight_change", "||w_T - w0|| / ||w0|| (uncentred)")
    _table(claim, runs, "uncentred", "test_rmse", "held-out RMSE at T (uncentred)")
    _table(claim, runs, "centred", "test_rmse", "held-out RMSE at T (centred, for comparison)")
    x, y = _grid(runs, per_seed_normalised(u["output_distance"]))
    claim.slope(x, y, expected=-1.0, tol=0.1, name="sup|g - g_lin| vs alpha, uncentred (per-seed normalised)")
