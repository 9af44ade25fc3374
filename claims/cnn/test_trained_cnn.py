"""A wide CNN trained by gradient descent follows the prediction of its convolutional NTK (CNTK).
Settings per profile: ``conftest.py``.

Sources. Arora, Du, Hu, Li, Salakhutdinov & Wang (2019), *On Exact Computation with an Infinitely Wide
Neural Net*, NeurIPS 2019, arXiv:1904.11955, abstract (verbatim from the stored copy): "An attraction of
such ideas is that a pure kernel-based method is used to capture the power of a fully-trained deep net
of infinite width." and "Theoretically, we also give the first non-asymptotic proof showing that a
fully-trained sufficiently wide net is indeed equivalent to the kernel regression predictor using NTK."
-- for convolutional nets that kernel is "the extension of NTK to convolutional neural nets, which we
call Convolutional NTK (CNTK)".

Not quoted (paraphrased, marked as such): the theorem behind that sentence. Every stored copy of the
paper (arXiv abstract page, deepai, groundai, docslib, the NeurIPS proceedings record) is held only from
its opening -- abstract and the first paragraphs of the introduction -- and a search for the theorem
statement itself (its width condition, initialization, training dynamics, loss) found no later passage.
As we recall the paper (not checked against a stored copy), its non-asymptotic theorem is proved for
fully connected ReLU nets of equal hidden widths trained by gradient flow on the squared loss from a
small-scaled initialization, with inputs on the unit sphere, and bounds the trained net's distance to
kernel regression with the NTK; whether the paper states a convolutional version is likewise not in the
stored text. The abstract's equivalence names the NTK, not the CNTK: for a CNN and its CNTK it is this
suite's extension, which is what is tested. What the stored NeurIPS 2019 reviews add (reviewers' words,
not the paper's; verbatim): the width condition is polynomial -- "In main theorems, the width m is
evaluated by using the notation of poly(…), i.e., m >= poly(…)" -- and a reviewer asked for the
equivalence to be checked on CNNs: "some readers will be interested in experimental justification on
such equivalence in CNNs".

What is tested here is the finite-time form of the same equivalence, with the network's own initial
outputs kept, as in Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington (2019), *Wide
Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent* (arXiv:1902.06720). Its
stored copy (SPIQA raw TeX of v4) also holds only the introduction, which counts channels as width --
"For neural networks, one such limit is that of infinite width, which refers either to the number of
hidden units in a fully-connected layer or to the number of channels in a convolutional layer." -- and
says of the linearization: "While the linearization is only exact in the infinite width limit, we
nevertheless find excellent agreement between the predictions of the original network and those of the
linearized version [...]" (verbatim; the stored copy breaks off in the rest of the sentence). Its
Theorem 2.1 (in ``claims/lee2019``, transcribed from the paper, not from a stored copy) is stated for
fully connected nets, gradient descent below a critical learning rate (or gradient flow) and the squared
loss; the prediction, for the squared loss and full-batch gradient descent:

    f_t(x_test) = f_0(x_test) + Theta_* Theta^-1 (I - (I - lr Theta / n)^steps) (y - f_0(x_train))

with ``Theta`` the CNTK (``ConvNet.ntk``) on the training images and ``Theta_*`` between test and
training images (:func:`pytest_ntk.science.predict.gradient_descent_mse`, loss ``1/(2n) ||f - y||^2``,
``t = lr * steps``). Kernel regression is its ``steps -> infinity`` limit; a finite horizon keeps the
comparison away from the ill-conditioned directions that a small-init infinite-time statement needs.

Conditions as tested: NTK parameterization, ReLU, 3x3 ``SAME`` convolutions, global average pooling
and a dense readout (``ConvNet``; the networks are ``conftest.PatchNet``, checked against
``ConvNet.apply`` to 1e-12), full-batch gradient descent in float64 at ``lr_fraction`` of the CNTK's
critical rate ``2n / lambda_max`` (one rate for every width), targets of a fixed one-channel
convolutional teacher (``conftest.teacher_targets``, standardised), the network's own ``f_0`` in the
prediction (no centring, no small initialization). Against the conditions above (Arora et al.'s as
recalled, Lee et al.'s as transcribed): the same -- ReLU, the squared loss, full batch, every hidden
layer of the same width; within Lee et al.'s -- discrete steps at 0.5 x ``2n / lambda_max``, which is
also below their ``eta_critical = 2n / (lambda_min + lambda_max)`` in this loss's normalization;
different -- a CNN and its CNTK, not a fully connected net and its NTK; 100 discrete steps (quick), not
gradient flow, and a finite horizon, not kernel regression's ``t -> infinity``; the standard-scale
initialization with ``f_0`` kept in the prediction, not a small-scaled one; images of mean square 1
per entry (norm ``sqrt(H W C)``), not unit-norm inputs; 128 ... 1024 channels, not a width polynomial
in the data size and the accuracy.

The quantity. Per network ``k`` at ``channels`` channels, on the test images:
``gap_k = rms(f_net - f_CNTK) / rms(f_CNTK - f_0)``: how far the trained network is from its kernel's
prediction, relative to how far training moved the test outputs according to that prediction. (The
prediction's own error against the targets, ``rms(f_CNTK - y)``, is shown in the tables; it is about a
quarter of the movement for this teacher, and it measures the kernel's generalization, not the
network's distance to the kernel.)
"""

from __future__ import annotations

import numpy as np
import pytest

#: The kernels other than the CNTK whose predictions the computation makes (``trained_networks``).
OTHER_KERNELS = {
    "nngp": "CNN-GP (NNGP) kernel: only the readout trains",
    "fc_ntk": "NTK of a fully connected net on the flattened images",
    "flatten_cntk": "CNTK of the same convolutions with a flatten readout (no pooling)",
}
#: Rivals of the widest-width claim (keys of the computation's predictions): the last two decided before
#: running; the CNN-GP added after an outside review (see the claim's docstring).
RIVALS = ("nngp", "fc_ntk", "flatten_cntk")


def _rms(a, axis=-1):
    return np.sqrt(np.mean(np.asarray(a) ** 2, axis=axis))


def gaps(run: dict) -> dict:
    """Per network: the gap to the CNTK prediction and every other kernel's distance from it, both over
    the CNTK prediction's movement; the movement; the prediction's RMSE; the training-point gap."""
    p = run["predictions"]
    cntk_test, f0_test = p["cntk"]["test"], run["f0_test"]
    move = _rms(cntk_test - f0_test)
    out = {
        "gap": _rms(run["f_test"] - cntk_test) / move,
        "move": move,
        "train_gap": _rms(run["f_train"] - p["cntk"]["train"]) / _rms(p["cntk"]["train"] - run["f0_train"]),
        "final_loss": run["final_loss"],
    }
    for name in OTHER_KERNELS:
        out[name] = _rms(p[name]["test"] - cntk_test) / move
    return out


@pytest.mark.claim(
    "cnn.trained_net_follows_cntk",
    source="arXiv:1904.11955, abstract ('a fully-trained sufficiently wide net is indeed equivalent to the kernel "
           "regression predictor using NTK'; the CNTK); finite-time form: arXiv:1902.06720",
    statement=(
        "The test outputs of the widest CNNs (${training.seeds} networks of ${training.channels} "
        "channels, the widest; ${training.depth} ReLU convolution(s), global average pooling) after "
        "${training.steps} full-batch gradient-descent steps at ${training.lr_fraction} of the CNTK's "
        "critical rate are the CNTK's gradient-descent prediction from each network's own initial "
        "outputs: rms(f_net - f_CNTK) / rms(f_CNTK - f_0) within ${training.atol} (95% CI over "
        "networks), and not the prediction of the CNN-GP kernel (only the readout trains), of a fully "
        "connected net's NTK on the flattened images nor of the CNTK with a flatten readout (no pooling). "
        "${training.n_train} training and "
        "${training.n_test} test images of ${images.height}x${images.width}x${images.channels} (${profile} profile)."
    ),
    expect="holds",
)
def test_trained_net_follows_cntk(claim, trained_networks, settings):
    """``gap_k`` of the widest networks, one per network, against 0 (claim.samples: CI of the mean).

    Tolerance ``atol`` = 0.15 (chosen before running). At initialization each entry of the empirical
    NTK of a one-convolution ReLU CNN is an average over channels of per-channel terms whose
    coefficient of variation is about 1.5, so it departs from the CNTK by about 1.5/sqrt(1024) =
    0.05 at 1024 channels; gradient descent to this horizon carries a kernel error into the outputs
    amplified by up to ~2 along the slowly trained directions, and the kernel's drift during
    training adds another O(channels^-1/2) term of the same size: 2 x 0.05 + 0.05 = 0.15.

    Rivals, each a prediction of the same ``gap`` (the network sits at the rival kernel's prediction,
    so its distance from the CNTK's is that of the two predictions, per network, from the same
    ``f_0``), judged with the same CI and tolerance:
    - "fully connected NTK on the flattened images" (``FullyConnected(depth).ntk``): the network's
      training ignores its convolutional structure;
    - "CNTK with a flatten readout" (``ConvNet(readout="flatten").ntk``): the dynamics of the same
      convolutions without pooling (the kernel keeps no cross-position covariance).
    In the design computation from the closed forms (initial outputs drawn from the CNN-GP, before
    any network was trained) both lie 0.5-0.76 of the movement from the CNTK prediction.

    - "CNN-GP kernel (only the readout trains)" (``ConvNet.nngp``): the dynamics of training the
      readout alone. Added after an outside review: the first version left it out because, with one
      hidden convolution, the NNGP and the CNTK are nearly proportional on these images and the
      design computation put its prediction only 0.03-0.06 of the movement from the CNTK's (0.12-0.18
      with the paper profile's two convolutions) -- inside the tolerance, so no verdict can reject
      it. Left out, a HOLDS would also hold for the wrong theory "a trained CNN follows its CNN-GP's
      prediction"; judged, it makes the claim INCONCLUSIVE at this tolerance and these widths, which
      is what the measurement can say: the networks sit nearer the CNTK's prediction than the CNN-GP's
      prediction lies from it (table), but the 0.15 band fixed before any run cannot decide between
      them.
    """
    r = trained_networks
    atol = settings["training"]["atol"]
    widest = max(r["channels"])
    g = gaps(r["runs"][widest])
    words = {"nngp": "CNN-GP kernel (only the readout trains)", "fc_ntk": "fully connected NTK on the flattened images",
             "flatten_cntk": "CNTK with a flatten readout"}
    y_test = r["data"]["y_test"]
    rmse = _rms(r["runs"][widest]["predictions"]["cntk"]["test"] - y_test)
    claim.table(f"trained networks of {widest} channels vs kernel predictions (test images; distances over the movement)",
                ["network", "gap to CNTK prediction", "movement rms(f_CNTK - f_0)", "CNTK prediction RMSE vs y",
                 "gap / RMSE", "training-point gap", "final training loss"]
                + [f"{OTHER_KERNELS[k]} (distance from CNTK prediction)" for k in OTHER_KERNELS],
                [[k, float(g["gap"][k]), float(g["move"][k]), float(rmse[k]), float(g["gap"][k] * g["move"][k] / rmse[k]),
                  float(g["train_gap"][k]), float(g["final_loss"][k])] + [float(g[name][k]) for name in OTHER_KERNELS]
                 for k in range(g["gap"].size)])
    claim.attach("protocol", {"lr": r["lr"], "t": r["t"], "steps": settings["training"]["steps"]})
    claim.samples(g["gap"], predicted=0.0, atol=atol, rivals={words[k]: g[k] for k in RIVALS},
                  name=f"rms(f_net - f_CNTK) / rms(f_CNTK - f_0) on test images, {widest} channels")


@pytest.mark.claim(
    "cnn.trained_net_gap_rate",
    source="arXiv:1904.11955, abstract (the equivalence for a 'sufficiently wide' net); the channels^-1/2 rate: "
           "this suite (the initial empirical NTK's fluctuation, as in arXiv:1902.06720, Theorem 2.1, for fully "
           "connected nets)",
    statement=(
        "The trained CNN's distance from the CNTK prediction, rms(f_net - f_CNTK) / rms(f_CNTK - f_0) on "
        "the test images, shrinks like channels^(-1/2) (log-log slope -0.5 +- 0.2), not like channels^0 "
        "(no convergence) nor channels^-1. Channels ${training.channels}, ${training.seeds} networks each, "
        "${training.steps} steps (${profile} profile)."
    ),
    expect="holds",
)
def test_trained_net_gap_rate(claim, trained_networks):
    """Fit log gap against log channels over every (channels, network).

    Prediction: slope -1/2: the trained network differs from the CNTK prediction through the initial
    empirical NTK's departure from the CNTK (O(channels^-1/2), random) and the kernel's drift during
    training (O(channels^-1/2) in the NTK parameterization); the network's own ``f_0`` is in the
    prediction, so the initial outputs' O(1) randomness cancels. Tolerance 0.2 (chosen before
    running): the O(1/channels) corrections bend a fit over 128..1024 channels by up to ~0.1, and
    24 points with a per-network spread of ~30% give a CI of about +-0.15. Rivals (same band):
    exponent 0 (the trained network does not approach the kernel prediction) and exponent -1.
    """
    r = trained_networks
    xs, ys, rows = [], [], []
    for c in r["channels"]:
        g = gaps(r["runs"][c])
        xs += [c] * g["gap"].size
        ys += g["gap"].tolist()
        rows.append([int(c), int(g["gap"].size), float(g["gap"].mean()), float(g["gap"].std(ddof=1)),
                     float(g["gap"].mean() * np.sqrt(c)), float(g["train_gap"].mean()), float(g["move"].mean())])
    claim.table("distance of the trained networks from the CNTK prediction",
                ["channels", "networks", "mean gap (test)", "SD", "mean gap * sqrt(channels)",
                 "mean gap (training points)", "mean movement"], rows)
    claim.slope(xs, ys, expected=-0.5, tol=0.2, rivals={"no convergence": 0.0, "1/channels": -1.0},
                x_name="channels", y_name="rms(f_net - f_CNTK) / rms(f_CNTK - f_0)",
                name="trained network's distance from the CNTK prediction vs channels")
