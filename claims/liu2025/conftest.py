"""The audit of Liu, Tai, Crandall & Huang (2025), arXiv:2501.10929: settings and shared computations.

The paper's one experiment (described in this folder's README.md; public code ``howardhi/NTK-Issues``,
``15d_ntkb1_par.py``) runs 50 trials. Per trial: 1000 inputs ``x`` in d = 15 (coordinates
uniform(-5, 7), rows scaled to unit norm), targets ``y ~ N(0, K)`` with ``K`` the published NTKB1
Gram, a random 670/330 split (:func:`pytest_ntk.science.data.liu2025_sphere`). Eleven predictors are
scored by test RMSE: two trained networks (NN1, NN2) and kernel regression ``K_* K^{-1} y`` with
nine kernels (:mod:`pytest_ntk.science.kernels.liu2025`).

Everything the claims share is computed here, once per session, through ``ntk_cache`` (memory,
then disk): a warm run reads every trained network and every RMSE table back bit for bit. Every
cache key holds the settings, the seeds, the data spec and a digest of this file, so editing this
file recomputes everything.

The published protocol, transcribed into the engine's conventions
---------------------------------------------------------------
- Networks (NTK parameterization, every weight and bias N(0, 1), ReLU, scalar output):
  NN1 = ``FullyConnected(1, width)``, NN2 = ``FullyConnected(2, width)``; the published Keras
  models (``Rescaling(1/sqrt(fan_in))`` before each ``Dense``, unscaled biases) are exactly these.
- Loss and step: Keras' ``"mse"`` is ``mean((f - y)^2)`` without the factor 1/2 of the engine's
  ``1/(2B) sum (f - y)^2`` (:mod:`pytest_ntk.science.train`), so Keras' SGD step with learning rate 0.002 is
  the engine's step with ``lr = 0.004`` (``sgd_lr``).
- Validation split: Keras' ``validation_split=0.3`` keeps the first
  ``floor(670 * (1 - 0.3)) = 468`` training points for fitting (in floating point
  ``670 * 0.7 = 468.99999999999994``) and only monitors the last 202. The kernels use all 670.
- Minibatches: Keras shuffles the 468 points every epoch and takes ``ceil(468/8) = 59`` batches, the
  last of 4 points. The engine takes ``468 // 8 = 58`` full batches and leaves out 4 points (a
  different 4 every epoch). This is the only deviation from the published loop: 58 instead of 59
  steps per epoch, every step with the same normalisation.
- Kernel regression: the published code uses ``K_* inv(K) y`` (explicit inverse, no ridge). The
  engine path here is a Cholesky solve of the same system (scipy ``cho_factor``/``cho_solve``; LAPACK's
  ``dpocon`` gives each solve's 1-norm condition estimate). ``test_liu2025_table.py`` checks it
  against an explicit-inverse transcription of the published formulas. The RMSE is
  ``sqrt(mean((y_test - prediction)^2))`` and the table's SE is ``np.std(rmse) / sqrt(trials)``
  (``ddof = 0``), both as published.

SETTINGS (per profile; ``ntk_profile.pick(SETTINGS, suite="liu2025")``)
------------------------------------------------------------------------
``trials, n, d, n_train``  the kernel rows' trials and data: always the paper's 50 x (1000, 15, 670)
``reference_trials``       trials 0..R-1 on which the independent reference of the table runs
``nn_trials``              trials on which NN1 and NN2 are trained (the first ``nn_trials``)
``nn_width``               width of every hidden layer of NN1/NN2 (published: 10,000)
``nn_epochs``              (NN1, NN2) SGD epochs (published: 3000, 6000)
``sgd_batch, sgd_lr``      8 and 0.004 (= Keras' 0.002 on its un-halved MSE)
``validation_split``       0.3: the networks fit the first 468 of the 670 training points
``nn_dtype``               float32 (as Keras)
``sgd_chunk``              trials trained together by the fused SGD program and cached as one entry
                           (fixed chunks 0..c-1, c..2c-1, ...: an interrupted run keeps finished chunks)
``trend_widths, trend_trials`` wider NN1/NN2 trained by the published protocol on the first
                           ``trend_trials`` trials (``liu2025.sgd_equivalence``'s width trend)
``gd_trials``              trials of the protocol variants (the first ``gd_trials``; <= nn_trials)
``gd_steps, gd_lr_fraction`` full-batch GD: steps and ``lr = fraction * 2n / lambda_max`` of the
                           network's analytic NTK on the 670 points (the same rate for every width);
                           ``gd_steps = PUBLISHED_TIME``: ``ceil(t / lr)`` steps, ``t`` the published
                           SGD's flow time of that depth (696 for NN1, 1392 for NN2)
``ensemble``               members of the centred ensembles (protocol)
``eq_n_train``             training points of the equivalence runs (the first of trial 0's 670)
``eq_widths, eq_seeds, eq_steps, eq_lr_fraction``  widths, initialisations, GD steps and rate there
                           (``eq_steps = PUBLISHED_TIME``: to NN1's published flow time, 696)
``limit_n``                inputs (the first of trial 0's 1000) for the empirical kernels
``limit_widths, limit_samples``  widths and initialisations of the seed-averaged empirical kernels

``quick`` keeps the kernel rows at the paper's full size and scales the networks down: width 256
instead of 10,000, 150/300 SGD epochs instead of 3000/6000 (same batch and step), 6 trials
instead of 50. ``long`` is the published protocol in everything but width: 3000/6000 epochs on all
50 trials at width 256, widths 512 and 1024 on 3 trials for the trend, the GD variants (10 trials)
and the equivalence runs (all 670 points, widths 256-4096) trained to the published SGD's flow
time; about an hour and a half on 2 CPU cores. ``paper`` is the published protocol unchanged
(sized for a GPU).
"""

from __future__ import annotations

import math
from functools import cached_property, lru_cache

import numpy as np
import pytest

from pytest_ntk import Suite
from pytest_ntk.science.models import Centred, rms
from pytest_ntk.science.numerics import single_threaded_blas

#: a ``gd_steps``/``eq_steps`` value: as many steps as reach the published SGD's flow time
#: ``t = lr * steps`` of that depth (NN1: 0.004 * 3000 * 58 = 696; NN2: 1392), ``ceil(t / lr)``
PUBLISHED_TIME = "as many as reach the published SGD's flow time t = 696 (NN1), 1392 (NN2)"

SETTINGS = {
    "quick": {
        "trials": 50, "n": 1000, "d": 15, "n_train": 670,
        "reference_trials": 10,
        "nn_trials": 6, "nn_width": 256, "nn_epochs": (150, 300),
        "sgd_batch": 8, "sgd_lr": 0.004, "validation_split": 0.3, "nn_dtype": "float32", "sgd_chunk": 10,
        "trend_widths": (512, 1024), "trend_trials": 2,
        "gd_trials": 6, "gd_steps": 300, "gd_lr_fraction": 0.5, "ensemble": 4,
        "eq_n_train": 200, "eq_widths": (128, 512, 2048), "eq_seeds": 4, "eq_steps": 300,
        "eq_lr_fraction": 0.5,
        "limit_n": 32, "limit_widths": (128, 512, 2048, 8192), "limit_samples": 48,
    },
    "paper": {
        "trials": 50, "n": 1000, "d": 15, "n_train": 670,
        "reference_trials": 50,
        "nn_trials": 50, "nn_width": 10_000, "nn_epochs": (3000, 6000),
        "sgd_batch": 8, "sgd_lr": 0.004, "validation_split": 0.3, "nn_dtype": "float32", "sgd_chunk": 10,
        "trend_widths": (1000, 3000), "trend_trials": 10,
        "gd_trials": 20, "gd_steps": 10_000, "gd_lr_fraction": 0.5, "ensemble": 4,
        "eq_n_train": 670, "eq_widths": (500, 2000, 10_000), "eq_seeds": 8, "eq_steps": 5000,
        "eq_lr_fraction": 0.5,
        "limit_n": 100, "limit_widths": (500, 2000, 10_000), "limit_samples": 64,
    },
    "long": {
        "trials": 50, "n": 1000, "d": 15, "n_train": 670,
        "reference_trials": 10,
        "nn_trials": 50, "nn_width": 256, "nn_epochs": (3000, 6000),
        "sgd_batch": 8, "sgd_lr": 0.004, "validation_split": 0.3, "nn_dtype": "float32", "sgd_chunk": 25,
        "trend_widths": (512, 1024), "trend_trials": 3,
        "gd_trials": 10, "gd_steps": PUBLISHED_TIME, "gd_lr_fraction": 0.5, "ensemble": 4,
        "eq_n_train": 670, "eq_widths": (256, 1024, 4096), "eq_seeds": 4, "eq_steps": PUBLISHED_TIME,
        "eq_lr_fraction": 0.5,
        "limit_n": 32, "limit_widths": (128, 512, 2048, 8192), "limit_samples": 48,
    },
}

SUITE = "liu2025"
#: the protocol variants, cumulative: each adds one change to the one before (test_liu2025_protocol.py)
VARIANTS = ("published", "all_points", "full_batch", "centred", "ensemble")
FORMS = ("published", "corrected")

suite = Suite(SUITE, __file__, SETTINGS, single_threaded_blas=True)
settings, _record = suite.fixtures()


@pytest.fixture(scope="session")
def liu2025(request) -> "Audit":
    """The suite's shared, cached computations (:class:`Audit`). Claims call its methods inside
    ``claim.stage(...)``: the first call computes (or reads the disk cache), later ones hit memory."""
    return Audit(suite.run(request.config))


def pytest_generate_tests(metafunc):
    """``liu2025.equivalence`` is parametrized over the active profile's widths (at collection)."""
    marker = metafunc.definition.get_closest_marker("claim")
    if marker is None or not marker.args:
        return
    if marker.args[0] == "liu2025.equivalence" and "width" in metafunc.fixturenames:
        s = suite.settings_for(metafunc.config)
        metafunc.parametrize("width", [*s["eq_widths"], "trend"])


# ============================================================================ helpers


def cholesky_regression(k_full, trial) -> tuple[float, float]:
    """Test RMSE of kernel regression ``K_* K^{-1} y`` on one trial, and the 1-norm condition estimate.

    ``k_full`` is the (n, n) Gram matrix of all of the trial's inputs; ``K`` = its train/train
    block, ``K_*`` its test/train block. Solved by Cholesky (scipy); the condition number is LAPACK's
    ``dpocon`` estimate of ``||K||_1 ||K^{-1}||_1`` from the factor (O(n^2)). A matrix that is not
    numerically positive definite raises :class:`pytest_ntk.science.errors.IllConditionedKernel`.
    """
    import scipy.linalg
    from scipy.linalg import lapack

    from pytest_ntk.science.errors import IllConditionedKernel

    tr, te = trial.train_idx, trial.test_idx
    k = np.ascontiguousarray(k_full[np.ix_(tr, tr)])
    ks = k_full[np.ix_(te, tr)]
    try:
        c, lower = scipy.linalg.cho_factor(k, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise IllConditionedKernel(math.inf, 0.0, what="a kernel's train/train block (Cholesky failed)") from None
    rcond, info = lapack.dpocon(c, float(np.abs(k).sum(axis=0).max()), uplo="L")
    cond = math.inf if info != 0 or rcond <= 0 else 1.0 / rcond
    alpha = scipy.linalg.cho_solve((c, lower), trial.y_train, check_finite=False)
    return float(rms(trial.y_test - ks @ alpha)), float(cond)


# ============================================================================ the audit's computations
class Audit:
    """The suite's shared computations, each cached (``ntk_cache``) under a key of everything it depends on."""

    def __init__(self, run):
        settings = run.settings
        if settings["gd_trials"] > settings["nn_trials"]:
            raise ValueError(f"liu2025 settings: gd_trials={settings['gd_trials']} must be <= "
                             f"nn_trials={settings['nn_trials']} (the variants share the published networks)")
        if settings["reference_trials"] > settings["trials"] or settings["nn_trials"] > settings["trials"]:
            raise ValueError("liu2025 settings: reference_trials and nn_trials must be <= trials")
        self.run = run
        self.s = settings
        self.base_seed = run.base_seed
        self.profile = run.profile

    def cached(self, key, compute, name: str):
        """``run.cached``: the run's cache, the computation's dense linear algebra on one BLAS thread."""
        return self.run.cached(key, compute, name=name.removeprefix(f"{SUITE}_"))

    # ------------------------------------------------------------------ seeds and data
    def _seed(self, stream: str, i: int) -> int:
        return self.run.seed(stream, i)

    @cached_property
    def trial_seeds(self) -> list[int]:
        return [self._seed("trial", i) for i in range(self.s["trials"])]

    def net_seed(self, i: int, depth: int) -> int:
        """Initialisation of NN``depth`` on trial ``i``, shared by every protocol variant (paired)."""
        return self._seed(f"nn{depth}", i)

    def ensemble_seeds(self, i: int, depth: int) -> list[int]:
        """The centred ensemble's members; the first is :meth:`net_seed` (the single network's init)."""
        return [self.net_seed(i, depth)] + [self._seed(f"nn{depth}/trial{i}/member", k)
                                            for k in range(1, self.s["ensemble"])]

    @cached_property
    def data_spec(self) -> dict:
        s = self.s
        return {"generator": "pytest_ntk.science.data.liu2025_sphere", "n": s["n"], "d": s["d"],
                "n_train": s["n_train"], "as_published": True}

    def trial(self, i: int):
        return _trial(self.trial_seeds[i], self.s["n"], self.s["d"], self.s["n_train"])

    @property
    def n_fit(self) -> int:
        """Points Keras fits with ``validation_split``: ``floor(n_train * (1 - split))`` (468)."""
        return math.floor(self.s["n_train"] * (1.0 - self.s["validation_split"]))

    def _key(self, what: str, **extra) -> dict:
        return self.run.key(what, data=self.data_spec, **extra)

    def net(self, depth: int, width: int | None = None):
        from pytest_ntk.science.nets import FullyConnected

        return FullyConnected(depth, int(width or self.s["nn_width"]), "relu", 1.0, 1.0, "ntk")

    # ------------------------------------------------------------------ kernel rows (always 50 trials)
    def kernel_rmse(self) -> dict:
        """Test RMSE of the nine kernels, published and corrected, on every trial (Cholesky solves).

        ``{"published": {name: (trials,)}, "corrected": {...}, "cond1_published": {...},
        "cond1_corrected": {...}, "rms_y_test": (trials,)}``; the zero predictor's RMSE is
        ``rms_y_test``.
        """
        from pytest_ntk.science.kernels import liu2025

        names = liu2025.KERNEL_NAMES
        T = self.s["trials"]

        def compute():
            out = {f: {k: np.zeros(T) for k in names} for f in FORMS}
            cond = {f"cond1_{f}": {k: np.zeros(T) for k in names} for f in FORMS}
            rms_y = np.zeros(T)
            for i in range(T):
                tr = self.trial(i)
                rms_y[i] = rms(tr.y_test)
                for form in FORMS:
                    grams = liu2025.all_kernels(tr.x, as_published=form == "published", names=names)
                    for name, k in grams.items():
                        out[form][name][i], cond[f"cond1_{form}"][name][i] = cholesky_regression(k, tr)
                    del grams
            return {**out, **cond, "rms_y_test": rms_y}

        key = self._key("kernel regression RMSE, nine kernels, both forms", trial_seeds=self.trial_seeds,
                        names=list(names), solve="cholesky+dpocon")
        return self.cached(key, compute, name="liu2025_kernel_rmse")

    def rbf_rmse(self) -> np.ndarray:
        """Test RMSE of kernel regression with a Gaussian (RBF) kernel on every trial: a smooth kernel
        not derived from the audited networks, the near rival of ``liu2025.gp_vs_ntk``.

        ``k(x, x') = exp(-|x - x'|^2 / (2 l^2))`` with ``l`` the median of the pairwise distances
        between the trial's training inputs (the textbook median heuristic; nothing is fitted to the
        targets), solved like the nine kernels (:func:`cholesky_regression`, no ridge). ``(trials,)``.
        """
        from scipy.spatial.distance import pdist, squareform

        T = self.s["trials"]

        def compute():
            out = np.zeros(T)
            for i in range(T):
                tr = self.trial(i)
                length = float(np.median(pdist(tr.x[tr.train_idx])))
                gram = np.exp(squareform(pdist(tr.x, "sqeuclidean")) * (-0.5 / length**2))
                np.fill_diagonal(gram, 1.0)
                out[i] = cholesky_regression(gram, tr)[0]
            return out

        key = self._key("RBF kernel regression RMSE, median-heuristic length", trial_seeds=self.trial_seeds,
                        solve="cholesky+dpocon")
        return self.cached(key, compute, name="liu2025_rbf_rmse")

    def own_kernel_rmse(self) -> dict:
        """Kernel regression RMSE with the trained networks' own infinite-width kernels, on the NN trials.

        ``{"NN1 NTK": (nn_trials,), "NN1 NNGP": ..., "NN2 NTK": ..., "NN2 NNGP": ...}``: the analytic
        NTK and NNGP of ``FullyConnected(depth, width)`` (NTK parameterization; width does not enter).
        """
        from pytest_ntk.science.kernels import analytic

        T = self.s["nn_trials"]

        def compute():
            out = {f"NN{d} {k}": np.zeros(T) for d in (1, 2) for k in ("NTK", "NNGP")}
            for i in range(T):
                tr = self.trial(i)
                for depth in (1, 2):
                    nngp, ntk = analytic.nngp_and_ntk(self.net(depth), tr.x)
                    out[f"NN{depth} NTK"][i] = cholesky_regression(ntk, tr)[0]
                    out[f"NN{depth} NNGP"][i] = cholesky_regression(nngp, tr)[0]
            return out

        key = self._key("own analytic kernels' regression RMSE", trial_seeds=self.trial_seeds[:T],
                        nets=[self.net(1), self.net(2)])
        return self.cached(key, compute, name="liu2025_own_kernel_rmse")

    # ------------------------------------------------------------------ trained networks
    def sgd_runs(self, variant: str, depth: int, trials, width: int | None = None) -> list[dict]:
        """NN``depth`` (at ``width``, default ``nn_width``) trained by SGD on each trial of ``trials``
        as published (``variant="published"``: the 468 points left by the validation split) or on all
        670 training points (``"all_points"``). One dict per trial, in order: the outputs at
        initialisation and after training on the fitted and the test points, the loss curve, ``lr``
        and ``steps`` (flow time ``t = lr * steps``).

        The trials train together as independent problems (:func:`pytest_ntk.science.train.train_problems`,
        the fused program): the trials are cut into fixed chunks of ``sgd_chunk`` (trials
        ``0..c-1``, ``c..2c-1``, ...), each chunk one cached computation, so an interrupted run keeps
        every finished chunk and the stage shows how many are done and an estimate of the time left.
        Initialisation: :meth:`net_seed` at ``nn_width``; another width draws from its own stream.
        """
        s = self.s
        if variant not in ("published", "all_points"):
            raise ValueError(f"variant must be 'published' or 'all_points', got {variant!r}")
        width = int(width or s["nn_width"])
        trials = [int(i) for i in trials]
        size = int(s["sgd_chunk"])
        count = self.sgd_trials(variant, width)
        if any(not 0 <= i < count for i in trials):
            raise ValueError(f"liu2025: NN{depth} {variant} at width {width} trains trials 0..{count - 1}, "
                             f"asked for {trials}")
        chunks = sorted({i // size for i in trials})
        done: dict[int, dict] = {}
        for k, c in enumerate(chunks):
            part = list(range(c * size, min((c + 1) * size, count)))
            for i, r in zip(part, self._sgd_chunk(variant, depth, width, part)):
                done[i] = r
            self.run.advance(k + 1, len(chunks), f"NN{depth} width {width} {variant}: chunks")
        return [done[i] for i in trials]

    def sgd_trials(self, variant: str, width: int | None = None) -> int:
        """How many trials (the first ones) are trained in ``variant`` at ``width``: ``nn_trials`` for the
        published protocol at ``nn_width``, ``gd_trials`` for all points (protocol variants),
        ``trend_trials`` at the widths of the trend."""
        s = self.s
        if width is not None and int(width) != int(s["nn_width"]):
            if variant != "published" or int(width) not in s["trend_widths"]:
                raise ValueError(f"liu2025: width {width} is neither nn_width nor in trend_widths {s['trend_widths']}")
            return int(s["trend_trials"])
        return int(s["nn_trials"] if variant == "published" else s["gd_trials"])

    def sgd_run(self, variant: str, depth: int, i: int) -> dict:
        """:meth:`sgd_runs` of trial ``i`` at ``nn_width`` (its chunk is trained, or read, as a whole)."""
        return self.sgd_runs(variant, depth, [i])[0]

    def _net_seed_at(self, i: int, depth: int, width: int) -> int:
        return self.net_seed(i, depth) if width == int(self.s["nn_width"]) else self._seed(f"nn{depth}/width{width}", i)

    def _sgd_chunk(self, variant: str, depth: int, width: int, part: list[int]) -> list[dict]:
        import jax.numpy as jnp

        from pytest_ntk.science import train

        s = self.s
        n_fit = self.n_fit if variant == "published" else s["n_train"]
        model = self.net(depth, width)
        seeds = [self._net_seed_at(i, depth, width) for i in part]
        epochs = int(s["nn_epochs"][depth - 1])
        per_epoch = n_fit // s["sgd_batch"]

        def compute():
            trials = [self.trial(i) for i in part]
            r = train.train_problems(
                model, np.stack([t.x_train[:n_fit] for t in trials]), np.stack([t.y_train[:n_fit] for t in trials]),
                seeds=seeds, epochs=epochs, lr=s["sgd_lr"], batch_size=s["sgd_batch"],
                x_eval=np.stack([t.x_test for t in trials]), record_every=per_epoch * max(1, epochs // 30),
                dtype=jnp.dtype(s["nn_dtype"]), method="auto")
            return [{"f_test": r.f_test[k], "f0_test": r.f0_test[k], "f_train": r.f_train[k],
                     "f0_train": r.f0_train[k], "losses": r.losses[k], "final_loss": float(r.final_loss[k]),
                     "lr": float(r.lr), "steps": int(r.steps), "n_fit": n_fit, "method": r.method}
                    for k in range(len(part))]

        key = self._key("SGD-trained networks, one chunk of trials", variant=variant, model=model,
                        trial_seeds=[self.trial_seeds[i] for i in part], n_fit=n_fit, seeds=seeds, epochs=epochs,
                        lr=s["sgd_lr"], batch=s["sgd_batch"], dtype=s["nn_dtype"])
        return self.cached(key, compute, name="liu2025_sgd")

    def nn_rmse(self, variant: str = "published", width: int | None = None, trials: int | None = None) -> dict:
        """``{1: (T,), 2: (T,)}`` test RMSE of the SGD-trained NN1/NN2 on the first ``T`` trials
        (default ``nn_trials``) at ``width`` (default ``nn_width``)."""
        T = int(trials or self.s["nn_trials"])
        return {d: np.array([rms(r["f_test"] - self.trial(i).y_test)
                             for i, r in enumerate(self.sgd_runs(variant, d, range(T), width))]) for d in (1, 2)}

    def sgd_time(self, depth: int) -> float:
        """Flow time ``t = lr * steps`` of the published SGD for NN``depth``: ``sgd_lr * epochs * (468 // batch)``."""
        s = self.s
        return float(s["sgd_lr"]) * int(s["nn_epochs"][depth - 1]) * (self.n_fit // int(s["sgd_batch"]))

    def _steps(self, setting: str, depth: int, lr: float) -> int:
        """``settings[setting]`` steps, or, where it is a string, the steps that reach the published SGD's
        flow time of NN``depth`` at rate ``lr``: ``ceil(sgd_time(depth) / lr)``."""
        value = self.s[setting]
        return math.ceil(self.sgd_time(depth) / lr) if isinstance(value, str) else int(value)

    def gd_lr(self, depth: int, i: int) -> float:
        """``gd_lr_fraction * 2n / lambda_max`` of NN``depth``'s analytic NTK on trial ``i``'s 670 points."""
        from pytest_ntk.science import predict

        tr = self.trial(i)
        with single_threaded_blas():
            return self.s["gd_lr_fraction"] * predict.critical_lr(self.net(depth).ntk(tr.x_train))

    def gd_run(self, depth: int, i: int) -> dict:
        """Full-batch GD on all 670 training points of trial ``i``: NN``depth`` from :meth:`net_seed`
        (``single_*``) and the centred ensemble of :meth:`ensemble_seeds` (``centred_f_test``,
        (ensemble, 330)), same rate and steps; ``t = lr * steps``."""
        import jax.numpy as jnp

        from pytest_ntk.science import train

        s = self.s
        tr = self.trial(i)
        model = self.net(depth)
        seeds = self.ensemble_seeds(i, depth)
        lr = self.gd_lr(depth, i)
        steps = self._steps("gd_steps", depth, lr)
        dtype = jnp.dtype(s["nn_dtype"])

        def compute():
            rec = max(1, steps // 30)
            single = train.train(model, tr.x_train, tr.y_train, seeds=seeds[:1], steps=steps, lr=lr, method="auto",
                                 x_eval=tr.x_test, record_every=rec, dtype=dtype)
            centred = train.train(Centred(model), tr.x_train, tr.y_train, seeds=seeds, steps=steps, lr=lr,
                                  params=Centred(model).stacked_params(seeds, s["d"], dtype), x_eval=tr.x_test,
                                  record_every=rec, dtype=dtype)
            if np.any(centred.f0_train != 0) or np.any(centred.f0_test != 0):
                raise AssertionError("the centred network does not start at exactly 0")
            return {"single_f_test": single.f_test[0], "single_f0_test": single.f0_test[0],
                    "single_f0_train": single.f0_train[0], "single_losses": single.losses[0],
                    "centred_f_test": centred.f_test, "centred_losses": centred.losses,
                    "lr": float(lr), "steps": steps}

        key = self._key("full-batch GD, single and centred ensemble", model=model,
                        trial_seed=self.trial_seeds[i], seeds=seeds, steps=steps, lr=lr, dtype=s["nn_dtype"])
        return self.cached(key, compute, name="liu2025_gd")

    # ------------------------------------------------------------------ protocol variants
    def protocol(self) -> dict:
        """Per variant (:data:`VARIANTS`), on the first ``gd_trials`` trials, for depths 1 and 2 (columns):

        - ``nn[v]`` (T, 2): the trained network's (or ensemble's) test RMSE;
        - ``kt[v]`` (T, 2): the test RMSE of the network's own analytic NTK's prediction for that
          training: gradient flow (SGD variants, ``t = lr * steps``) or gradient descent (GD variants,
          same ``lr`` and steps) on the same training points, including the network's own initial
          output ``f0`` (single networks) or without it (centred networks and their ensemble);
        - ``kt_nn1[v]`` (T,): the rival "NN1's NTK for both depths": NN2's column of ``kt`` computed
          with NN1's analytic NTK in place of NN2's (same training time, points and ``f0``) -- the
          prediction of a theory in which depth does not change the kernel;
        - ``kinf`` (T, 2): kernel regression (t = infinity, all 670 points) with the own NTK -- the
          paper's comparison with the right kernel.
        """
        from pytest_ntk.science import predict

        T = self.s["gd_trials"]
        nf = self.n_fit

        def compute():
            nn = {v: np.zeros((T, 2)) for v in VARIANTS}
            kt = {v: np.zeros((T, 2)) for v in VARIANTS}
            kt_nn1 = {v: np.zeros(T) for v in VARIANTS}
            kinf = np.zeros((T, 2))
            for i in range(T):
                tr = self.trial(i)
                kernels = {d: (self.net(d).ntk(tr.x_train), self.net(d).ntk(tr.x_test, tr.x_train)) for d in (1, 2)}

                def predictions(th, ths, depth):
                    """Test RMSE of the kernel (th, ths) predicting each variant's training of NN``depth``."""
                    out = {}
                    r = self.sgd_run("published", depth, i)  # 468 points, gradient flow at t = lr * steps, with f0
                    _, p = predict.gradient_descent_mse(th[:nf, :nf], tr.y_train[:nf], ths[:, :nf],
                                                        r["lr"] * r["steps"], f0_train=r["f0_train"],
                                                        f0_test=r["f0_test"])
                    out["published"] = rms(p - tr.y_test)
                    r = self.sgd_run("all_points", depth, i)  # all 670 points
                    _, p = predict.gradient_descent_mse(th, tr.y_train, ths, r["lr"] * r["steps"],
                                                        f0_train=r["f0_train"], f0_test=r["f0_test"])
                    out["all_points"] = rms(p - tr.y_test)
                    g = self.gd_run(depth, i)  # full-batch GD: column 0 with the single network's f0, 1 centred
                    y2 = np.stack([tr.y_train, tr.y_train], axis=1)
                    f0 = np.stack([g["single_f0_train"], np.zeros(tr.n_train)], axis=1)
                    f0s = np.stack([g["single_f0_test"], np.zeros(tr.n_test)], axis=1)
                    _, p2 = predict.gradient_descent_mse(th, y2, ths, g["lr"] * g["steps"], lr=g["lr"],
                                                         f0_train=f0, f0_test=f0s)
                    out["full_batch"] = rms(p2[:, 0] - tr.y_test)
                    out["centred"] = out["ensemble"] = rms(p2[:, 1] - tr.y_test)
                    return out

                for c, depth in enumerate((1, 2)):
                    th, ths = kernels[depth]
                    kinf[i, c] = rms(predict.kernel_regression(th, tr.y_train, ths) - tr.y_test)
                    for v, value in predictions(th, ths, depth).items():
                        kt[v][i, c] = value
                    nn["published"][i, c] = rms(self.sgd_run("published", depth, i)["f_test"] - tr.y_test)
                    nn["all_points"][i, c] = rms(self.sgd_run("all_points", depth, i)["f_test"] - tr.y_test)
                    g = self.gd_run(depth, i)
                    nn["full_batch"][i, c] = rms(g["single_f_test"] - tr.y_test)
                    nn["centred"][i, c] = rms(g["centred_f_test"][0] - tr.y_test)
                    nn["ensemble"][i, c] = rms(np.mean(g["centred_f_test"], axis=0) - tr.y_test)
                for v, value in predictions(*kernels[1], 2).items():  # the rival: NN1's NTK for NN2's training
                    kt_nn1[v][i] = value
            return {"nn": nn, "kt": kt, "kt_nn1": kt_nn1, "kinf": kinf}

        s = self.s
        key = self._key("protocol variants", trial_seeds=self.trial_seeds[:T],
                        settings={k: s[k] for k in ("nn_width", "nn_epochs", "sgd_batch", "sgd_lr",
                                                    "validation_split", "nn_dtype", "gd_steps",
                                                    "gd_lr_fraction", "ensemble")},
                        seeds=[self.ensemble_seeds(i, d) for i in range(T) for d in (1, 2)])
        return self.cached(key, compute, name="liu2025_protocol")

    # ------------------------------------------------------------------ equivalence
    def equivalence(self, width: int) -> dict:
        """NN1 at ``width`` trained by full-batch GD on the first ``eq_n_train`` of trial 0's training
        points (``eq_seeds`` initialisations, plain and centred), against the analytic NTK's GD
        prediction at the same ``lr`` and steps. Gaps are RMS over the 330 test points, divided by
        the test RMSE of the f0-free NTK prediction (``rmse_kernel``):

        - ``single`` (seeds,): ``f_s - [f0_s + Theta_* Theta^{-1} (I - (I - lr Theta/n)^steps)(y - f0_s)]``;
        - ``ensemble``: the same for the mean over seeds of both;
        - ``centred`` (seeds,): ``g_s - Theta_* Theta^{-1} (I - (I - lr Theta/n)^steps) y`` with ``g = f - f0``
          trained as such (:class:`Centred`).
        """
        import jax.numpy as jnp

        from pytest_ntk.science import predict, train

        s = self.s
        tr = self.trial(0)
        n = int(s["eq_n_train"])
        x, y = tr.x_train[:n], tr.y_train[:n]
        model = self.net(1, width)
        seeds = [self._seed("equivalence", k) for k in range(s["eq_seeds"])]
        with single_threaded_blas():
            th = model.ntk(x)
            ths = model.ntk(tr.x_test, x)
            lr = s["eq_lr_fraction"] * predict.critical_lr(th)
        steps = self._steps("eq_steps", 1, lr)
        dtype = jnp.dtype(s["nn_dtype"])

        def compute():
            rec = max(1, steps // 30)
            plain = train.train(model, x, y, seeds=seeds, steps=steps, lr=lr, x_eval=tr.x_test, method="auto",
                                record_every=rec, dtype=dtype)
            cen = train.train(Centred(model), x, y, seeds=seeds, steps=steps, lr=lr, x_eval=tr.x_test,
                              params=Centred(model).stacked_params(seeds, s["d"], dtype), record_every=rec,
                              dtype=dtype)
            if np.any(cen.f0_train != 0) or np.any(cen.f0_test != 0):
                raise AssertionError("the centred network does not start at exactly 0")
            t = lr * steps
            S = len(seeds)
            _, p = predict.gradient_descent_mse(th, np.repeat(y[:, None], S, axis=1), ths, t, lr=lr,
                                                f0_train=plain.f0_train.T, f0_test=plain.f0_test.T)
            _, pc = predict.gradient_descent_mse(th, y, ths, t, lr=lr)
            rmse_k = float(rms(pc - tr.y_test))
            return {
                "single": rms(plain.f_test - p.T, axis=1) / rmse_k,
                "ensemble": float(rms(plain.f_test.mean(0) - p.T.mean(0)) / rmse_k),
                "centred": rms(cen.f_test - pc[None], axis=1) / rmse_k,
                "rmse_kernel": rmse_k,
                "rmse_single": rms(plain.f_test - tr.y_test[None], axis=1),
                "rmse_centred": rms(cen.f_test - tr.y_test[None], axis=1),
                "f0_rms": rms(plain.f0_test, axis=1),
                "final_loss": plain.final_loss, "lr": float(lr), "steps": steps, "t": float(t),
            }

        key = self._key("equivalence runs", model=model, trial_seed=self.trial_seeds[0], n_train=n,
                        seeds=seeds, steps=steps, lr=lr, dtype=s["nn_dtype"])
        return self.cached(key, compute, name="liu2025_equivalence")

    # ------------------------------------------------------------------ SGD equivalence across widths
    def sgd_equivalence(self, depth: int) -> dict:
        """The published training of NN``depth`` against the theorem's prediction for it, at ``nn_width``
        (``nn_trials`` trials) and at each of ``trend_widths`` (``trend_trials`` trials).

        Per trial ``i`` and width: the trained network's test outputs ``f`` (:meth:`sgd_runs`), and, with
        the network's analytic NTK ``Theta`` (width-independent in the NTK parameterization) on the 468
        fitted points, gradient flow to the same time ``t = lr * steps`` from the network's own
        initial outputs ``f0`` (:func:`pytest_ntk.science.predict.gradient_descent_mse`)::

            p   = f0_* + Theta_* Theta^{-1} (I - e^{-Theta t / n}) (y - f0)      (the theorem's prediction)
            p_c =        Theta_* Theta^{-1} (I - e^{-Theta t / n}) y             (f0-free: the wide ensemble)

        ``gap = RMS_test(f - p) / RMSE(p_c)`` (the per-point gap in units of the f0-free prediction's
        test error). The same gap against three rival predictions ``q`` (``rival_gap``), each a theory
        that would also be "the network behaves like a kernel", and ``rival_distance = RMS_test(p -
        q) / RMSE(p_c)``, the gap the claim would measure if the rival were right (the network at
        ``q``):

        - ``"other depth"``: ``p`` with the NTK of the other depth (a theory blind to depth);
        - ``"NNGP"``: ``p`` with the network's NNGP kernel in place of its NTK (the paper's claim 3
          says their regressions err alike);
        - ``"regression"``: kernel regression with ``Theta`` on all 670 points, no ``f0`` (the
          paper's comparison: the network as its NTK's interpolant).

        Also the test RMSEs of ``f``, ``p``, ``p_c`` and of that regression. Returns ``{"widths":
        [...], "by_width": [{"gap", "rmse_nn", "rmse_flow", "rmse_flow_f0_free", "rmse_regression",
        "rival_gap": {name: ...}, "rival_distance": {name: ...}} per width, one value per trial], "t": t}``.
        """
        from pytest_ntk.science import predict

        s = self.s
        nf = self.n_fit
        widths = [int(s["nn_width"]), *[int(w) for w in s["trend_widths"]]]
        counts = {w: self.sgd_trials("published", w) for w in widths}
        runs = {w: self.sgd_runs("published", depth, range(counts[w]), w) for w in widths}
        t = self.sgd_time(depth)
        rivals = ("other depth", "NNGP", "regression")

        def compute():
            out = {w: {k: np.zeros(counts[w]) for k in ("gap", "rmse_nn", "rmse_flow", "rmse_flow_f0_free",
                                                        "rmse_regression")} for w in widths}
            for w in widths:
                out[w]["rival_gap"] = {name: np.zeros(counts[w]) for name in rivals}
                out[w]["rival_distance"] = {name: np.zeros(counts[w]) for name in rivals}
            for i in range(max(counts.values())):
                tr = self.trial(i)
                x, xs, y, y_fit = tr.x_train, tr.x_test, tr.y_train, tr.y_train[:nf]
                with single_threaded_blas():
                    nngp, th = self.net(depth).nngp(x), self.net(depth).ntk(x)
                    nngps, ths = self.net(depth).nngp(xs, x), self.net(depth).ntk(xs, x)
                    th_o, ths_o = self.net(3 - depth).ntk(x), self.net(3 - depth).ntk(xs, x)
                    regression = predict.kernel_regression(th, y, ths)
                    _, pc = predict.gradient_descent_mse(th[:nf, :nf], y_fit, ths[:, :nf], t)
                    for w in widths:
                        if i >= counts[w]:
                            continue
                        r = runs[w][i]
                        if not math.isclose(r["lr"] * r["steps"], t, rel_tol=1e-12):
                            raise AssertionError(f"SGD flow time {r['lr'] * r['steps']} != {t}")
                        f0 = {"f0_train": r["f0_train"], "f0_test": r["f0_test"]}

                        def flow(k, ks):
                            return predict.gradient_descent_mse(k[:nf, :nf], y_fit, ks[:, :nf], t, **f0)[1]

                        p = flow(th, ths)
                        o = out[w]
                        scale = rms(pc - tr.y_test)
                        o["rmse_flow_f0_free"][i] = scale
                        o["gap"][i] = rms(r["f_test"] - p) / scale
                        o["rmse_nn"][i] = rms(r["f_test"] - tr.y_test)
                        o["rmse_flow"][i] = rms(p - tr.y_test)
                        o["rmse_regression"][i] = rms(regression - tr.y_test)
                        for name, q in (("other depth", flow(th_o, ths_o)), ("NNGP", flow(nngp, nngps)),
                                        ("regression", regression)):
                            o["rival_gap"][name][i] = rms(r["f_test"] - q) / scale
                            o["rival_distance"][name][i] = rms(p - q) / scale
            return {"widths": widths, "by_width": [out[w] for w in widths], "t": t}

        key = self._key("published SGD against its NTK flow and rivals, by width", depth=depth, widths=widths,
                        trial_seeds=self.trial_seeds[:max(counts.values())],
                        counts_by_width=[counts[w] for w in widths],
                        seeds=[[self._net_seed_at(i, depth, w) for i in range(counts[w])] for w in widths],
                        settings={k: s[k] for k in ("nn_epochs", "sgd_batch", "sgd_lr", "validation_split",
                                                    "nn_dtype")})
        return self.cached(key, compute, name="liu2025_sgd_equivalence")

    # ------------------------------------------------------------------ empirical kernels
    @property
    def limit_inputs(self) -> np.ndarray:
        return self.trial(0).x[: self.s["limit_n"]]

    def paper_kernel(self, name: str, form: str) -> np.ndarray:
        """The paper's kernel ``name`` (``form`` "published" or "corrected") on :attr:`limit_inputs`."""
        from pytest_ntk.science.kernels import liu2025

        with single_threaded_blas():
            return liu2025.kernel(name, self.limit_inputs, as_published=form == "published")

    def monte_carlo(self, depth: int, width: int) -> dict:
        """Seed statistics of NN``depth``'s empirical NNGP and NTK at ``width`` on :attr:`limit_inputs`
        (:func:`pytest_ntk.science.empirical.monte_carlo_kernels`, ``limit_samples`` initialisations, float32
        per seed, float64 means): means, entrywise standard deviations and the per-seed kernels."""
        import jax

        from pytest_ntk.science import empirical

        s = self.s
        model = self.net(depth, width)
        seed = self._seed(f"montecarlo/{depth}/{width}", 0)
        x = self.limit_inputs

        def compute():
            mc = empirical.monte_carlo_kernels(model, jax.random.PRNGKey(seed), x,
                                               n_samples=s["limit_samples"], keep_samples=True)
            return {"nngp": mc.nngp, "ntk": mc.ntk, "nngp_std": mc.nngp_std, "ntk_std": mc.ntk_std,
                    "nngp_samples": mc.nngp_samples, "ntk_samples": mc.ntk_samples,
                    "n_samples": int(mc.n_samples)}

        key = self._key("Monte Carlo empirical kernels", model=model, seed=seed, inputs=x,
                        n_samples=s["limit_samples"])
        return self.cached(key, compute, name="liu2025_montecarlo")


@lru_cache(maxsize=64)
def _trial(seed: int, n: int, d: int, n_train: int):
    from pytest_ntk.science import data

    # one BLAS thread, always: the draw y = L z must not depend on where it first happens (inside a
    # cached computation or outside), or warm and cold runs would differ in the last bits
    with single_threaded_blas():
        return data.liu2025_sphere(seed, n, d, n_train, as_published=True)
