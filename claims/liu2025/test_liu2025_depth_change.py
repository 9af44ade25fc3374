"""Liu et al. (2025), arXiv:2501.10929, abstract claim 2: adding a layer changes a trained network's
error differently from how it changes the NTK regression error.

Per trial (the same trials for both, paired): ``Delta_NN = RMSE(NN2) - RMSE(NN1)`` of the SGD-trained
networks (published protocol, scaled per profile) and ``Delta_K = RMSE(K2) - RMSE(K1)`` of kernel
regression with a kernel family (NTKA, NTKJ, NTKB) as published or with the angle corrected.

The claim tested is the NTK approach's prediction, "the NTK predicts the depth change":
``mean(Delta_NN - Delta_K) = 0``. The paper says the changes do not match, so ``expect="fails"``.

Tolerance (fixed before any run): the changes match when the mean paired difference lies within
``0.5 * mean|Delta_K| + 0.02 * mean RMSE(K1)`` -- the network's change equals the kernel's to within
half its size (right sign, rough size), and changes below 2% of the error level count as "no change"
for both (so a kernel whose depth change is tiny is not failed by noise). Judged by the 95% CI of
the mean over trials (``claim.samples``): HOLDS when the whole CI is inside, FAILS when wholly outside.
"""

from __future__ import annotations

import numpy as np
import pytest

SOURCE = ("arXiv:2501.10929, abstract claim 2 and Sec. 4 (table: NN1 vs NN2 against NTKA1/2, NTKJ1/2, "
          "NTKB1/2): adding a layer and the corresponding change of NTK 'do not yield matching changes in "
          "the predictor error'")


@pytest.mark.claim(
    "liu2025.depth_change",
    source=SOURCE,
    statement=(
        "The NTK predicts the depth change: over the network trials, the mean of "
        "(RMSE(NN2) - RMSE(NN1)) - (RMSE(K2) - RMSE(K1)) for the kernel family K (as published or with the "
        "corrected angle) is zero within 0.5*mean|RMSE(K2) - RMSE(K1)| + 0.02*mean RMSE(K1) (95% CI of the "
        "mean). ${profile} profile: networks of width ${nn_width} (paper 10,000) trained ${nn_epochs} SGD "
        "epochs for NN1, NN2 (paper 3000, 6000) on ${nn_trials} trials (paper 50), batch 8, Keras lr 0.002, "
        "30% validation split as published; kernel rows on the same trials."
    ),
    expect="fails",
)
@pytest.mark.parametrize("form", ["published", "corrected"])
@pytest.mark.parametrize("kernel", ["NTKA", "NTKJ", "NTKB"])
def test_depth_change(claim, liu2025, settings, kernel, form):
    T = settings["nn_trials"]
    with claim.stage("kernel rows"):
        kr = liu2025.kernel_rmse()[form]
    with claim.stage("networks (SGD, published protocol)"):
        nn = liu2025.nn_rmse("published")
    k1, k2 = kr[f"{kernel}1"][:T], kr[f"{kernel}2"][:T]
    d_nn = nn[2] - nn[1]
    d_k = k2 - k1
    claim.table(f"depth change per trial ({kernel}, {form})",
                ["trial", "RMSE NN1", "RMSE NN2", "Delta NN", f"RMSE {kernel}1", f"RMSE {kernel}2", "Delta K"],
                [[i, nn[1][i], nn[2][i], d_nn[i], k1[i], k2[i], d_k[i]] for i in range(T)])
    claim.attach("means", {"delta_nn": float(d_nn.mean()), "delta_k": float(d_k.mean()),
                           "rmse_nn1": float(nn[1].mean()), "rmse_k1": float(k1.mean())})
    claim.samples(d_nn, predicted=d_k, rtol=0.5, atol=0.02 * float(np.mean(k1)),
                  name=f"Delta_NN vs Delta_{kernel} ({form})")
