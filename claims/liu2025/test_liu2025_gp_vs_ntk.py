"""Liu et al. (2025), arXiv:2501.10929, abstract claim 3: NNGP-kernel regression errs almost
exactly like NTK regression.

For depth 1 and 2 and each NTK family (NTKA, NTKJ, NTKB), as published: the per-trial test RMSE of
regression with GP``d`` against that with NTK``d``, paired over the 50 trials of the kernel rows.

Tolerance (fixed before any run): the paper calls the errors "very close"; we read that as within
5% (``rtol=0.05`` of the NTK's mean RMSE), judged by the 95% CI of the mean paired difference. The
paper says they are very close, so ``expect="holds"``. The same comparison with the corrected
angle is attached as data (the corrected kernels are not the paper's claim).

Rivals: "the GP is just another kernel" -- "very close" is informative only if a kernel not derived
from the audited networks is not as close. Each rival predicts RMSE(GPd) equal to its own kernel's RMSE, paired per
trial and judged with the same 5% band around the rival's RMSE:

- the Laplacian kernel (the paper's own non-network kernel, ``2 exp(-|x - y| / 6)``): a far rival;
- a Gaussian (RBF) kernel ``exp(-|x - x'|^2 / (2 l^2))``, ``l`` the median pairwise distance of the
  trial's training inputs (the textbook median heuristic, nothing fitted to the targets): a smooth
  kernel not derived from the audited networks, the near rival. (On the unit sphere it is a
  dot-product kernel, as every kernel here is: the NNGP of some infinitely wide network, e.g. one
  hidden layer of cosine units with random biases; "generic" means only that nothing ties it to the
  networks audited.) It was added after an outside review asked whether "GP close to NTK" is more
  than "any smooth kernel is close" on these targets (drawn from NTKB1's Gaussian process); its form
  was fixed before the 50-trial run, but after a look at four trials had shown it within a few per
  cent of GP1 (a choice made knowing it would be near).

The case HOLDS only when the GP's error is within 5% of the NTK's *and* outside the 5% band of every
rival; a rival within its band makes it INCONCLUSIVE: the 5% band then cannot tell the NTK's kernel
from a generic one. Where the rival's RMSE lies within 5% of the NTK's, as the RBF's does here, no
number of trials can turn that into HOLDS: the reading of "very close" is then too loose to single out
the NTK, which is the finding.
"""

from __future__ import annotations

import numpy as np
import pytest

SOURCE = ("arXiv:2501.10929, abstract claim 3 and Sec. 4 (table: GP1/GP2 rows against the NTK rows): "
          "kernel regression with a Gaussian-process kernel gives prediction errors 'very close' to "
          "kernel regression with NTKs")


@pytest.mark.claim(
    "liu2025.gp_vs_ntk",
    source=SOURCE,
    statement=(
        "NNGP-kernel regression is very close to NTK regression: over the 50 trials of the paper's "
        "experiment (full size in every profile), the mean paired difference RMSE(GPd) - RMSE(NTKd) of the "
        "published kernels lies within 5% of the NTK's mean RMSE (95% CI), and RMSE(GPd) is not as close to "
        "the Laplacian kernel's nor to a median-heuristic RBF kernel's (rivals: kernels not derived from the "
        "audited networks)."
    ),
    expect="holds",
)
@pytest.mark.parametrize("kernel", ["NTKA", "NTKJ", "NTKB"])
@pytest.mark.parametrize("depth", [1, 2])
def test_gp_vs_ntk(claim, liu2025, depth, kernel):
    with claim.stage("kernel rows"):
        kr = liu2025.kernel_rmse()
        rbf = liu2025.rbf_rmse()
    rows, data = [], {}
    for form in ("published", "corrected"):
        gp, ntk = kr[form][f"GP{depth}"], kr[form][f"{kernel}{depth}"]
        diff = gp - ntk
        rows.append([form, float(gp.mean()), float(ntk.mean()), float(diff.mean()),
                     float(diff.std(ddof=1) / np.sqrt(diff.size)), float(diff.mean() / ntk.mean())])
        data[form] = {"gp": gp.tolist(), "ntk": ntk.tolist()}
    claim.table(f"GP{depth} vs {kernel}{depth}: mean test RMSE over {kr['rms_y_test'].size} trials",
                ["form", f"GP{depth}", f"{kernel}{depth}", "mean difference", "SE of difference",
                 "relative difference"], rows)
    claim.table("the rivals' kernels: mean test RMSE", ["kernel", "mean RMSE", "GP - kernel (relative)"],
                [[name, float(r.mean()), float((kr["published"][f"GP{depth}"] - r).mean() / r.mean())]
                 for name, r in (("Laplacian (published)", kr["published"]["LAPLACE"]), ("RBF, median heuristic", rbf))])
    data["rbf"] = rbf.tolist()
    claim.attach("per-trial RMSE", data)
    claim.samples(kr["published"][f"GP{depth}"], predicted=kr["published"][f"{kernel}{depth}"], rtol=0.05,
                  rivals={"as the Laplacian kernel": kr["published"]["LAPLACE"], "as an RBF kernel": rbf},
                  name=f"RMSE GP{depth} vs {kernel}{depth} (published)")
