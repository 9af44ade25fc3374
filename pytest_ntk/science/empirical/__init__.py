r"""Empirical (finite-width) kernels: the NTK and NNGP of one draw of weights, and their seed averages.

The empirical NTK of a network :math:`f(\cdot;\theta)` with outputs :math:`f_a` is

.. math::  \Theta_{ab}(x, x') = \sum_p \frac{\partial f_a(x)}{\partial\theta_p}\,
                                      \frac{\partial f_b(x')}{\partial\theta_p}
           = [J(x) J(x')^\top]_{ab},

the Gram matrix of the parameter gradients. Two ways to compute it live here.

**Structured path for** :class:`~pytest_ntk.science.nets.FullyConnected` (:func:`fc_empirical_ntk`, in :mod:`.fc`).
With :math:`h^0 = x`, forward multipliers :math:`(\alpha_l, \beta_l)` of layer ``l`` (``model.scales``:
:math:`\alpha_l = \sigma_w/\sqrt{n_{l-1}},\ \beta_l = \sigma_b` in the NTK parameterization, both 1 in the
standard one), and

.. math::  z^l = \alpha_l\, h^{l-1} W^l + \beta_l\, b^l,\qquad h^l = \phi(z^l)\ (l \le L),
           \qquad f = z^{L+1},

the gradient of output ``a`` with respect to a layer's parameters factorises through the
back-propagated signal :math:`\delta^l_a(x) = \partial f_a(x)/\partial z^l \in \mathbb{R}^{n_l}`:

.. math::  \frac{\partial f_a}{\partial W^l_{ij}} = \alpha_l\, h^{l-1}_i\, \delta^l_{a,j},\qquad
           \frac{\partial f_a}{\partial b^l_j} = \beta_l\, \delta^l_{a,j}.

Summing the products over ``i, j`` turns a sum over :math:`n_{l-1} n_l` weights into a product of
two inner products, one per factor:

.. math::  \Theta_{ab}(x, x') = \sum_{l=1}^{L+1}
           \big(\alpha_l^2\,\langle h^{l-1}(x), h^{l-1}(x')\rangle + \beta_l^2\big)\,
           \langle \delta^l_a(x), \delta^l_b(x')\rangle .

The signals follow in closed form, layer by layer, from the readout down:
:math:`\delta^{L+1}_a = e_a` (so :math:`\langle\delta^{L+1}_a, \delta^{L+1}_b\rangle = [a = b]`),
:math:`\delta^L_a = \alpha_{L+1} W^{L+1}_{:,a} \odot \phi'(z^L)` and
:math:`\delta^{l}_a = \alpha_{l+1}\,(W^{l+1}\delta^{l+1}_a) \odot \phi'(z^l)`. For a batch, every
inner product above is one matrix product of an ``(n, width)`` feature matrix with another: the
cost is one forward pass, one backward pass and ``2 L + 1`` Gram matrices, and the ``(n, #params)``
Jacobian is never formed (for width 1024 and depth 3 that is 2M parameters per row).

**Generic path** (:func:`empirical_ntk`, in :mod:`.generic`) for any JAX model ``apply_fn(params, x)``: Jacobian
contraction (per-example Jacobians by ``vmap(jacrev)``, contracted leaf by leaf) or NTK-vector
products (the per-example gradients of the ``x2`` rows pushed through ``jvp`` on the ``x1`` rows,
so ``x1``'s Jacobian is never held), in blocks so that memory stays bounded.

**Structured path for any JAX model** (:func:`structured_ntk`, in :mod:`.structured`; also
``empirical_ntk(..., method="structured")``): the same per-layer factorisation, found in the model's
traced program instead of a network class -- Gram products for each parameter used once as an operand
of a matrix product, per-example kernel gradients from patches for convolutions, biases folded into
their product, the exact Jacobian for whatever is not recognised. :func:`structured_plan` says which
leaf went which way.

**Output axes.** With ``K = out_dim > 1`` outputs, ``outputs="mean"`` (the default) returns
:math:`\frac1K\sum_a \Theta_{aa}(x, x')`, shape ``(n1, n2)``: the average of the per-output
diagonal blocks. At infinite width :math:`\Theta_{ab} = \delta_{ab}\,\Theta^\infty`, so this is the
quantity that compares with the scalar analytic kernel (:meth:`FullyConnected.ntk`), for any ``K``.
``outputs="full"`` returns all :math:`\Theta_{ab}(x, x')`, shape ``(n1, n2, K, K)``. For ``K = 1``
``"mean"`` is simply :math:`\Theta(x, x')`.

**Precision.** Computation runs in the parameters' dtype (float32 for :meth:`FullyConnected.init`'s
default) or in ``dtype=`` (``float64`` runs inside :func:`pytest_ntk.science.numerics.x64`, without touching
the global JAX configuration). Results always come back as float64 numpy arrays; a non-finite
result raises :class:`~pytest_ntk.science.errors.NumericalError`.

**Seed averages** (:func:`monte_carlo_kernels`, in :mod:`.montecarlo`): the mean and per-entry spread of the empirical
NNGP and NTK over ``n_samples`` independent initialisations, vmapped over seeds in chunks.
"""

from __future__ import annotations

from __future__ import annotations

from ._common import FC_BATCH_SIZE, GENERIC_BATCH_SIZE, MEMORY_BUDGET, METHODS, MIN_JACOBIAN_ROWS, OUTPUTS
from .fc import fc_empirical_nngp, fc_empirical_ntk, fc_ntk_flops
from .generic import empirical_ntk
from .montecarlo import MonteCarloKernels, monte_carlo_kernels
from .structured import STRUCTURED_BATCH_SIZE, LeafPlan, StructuredPlan, structured_ntk, structured_plan

__all__ = [
    "FC_BATCH_SIZE",
    "GENERIC_BATCH_SIZE",
    "MEMORY_BUDGET",
    "METHODS",
    "MIN_JACOBIAN_ROWS",
    "OUTPUTS",
    "STRUCTURED_BATCH_SIZE",
    "LeafPlan",
    "MonteCarloKernels",
    "StructuredPlan",
    "empirical_ntk",
    "fc_empirical_nngp",
    "fc_empirical_ntk",
    "fc_ntk_flops",
    "monte_carlo_kernels",
    "structured_ntk",
    "structured_plan",
]
