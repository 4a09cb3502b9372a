"""Concentration of the Monte-Carlo pullback metric (seed 001 Lemma 9.2, Cor. 9.3).

On the seed's generator (16 -> 32 -> 1), ||g_N - g||_op and the natural-gradient vector
error are measured against the number N of latent samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ottokit.experiments._studies import fmt_list
from ottokit.experiments.gan_geometry.config import DT, GanGeometryConfig
from ottokit.gan.jacobian import ParamLayout
from ottokit.gan.nets import MLPGenerator, build_seeded
from ottokit.gan.pullback import PullbackMetric
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = [
    "ConcentrationResult",
    "MetricConcentrationStudy",
    "VectorConcentration",
    "checks",
    "comparisons",
    "figure",
    "metric_concentration",
    "study",
    "summary",
]

NAME = "concentration"
CAPTION = "Pullback-metric estimate and natural-gradient vector against N (Lemma 9.2, Cor. 9.3)"


@dataclass
class ConcentrationResult:
    """Monte-Carlo error of g_hat_N and of the natural-gradient vector against N.

    ``metric_error[i]``: median over repeats of ||g_hat_N - g||_op at ``sizes[i]``;
    ``vector_error[i]``: median of ||v_hat_N - v|| with v = (g + lambda I)^{-1} b and
    v_hat_N = (g_hat_N + lambda I)^{-1} b for the fixed vector ``b`` (seed 001 Cor. 9.3 with
    an exact gradient). ``*_slope``: least-squares slopes of log error against log N
    (about -1/2 by Lemma 9.2 / Cor. 9.3).
    """

    sizes: list[int]
    metric_error: list[float]
    vector_error: list[float]
    metric_slope: float
    vector_slope: float
    reference: torch.Tensor
    gradient: torch.Tensor
    damping: float


def metric_concentration(
    generator: nn.Module,
    latent_sampler: Callable[[int], torch.Tensor],
    sizes: Sequence[int],
    repeats: int = 20,
    reference_samples: int = 100_000,
    seed: int = 0,
    *,
    damping: float = 1e-3,
    reference_metric: torch.Tensor | None = None,
    gradient: torch.Tensor | None = None,
    chunk: int = 4096,
) -> ConcentrationResult:
    """Concentration of the Monte-Carlo pullback metric (seed 001 Lemma 9.2, Cor. 9.3).

    For each N in ``sizes``, ``repeats`` independent metrics g_hat_N from ``latent_sampler(N)``
    are compared with the reference g: ``reference_metric`` if given (a closed form), else
    g_hat from ``reference_samples`` latents (accumulated in chunks of ``chunk``). Lemma 9.2
    gives ||g_hat_N - g||_op = O(N^{-1/2}) with high probability; Cor. 9.3 transfers it to
    ||v_hat_N - v|| <= (C/lambda) ||g_hat_N - g||_op. ``gradient`` is the fixed vector b (a
    seeded standard normal vector of unit norm by default). All sampling happens under
    ``torch.random.fork_rng`` with ``torch.manual_seed(seed)``, so the caller's global RNG
    is untouched and the result is reproducible when the sampler uses torch's global RNG.
    """
    layout = ParamLayout(generator)
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must hold at least two integers >= 1, got {sizes}")
    for name, value in (("repeats", repeats), ("reference_samples", reference_samples),
                        ("chunk", chunk)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(damping, (int, float)) or damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping!r}")
    n = layout.n_params
    eye = torch.eye(n, dtype=layout.dtype, device=layout.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if reference_metric is None:
            ref = torch.zeros(n, n, dtype=layout.dtype, device=layout.device)
            left = reference_samples
            while left > 0:
                m = min(chunk, left)
                jac = PullbackMetric(generator, latent_sampler(m)).jacobian()
                ref += jac.T @ jac
                left -= m
            ref /= reference_samples
        else:
            ref = reference_metric.to(dtype=layout.dtype, device=layout.device)
            if ref.shape != (n, n):
                raise ValueError(f"reference_metric must be ({n}, {n}), got {tuple(ref.shape)}")
        if gradient is None:
            b = torch.randn(n, dtype=layout.dtype, device=layout.device)
            b /= b.norm()
        else:
            b = gradient.to(dtype=layout.dtype, device=layout.device).reshape(-1)
            if b.shape[0] != n:
                raise ValueError(f"gradient must have {n} entries, got {b.shape[0]}")
        v_ref = torch.linalg.solve(ref + damping * eye, b)
        m_err, v_err = [], []
        for size in sizes:
            es, vs = [], []
            for _ in range(repeats):
                g_hat = PullbackMetric(generator, latent_sampler(size)).dense()
                es.append(float(torch.linalg.matrix_norm(g_hat - ref, ord=2)))
                v_hat = torch.linalg.solve(g_hat + damping * eye, b)
                vs.append(float((v_hat - v_ref).norm()))
            m_err.append(float(np.median(es)))
            v_err.append(float(np.median(vs)))
    logn = np.log(np.asarray(sizes, dtype=float))
    return ConcentrationResult(
        sizes=sizes,
        metric_error=m_err,
        vector_error=v_err,
        metric_slope=float(np.polyfit(logn, np.log(m_err), 1)[0]),
        vector_slope=float(np.polyfit(logn, np.log(v_err), 1)[0]),
        reference=ref,
        gradient=b,
        damping=float(damping),
    )


@dataclass(frozen=True)
class VectorConcentration:
    """||v_N - v|| against N for one damping, v = (g + lambda I)^-1 b.

    Attributes:
        damping: lambda.
        error: median over repeats of ||v_N - v||, per N.
        slope: least-squares slope of log error against log N.
        slope_tail: the same over the largest three N.
    """

    damping: float
    error: list[float]
    slope: float
    slope_tail: float


@dataclass(frozen=True)
class MetricConcentrationStudy:
    """||g_N - g||_op and the natural-gradient vector error against N.

    Attributes:
        n_params: parameters of the generator (the size of g).
        sizes: the sample sizes N.
        metric_error: median over repeats of ||g_N - g||_op, per N.
        metric_slope: least-squares slope of log metric_error against log N.
        vectors: the vector error for each damping.
    """

    n_params: int
    sizes: list[int]
    metric_error: list[float]
    metric_slope: float
    vectors: list[VectorConcentration]


def study(config: GanGeometryConfig) -> MetricConcentrationStudy:
    """The estimate's errors for every damping, all against one reference metric."""
    G = build_seeded(config.seed, lambda: MLPGenerator(16, (32,), 1)).to(DT)

    def sampler(n: int) -> torch.Tensor:
        return torch.randn(n, 16, dtype=DT)

    reference = None
    vectors, first = [], None
    for lam in config.concentration_dampings:
        res = metric_concentration(
            G,
            sampler,
            list(config.concentration_sizes),
            repeats=config.concentration_repeats,
            reference_samples=config.concentration_reference,
            seed=config.seed,
            damping=lam,
            reference_metric=reference,
        )
        reference = res.reference
        if first is None:
            first = res
        tail = np.polyfit(np.log(res.sizes[-3:]), np.log(res.vector_error[-3:]), 1)[0]
        vectors.append(
            VectorConcentration(
                damping=float(lam),
                error=list(res.vector_error),
                slope=float(res.vector_slope),
                slope_tail=float(tail),
            )
        )
    return MetricConcentrationStudy(
        n_params=int(sum(p.numel() for p in G.parameters())),
        sizes=list(first.sizes),
        metric_error=list(first.metric_error),
        metric_slope=float(first.metric_slope),
        vectors=vectors,
    )


def checks(s: MetricConcentrationStudy) -> list[Check]:
    """Lemma 9.2 and Cor. 9.3: both errors fall like N^-1/2."""
    return [
        Check(
            "Lemma 9.2: ||g_N - g||_op ~ N^-1/2",
            bool(-0.65 <= s.metric_slope <= -0.35),
            f"log-log slope {s.metric_slope:.3f} over N = {s.sizes} ({s.n_params} parameters)",
        ),
        Check(
            "Cor. 9.3: the natural-gradient vector error falls like N^-1/2",
            bool(all(-0.7 <= v.slope_tail <= -0.3 for v in s.vectors)),
            "; ".join(
                f"lambda = {v.damping:g}: errors {fmt_list(v.error, '.3g')}, slope "
                f"{v.slope:.2f} overall, {v.slope_tail:.2f} over the largest three N"
                for v in s.vectors
            )
            + f" ({s.n_params} parameters: with N below that the estimate is rank-deficient "
            "and the error is dominated by 1/lambda times the missing directions)",
        ),
    ]


def comparisons(s: MetricConcentrationStudy) -> list[Comparison]:
    """The metric's slope beside Lemma 9.2's -1/2."""
    return [Comparison("metric concentration slope", f"{s.metric_slope:.3f}", -0.5, "Lemma 9.2")]


def summary(s: MetricConcentrationStudy) -> str:
    """One clause of the experiment's summary."""
    return f"the metric estimate concentrates at slope {s.metric_slope:.2f}"


def figure(s: MetricConcentrationStudy, path: Path) -> Path:
    """Both errors against N on log-log axes, beside N^-1/2."""
    fig, ax = new_figure(1, 1, figsize=(5.5, 3.8))
    n = np.asarray(s.sizes, float)
    ax.loglog(n, s.metric_error, "o-", label=f"||g_N - g||_op (slope {s.metric_slope:.2f})")
    for v in s.vectors:
        ax.loglog(
            n, v.error, "s-", label=f"||v_N - v||, lambda = {v.damping:g} (slope {v.slope:.2f})"
        )
    ax.loglog(n, s.metric_error[0] * (n / n[0]) ** -0.5, ":", color="0.5", label="N^-1/2")
    ax.set_xlabel("latent samples N")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
