"""Claims of Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington (2019), *Wide Neural
Networks of Any Depth Evolve as Linear Models Under Gradient Descent*, arXiv:1902.06720.
Settings per profile: ``conftest.py``.

Theorem 2.1: for a learning rate below the critical rate, with n the width,
``sup_t ||f_t(x) - f^lin_t(x)||_2``, ``sup_t ||theta_t - theta_0||_2 / sqrt(n)`` and
``sup_t ||Theta_hat_t - Theta_hat_0||_F`` are all O(n^{-1/2}). Each of the three is tested as an
upper bound on its width exponent: the fitted log-log slope over (width, seed) points must have
its 95% CI below -0.4 (an O(n^{-1/2}) bound allows any exponent <= -1/2; -0.4 leaves 0.1 for the
finite-width curvature of a fit over a 8x range of widths). The fitted exponent is reported; an
exponent steeper than -1/2 is allowed by the bound (the theorem is not claimed to be tight).

Relative weight change: ``||theta_t - theta_0|| / ||theta_0||`` over all parameters. With two
hidden layers most parameters sit in the n x n middle matrix, ``||theta_0|| ~ n``, so the
theorem's ``||theta_t - theta_0|| = O(1)`` makes the relative change O(1/n), inside the bound.
"""

from __future__ import annotations

import numpy as np
import pytest

LAZY_STATEMENT = (
    "Quick profile: 2 hidden ReLU layers (NTK parameterization), widths 128..1024, 4 networks each, "
    "16 points on S^7 with NNGP-drawn targets, full-batch GD at 0.5 of the critical rate for 128 steps "
    "(the sup is over 16 checkpoints)."
)


def _sup_slope(claim, lazy_runs, key: str, what: str):
    r = lazy_runs
    widths = r["widths"]
    sup = r[key].max(axis=2)  # (W, S): sup over checkpoints
    x = np.repeat(widths, sup.shape[1])
    m = claim.slope(x, sup.ravel(), upper=-0.4, name=f"{what} vs width (log-log slope)")
    claim.table(f"{what}: sup over training",
                ["width", "mean over networks", "max over networks", "mean * sqrt(width)", "mean * width"],
                [[int(w), float(v.mean()), float(v.max()), float(v.mean() * np.sqrt(w)), float(v.mean() * w)]
                 for w, v in zip(widths, sup)])
    claim.attach(key, {"widths": widths.tolist(), "steps": r["steps"].tolist(), "values": r[key].tolist(),
                       "fitted_exponent": m.measured, "lr": r["lr"], "critical_lr": r["critical_lr"]})
    return m


@pytest.mark.claim(
    "lee2019.outputs_near_linearized",
    source="arXiv:1902.06720, Theorem 2.1 (sup_t ||f_t - f^lin_t||_2 = O(n^-1/2))",
    statement=(
        "Below the critical learning rate the network's training outputs stay within O(width^-1/2) of "
        "its linearization (same init, same steps) for the whole of training: the sup over training of "
        "||f_t - f^lin_t||_2 / sqrt(n_points) has a log-log width slope <= -0.4. " + LAZY_STATEMENT
    ),
    expect="holds",
)
def test_outputs_near_linearized(claim, lazy_runs):
    """sup_t RMS_x |f_t(x) - f^lin_t(x)| per (width, seed); slope upper bound -0.4 (module docstring)."""
    _sup_slope(claim, lazy_runs, "rms_gap", "sup_t ||f_t - f_lin_t|| / sqrt(n)")
    r = lazy_runs
    claim.table("training reached (mean over networks)", ["width", "final loss network", "final loss linearized"],
                [[int(w), float(a.mean()), float(b.mean())]
                 for w, a, b in zip(r["widths"], r["final_loss"], r["final_loss_linearized"])])


@pytest.mark.claim(
    "lee2019.weights_change",
    source="arXiv:1902.06720, Theorem 2.1 (sup_t ||theta_t - theta_0||_2 / sqrt(n) = O(n^-1/2))",
    statement=(
        "Below the critical learning rate the weights barely move: sup over training of "
        "||theta_t - theta_0|| / ||theta_0|| has a log-log width slope <= -0.4. " + LAZY_STATEMENT
    ),
    expect="holds",
)
def test_weights_change(claim, lazy_runs):
    """sup_t ||theta_t - theta_0|| / ||theta_0|| per (width, seed); slope upper bound -0.4."""
    _sup_slope(claim, lazy_runs, "weight_change", "sup_t ||theta_t - theta_0|| / ||theta_0||")


@pytest.mark.claim(
    "lee2019.ntk_change",
    source="arXiv:1902.06720, Theorem 2.1 (sup_t ||Theta_hat_t - Theta_hat_0||_F = O(n^-1/2))",
    statement=(
        "Below the critical learning rate the empirical NTK stays near its initial value: sup over "
        "training of ||Theta_t - Theta_0||_F / ||Theta_0||_F has a log-log width slope <= -0.4. "
        + LAZY_STATEMENT
    ),
    expect="holds",
)
def test_ntk_change(claim, lazy_runs):
    """sup_t ||Theta_hat_t - Theta_hat_0||_F / ||Theta_hat_0||_F per (width, seed); slope upper bound -0.4."""
    _sup_slope(claim, lazy_runs, "ntk_change", "sup_t ||Theta_t - Theta_0|| / ||Theta_0||")


@pytest.mark.claim(
    "lee2019.linearized_diverges_above_critical_rate",
    source="arXiv:1902.06720, Section 2 (gradient descent on the linearized network: the residual along an NTK "
           "eigenvector is multiplied by 1 - lr lambda / n per step) and the learning-rate condition of Theorem 2.1",
    statement=(
        "Negative control: above the critical rate the linearized model's loss diverges. At "
        "lr = 1.5 x 2n / lambda_max(Theta_hat_0) the residual along the top NTK eigenvector is "
        "multiplied by 1 - lr lambda_max / n = -2 per step, so the loss grows without bound and, once "
        "that direction dominates, by (1 - lr lambda_max / n)^2 = 4 per step. Quick profile: width "
        "512, 2 linearized networks, 40 full-batch steps on the data of the lazy claims (float64, "
        "so the growth stays finite and is recorded, not a NaN)."
    ),
    expect="holds",
)
def test_linearized_diverges(claim, divergence_runs):
    """Two measurements: the loss after the last step relative to the initial loss (at least 10^6: it
    diverges; the top direction alone would give 4^40 times its share of the initial loss), and the
    per-step growth factor over the last 10 steps against ``(1 - lr lambda_max / n)^2`` with
    lambda_max from a dense eigensolver of the empirical NTK (independent of the power iteration
    that set the rate). rtol 0.01 (chosen before running): after 30 steps every other direction
    has shrunk relative to the top one by at least (|1 - lr lambda_2/n| / 2)^60; the 1% allows for
    a second eigenvalue within 0.5% of lambda_max."""
    r = divergence_runs
    n = r["n"]
    losses = r["losses"]  # (S, steps): L(theta_s) before step s
    growth_total = losses[:, -1] / losses[:, 0]
    claim.at_least(np.log10(growth_total), 6.0, name="log10(loss at the last step / initial loss)")
    per_step = np.exp(np.mean(np.log(losses[:, -10:] / losses[:, -11:-1]), axis=1))
    predicted = (1.0 - r["lr"] * r["lambda_max"] / n) ** 2
    claim.close(per_step, predicted, rtol=0.01, name="per-step loss growth vs (1 - lr lambda_max / n)^2")
    rows = []
    for i, seed in enumerate(r["seeds"]):
        at = int(r["network_diverged_at"][i])
        net = r["network_final_loss"][i]
        rows.append([int(seed), float(r["lr"][i] * r["lambda_max"][i] / n), float(losses[i, 0]),
                     float(losses[i, -1]), float(per_step[i]), float(predicted[i]),
                     "diverged (NaN) at step %d" % at if at >= 0 else float(net),
                     "-" if at >= 0 else float(r["network_peak_loss_ratio"][i])])
    claim.table("linearized model above the critical rate",
                ["seed", "lr lambda_max / n", "initial loss", "loss at last step", "per-step growth (last 10)",
                 "predicted growth", "network trained at the same rate: final loss",
                 "network: peak loss / initial loss"], rows)
