"""Bad input at the public API is refused with TypeError or ValueError naming the argument.

One table per class of mistake (the classes of issue "refuse bad input"): a wrong type
(TypeError), a non-integer size (TypeError), a zero or negative size, NaN or inf, a
value out of range, a wrong shape or a ragged list, an unknown option, a covariance that
is not positive definite (all ValueError). Each case asserts the exact exception kind
(never the other one) and that the message names the argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from ottokit import data, dot, flowmatch, functionals, gan, graph, jko, metrics, ot, thermo

NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Case:
    call: Callable[[], Any]
    arg: str


def _graph() -> graph.Graph:
    return graph.grid((3, 3))


def _rho() -> np.ndarray:
    return np.full(9, 1 / 9)


def _flow() -> graph.LinearHeatFlow:
    return graph.LinearHeatFlow(_graph())


def _wflow() -> graph.WassersteinFlow:
    return graph.WassersteinFlow(_graph(), functionals.Entropy())


def _solve(**kw: Any) -> Any:
    return graph.solve(_flow(), _rho(), (0.0, 0.1), **kw)


X = np.random.default_rng(0).normal(size=(6, 2))
Y = np.random.default_rng(1).normal(size=(5, 2)) + 1.0
X1 = X[:, :1]


def _ramp(**kw: Any) -> thermo.Protocol:
    return thermo.stiffness_ramp(**{"k0": 1.0, "k1": 2.0, "tau": 1.0, **kw})


def _sol() -> thermo.OUSolution:
    return thermo.solve_moments(_ramp(), t_eval=5)


def _jko_grid() -> np.ndarray:
    return np.linspace(0.0, 1.0, 11)


def _q() -> np.ndarray:
    q = np.exp(-((_jko_grid() - 0.5) ** 2) / 0.1)
    return q / q.sum()


def _affine() -> gan.GaussianAffineModel:
    return gan.GaussianAffineModel(1, gan.gaussian_logpdf([0.0], [[1.0]]))


def _D(x: torch.Tensor) -> torch.Tensor:
    return -(x**2).sum(dim=1)


def _G(z: torch.Tensor) -> torch.Tensor:
    return z


Z0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _sched() -> flowmatch.Schedule:
    return flowmatch.CondOT()


DATA = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _zero_velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


WRONG_TYPE = {
    # graph
    "random_geometric n str": Case(lambda: graph.random_geometric("10", 0.1, seed=0), "n"),
    "random_geometric radius str": Case(
        lambda: graph.random_geometric(10, "0.1", seed=0), "radius"
    ),
    "grid shape str": Case(lambda: graph.grid("ab"), "shape"),
    "from_edges edges str": Case(lambda: graph.from_edges("abc"), "edges"),
    "from_edges edges float": Case(lambda: graph.from_edges([[0, 1.5]]), "edges"),
    "from_scipy adjacency str": Case(lambda: graph.from_scipy("abc"), "adjacency"),
    "from_networkx G int": Case(lambda: graph.from_networkx(5), "G"),
    "gradient g str": Case(lambda: graph.gradient("g", _rho()), "g"),
    "gradient u str": Case(lambda: graph.gradient(_graph(), "abc"), "u"),
    "divergence mean int": Case(
        lambda: graph.divergence(_graph(), _rho(), np.ones(12), mean=3), "mean"
    ),
    "WassersteinFlow g": Case(lambda: graph.WassersteinFlow("g", functionals.Entropy()), "g"),
    "WassersteinFlow functional": Case(
        lambda: graph.WassersteinFlow(_graph(), "entropy"), "functional"
    ),
    "LinearHeatFlow g": Case(lambda: graph.LinearHeatFlow(None), "g"),
    "solve flow": Case(lambda: graph.solve("flow", _rho(), (0, 1)), "flow"),
    "solve t_span str": Case(lambda: graph.solve(_flow(), _rho(), "ab"), "t_span"),
    "solve rho0 str": Case(lambda: graph.solve(_flow(), "abc", (0, 1)), "rho0"),
    "solve rtol str": Case(lambda: _solve(rtol="1e-6"), "rtol"),
    "grid_geometry g": Case(lambda: graph.grid_geometry("g"), "g"),
    # ot
    "w2 x str": Case(lambda: ot.w2("abc", Y), "x"),
    "w2 y None": Case(lambda: ot.w2(X, None), "y"),
    "w1 x dict": Case(lambda: ot.w1({"a": 1}, Y), "x"),
    "w2 a str": Case(lambda: ot.w2(X, Y, a="abcdef"), "a"),
    "emd p str": Case(lambda: ot.emd(X, Y, p="2"), "p"),
    "sinkhorn eps str": Case(lambda: ot.sinkhorn(X, Y, "0.1"), "eps"),
    "sinkhorn tol str": Case(lambda: ot.sinkhorn(X, Y, 0.1, tol="small"), "tol"),
    "w2_gaussian m1 str": Case(lambda: ot.w2_gaussian("a", 1.0, 0.0, 1.0), "m1"),
    # thermo
    "stiffness_ramp k0 str": Case(lambda: _ramp(k0="1"), "k0"),
    "stationary_covariance A str": Case(lambda: thermo.stationary_covariance("abc", 1.0), "A"),
    "gaussian_entropy cov str": Case(lambda: thermo.gaussian_entropy("abc"), "cov"),
    "solve_moments protocol": Case(lambda: thermo.solve_moments("p"), "protocol"),
    "simulate_particles protocol": Case(lambda: thermo.simulate_particles(None, 10), "protocol"),
    "tur observable": Case(lambda: thermo.tur(_sol(), 3), "observable"),
    # data
    "toy_2d name int": Case(lambda: data.toy_2d(3, 10), "2-D data set"),
    "two_peaks std str": Case(lambda: data.two_peaks(10, std="big"), "std"),
    # functionals
    "PorousMedium m str": Case(lambda: functionals.PorousMedium("2"), "m"),
    "PotentialEnergy V str": Case(lambda: functionals.PotentialEnergy("abc"), "V"),
    "FDivergence q str": Case(lambda: functionals.FDivergence("kl", "abc"), "q"),
    "Entropy value rho str": Case(lambda: functionals.Entropy().value("abc"), "rho"),
    # jko
    "w2_quantile X str": Case(lambda: jko.w2_quantile("abc", np.linspace(0, 1, 5)), "X"),
    # metrics
    "frechet_distance mu1 str": Case(
        lambda: metrics.frechet_distance("a", np.eye(1), [0.0], np.eye(1)), "mu1"
    ),
    "toy_metrics samples str": Case(lambda: metrics.toy_metrics("abc", X, 0.1), "samples"),
    "digits_fid features": Case(lambda: metrics.digits_fid(X, X, "features"), "features"),
    # dot
    "dot_target y0 str": Case(lambda: dot.dot_target(_D, "abc", 1.0), "y0"),
    "dot_target K str": Case(lambda: dot.dot_target(_D, Z0, "one"), "K"),
    # flowmatch
    "CondOT tau str": Case(lambda: flowmatch.CondOT(tau="a"), "tau"),
    "ExactVelocity schedule": Case(lambda: flowmatch.ExactVelocity("s", DATA), "schedule"),
    "ExactVelocity data str": Case(lambda: flowmatch.ExactVelocity(_sched(), "abc"), "data"),
    "KernelVelocity schedule": Case(
        lambda: flowmatch.KernelVelocity(None, DATA, DATA), "schedule"
    ),
    "MonotoneVelocity1D data": Case(lambda: flowmatch.MonotoneVelocity1D("x"), "data"),
    "ot_couple data str": Case(lambda: flowmatch.ot_couple("abc", DATA), "data"),
    "integrate x0 str": Case(lambda: flowmatch.integrate(_zero_velocity, "abc", 0, 1), "x0"),
    # gan
    "MLPGenerator hidden str": Case(lambda: gan.MLPGenerator(hidden="wide"), "hidden"),
    "make_loss name int": Case(lambda: gan.make_loss(3), "name"),
    "decompose H str": Case(lambda: gan.decompose("abc"), "H"),
    "line_grid n str": Case(lambda: gan.line_grid(0.0, 1.0, "5"), "n"),
    "weighted_laplacian rho str": Case(lambda: graph.weighted_laplacian(_graph(), "abc"), "rho"),
    "reconstruct_initial alphas str": Case(
        lambda: graph.reconstruct_initial(_flow(), _rho(), 1.0, 0.1, alphas="abc"), "alphas"
    ),
    "observed_order h str": Case(lambda: graph.observed_order("ab", [1.0, 2.0]), "h"),
    "edi_check times str": Case(lambda: graph.edi_check(_wflow(), _rho(), "abc"), "times"),
    "BuresGeodesic m0 str": Case(lambda: thermo.BuresGeodesic("a", 1.0, 0.0, 1.0), "m0"),
    "otto_velocity path": Case(lambda: thermo.otto_velocity("abc"), "path"),
    "w2_speed path": Case(lambda: thermo.w2_speed(None), "path"),
    "thermodynamics sol": Case(lambda: thermo.thermodynamics("s"), "sol"),
    "speed_limit sol": Case(lambda: thermo.speed_limit(3), "sol"),
    "Quadratic Q str": Case(lambda: thermo.Quadratic("a", [0.0]), "Q"),
    "Protocol A str": Case(lambda: thermo.Protocol("abc", 0.0, 1.0, 1.0), "A"),
    "chi2_divergence p": Case(lambda: flowmatch.chi2_divergence("p"), "p"),
    "perturbation_d0 perturbed": Case(lambda: flowmatch.perturbation_d0("p"), "perturbed"),
    "kinetic_cost path": Case(lambda: flowmatch.kinetic_cost("p"), "path"),
    "drs_acceptance logits str": Case(lambda: dot.drs_acceptance("abc", 0.0), "logits"),
    "CalibratedDiscriminator calibrator": Case(
        lambda: dot.CalibratedDiscriminator(_D, "c"), "calibrator"
    ),
    "sample_latent dtype str": Case(lambda: gan.sample_latent(2, 2, dtype="float"), "dtype"),
}

NON_INTEGER = {
    "random_geometric n=2.5": Case(lambda: graph.random_geometric(2.5, 0.1, seed=0), "n"),
    "random_geometric seed=1.5": Case(lambda: graph.random_geometric(10, 0.1, seed=1.5), "seed"),
    "random_geometric dim=2.0": Case(
        lambda: graph.random_geometric(10, 0.1, seed=0, dim=2.0), "dim"
    ),
    "grid shape=(2.5, 3)": Case(lambda: graph.grid((2.5, 3)), "shape"),
    "from_edges n=1.5": Case(lambda: graph.from_edges([[0, 1]], n=1.5), "n"),
    "solve max_steps=2.5": Case(lambda: _solve(max_steps=2.5), "max_steps"),
    "emd num_iter_max=2.5": Case(lambda: ot.emd(X, Y, num_iter_max=2.5), "num_iter_max"),
    "sinkhorn max_iter=1.5": Case(lambda: ot.sinkhorn(X, Y, 0.1, max_iter=1.5), "max_iter"),
    "sliced_w n_projections=2.5": Case(
        lambda: ot.sliced_w(X, Y, n_projections=2.5), "n_projections"
    ),
    "sliced_w seed=0.5": Case(lambda: ot.sliced_w(X, Y, seed=0.5), "seed"),
    "stiffness_ramp dim=1.5": Case(lambda: _ramp(dim=1.5), "dim"),
    "quench dim=2.0": Case(lambda: thermo.quench(1.0, 2.0, 1.0, dim=2.0), "dim"),
    "simulate_particles n_steps=1.5": Case(
        lambda: thermo.simulate_particles(_ramp(), 10, n_steps=1.5), "n_steps"
    ),
    "w1_speed n_directions=2.5": Case(
        lambda: thermo.w1_speed(_sol(), n_directions=2.5), "n_directions"
    ),
    "two_peaks n=2.5": Case(lambda: data.two_peaks(2.5), "n"),
    "two_peaks dim=1.5": Case(lambda: data.two_peaks(10, dim=1.5), "dim"),
    "gaussians_grid side=2.5": Case(lambda: data.gaussians_grid(10, side=2.5), "side"),
    "swiss_roll seed=0.5": Case(lambda: data.swiss_roll(10, seed=0.5), "seed"),
    "jko_1d steps=1.5": Case(
        lambda: jko.jko_1d(functionals.Entropy(), _q(), _jko_grid(), 0.1, 1.5),
        "steps",
    ),
    "toy_metrics min_count=1.5": Case(
        lambda: metrics.toy_metrics(X, X, 0.1, min_count=1.5), "min_count"
    ),
    "precision_recall_knn k=2.5": Case(lambda: metrics.precision_recall_knn(X, X, k=2.5), "k"),
    "dot_target steps=1.5": Case(lambda: dot.dot_target(_D, Z0, 1.0, steps=1.5), "steps"),
    "drs n_samples=2.5": Case(lambda: dot.drs(_D, _G, "normal", 2.5, latent_dim=2), "n_samples"),
    "ddls n_steps=1.5": Case(lambda: dot.ddls(_D, _G, Z0, 0.1, 1.5), "n_steps"),
    "ExactVelocity query_chunk=1.5": Case(
        lambda: flowmatch.ExactVelocity(_sched(), DATA, query_chunk=1.5), "query_chunk"
    ),
    "integrate n_steps=2.5": Case(
        lambda: flowmatch.integrate(_zero_velocity, DATA, 0, 1, n_steps=2.5), "n_steps"
    ),
    "standard_normal dim=1.5": Case(lambda: flowmatch.standard_normal(1.5), "dim"),
    "MLPGenerator latent_dim=1.5": Case(lambda: gan.MLPGenerator(latent_dim=1.5), "latent_dim"),
    "sample_latent n=2.5": Case(lambda: gan.sample_latent(2.5, 2), "n"),
    "square_grid n=1.5": Case(lambda: gan.square_grid(0.0, 1.0, 1.5), "n"),
    "solve_moments t_eval=2.5": Case(lambda: thermo.solve_moments(_ramp(), t_eval=2.5), "t_eval"),
    "GaussianMixture.sample n=2.5": Case(
        lambda: flowmatch.GaussianMixture([[0.0]], [[[1.0]]]).sample(2.5), "n"
    ),
    "ddls seed=1.5": Case(lambda: dot.ddls(_D, _G, Z0, 0.1, 1, seed=1.5), "seed"),
    "MLPDiscriminator hidden=(2.5,)": Case(lambda: gan.MLPDiscriminator(1, (2.5,)), "hidden"),
    "holonomy n_segments=2.5": Case(
        lambda: gan.holonomy(_affine(), [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], 0.1, 2.5, [[0.0]]),
        "n_segments",
    ),
}

NON_POSITIVE = {
    "random_geometric n=0": Case(lambda: graph.random_geometric(0, 0.1, seed=0), "n"),
    "random_geometric seed=-1": Case(lambda: graph.random_geometric(10, 0.1, seed=-1), "seed"),
    "random_geometric dim=0": Case(lambda: graph.random_geometric(10, 0.1, seed=0, dim=0), "dim"),
    "random_geometric radius=-0.1": Case(
        lambda: graph.random_geometric(10, -0.1, seed=0), "radius"
    ),
    "random_geometric weight=0": Case(
        lambda: graph.random_geometric(10, 0.1, seed=0, weight=0.0), "weight"
    ),
    "grid shape=(0, 3)": Case(lambda: graph.grid((0, 3)), "shape"),
    "grid spacing=0": Case(lambda: graph.grid(4, spacing=0.0), "spacing"),
    "from_edges n=0": Case(lambda: graph.from_edges(np.zeros((0, 2)), n=0), "n"),
    "from_edges weights=-1": Case(lambda: graph.from_edges([[0, 1]], weights=[-1.0]), "weights"),
    "solve max_steps=0": Case(lambda: _solve(max_steps=0), "max_steps"),
    "solve max_steps=-1": Case(lambda: _solve(max_steps=-1), "max_steps"),
    "solve rtol=-1": Case(lambda: _solve(rtol=-1.0), "rtol"),
    "solve atol=0": Case(lambda: _solve(atol=0.0), "atol"),
    "sensitivity T=-1": Case(lambda: graph.sensitivity(_flow(), _rho(), -1.0), "T"),
    "emd p=0.5": Case(lambda: ot.emd(X, Y, p=0.5), "p"),
    "emd num_iter_max=0": Case(lambda: ot.emd(X, Y, num_iter_max=0), "num_iter_max"),
    "sinkhorn max_iter=0": Case(lambda: ot.sinkhorn(X, Y, 0.1, max_iter=0), "max_iter"),
    "sinkhorn tol=-1": Case(lambda: ot.sinkhorn(X, Y, 0.1, tol=-1.0), "tol"),
    "sinkhorn tol=0": Case(lambda: ot.sinkhorn(X, Y, 0.1, tol=0.0), "tol"),
    "sinkhorn eps=0": Case(lambda: ot.sinkhorn(X, Y, 0.0), "eps"),
    "sliced_w n_projections=0": Case(lambda: ot.sliced_w(X, Y, n_projections=0), "n_projections"),
    "sliced_w seed=-1": Case(lambda: ot.sliced_w(X, Y, seed=-1), "seed"),
    "stiffness_ramp dim=0": Case(lambda: _ramp(dim=0), "dim"),
    "stiffness_ramp k0=0": Case(lambda: _ramp(k0=0.0), "k0"),
    "quench dim=0": Case(lambda: thermo.quench(1.0, 2.0, 1.0, dim=0), "dim"),
    "stationary_covariance T=0": Case(lambda: thermo.stationary_covariance(-np.eye(2), 0.0), "T"),
    "solve_moments rtol=-1": Case(lambda: thermo.solve_moments(_ramp(), rtol=-1.0), "rtol"),
    "solve_moments t_eval=2": Case(lambda: thermo.solve_moments(_ramp(), t_eval=2), "t_eval"),
    "simulate_particles n_particles=0": Case(
        lambda: thermo.simulate_particles(_ramp(), 0), "n_particles"
    ),
    "tur n_samples=0": Case(lambda: thermo.tur(_sol(), lambda x: x, n_samples=0), "n_samples"),
    "tur seed=-1": Case(lambda: thermo.tur(_sol(), lambda x: x, seed=-1), "seed"),
    "w1_speed n_nodes=0": Case(lambda: thermo.w1_speed(_sol(), n_nodes=0), "n_nodes"),
    "Protocol tau=-1": Case(lambda: thermo.Protocol(-np.eye(1), np.zeros(1), 1.0, -1.0), "tau"),
    "two_peaks n=0": Case(lambda: data.two_peaks(0), "n"),
    "two_peaks dim=0": Case(lambda: data.two_peaks(10, dim=0), "dim"),
    "two_peaks std=-1": Case(lambda: data.two_peaks(10, std=-1.0), "std"),
    "two_peaks seed=-1": Case(lambda: data.two_peaks(10, seed=-1), "seed"),
    "swiss_roll noise=-1": Case(lambda: data.swiss_roll(10, noise=-1.0), "noise"),
    "gaussians_grid side=0": Case(lambda: data.gaussians_grid(10, side=0), "side"),
    "gaussians_ring modes=0": Case(lambda: data.gaussians_ring(10, modes=0), "modes"),
    "gaussian_mixture_1d stds=-1": Case(
        lambda: data.gaussian_mixture_1d(10, (0.0,), (-1.0,)), "stds"
    ),
    "toy_2d seed=-1": Case(lambda: data.toy_2d("8gaussians", 10, seed=-1), "seed"),
    "digits seed=-1": Case(lambda: data.digits(seed=-1), "seed"),
    "PorousMedium m=0": Case(lambda: functionals.PorousMedium(0.0), "m"),
    "jko_1d tau=-1": Case(
        lambda: jko.jko_1d(functionals.Entropy(), _q(), _jko_grid(), -1.0, 1), "tau"
    ),
    "jko_1d steps=0": Case(
        lambda: jko.jko_1d(functionals.Entropy(), _q(), _jko_grid(), 0.1, 0), "steps"
    ),
    "jsd_geodesic_convexity n_pairs=0": Case(
        lambda: jko.jsd_geodesic_convexity(_q(), _jko_grid(), 0.1, n_pairs=0), "n_pairs"
    ),
    "toy_metrics sigma=-1": Case(lambda: metrics.toy_metrics(X, X, -1.0), "sigma"),
    "inception_like_score splits=0": Case(
        lambda: metrics.inception_like_score(np.full((4, 2), 0.5), splits=0), "splits"
    ),
    "precision_recall_knn k=0": Case(lambda: metrics.precision_recall_knn(X, X, k=0), "k"),
    "DigitsFeatures seed=-1": Case(lambda: metrics.DigitsFeatures(seed=-1), "seed"),
    "dot_target K=0": Case(lambda: dot.dot_target(_D, Z0, 0.0), "K"),
    "dot_target steps=-1": Case(lambda: dot.dot_target(_D, Z0, 1.0, steps=-1), "steps"),
    "dot_target lr=-1": Case(lambda: dot.dot_target(_D, Z0, 1.0, lr=-1.0), "lr"),
    "effective_lipschitz n_pairs=0": Case(
        lambda: dot.effective_lipschitz(_D, _G, n_pairs=0, latent_dim=2), "n_pairs"
    ),
    "drs n_samples=0": Case(lambda: dot.drs(_D, _G, "normal", 0, latent_dim=2), "n_samples"),
    "mh_gan n_proposals=0": Case(
        lambda: dot.mh_gan(_D, _G, "normal", Z0, 0, latent_dim=2), "n_proposals"
    ),
    "ddls step_size=-1": Case(lambda: dot.ddls(_D, _G, Z0, -1.0, 1), "step_size"),
    "ddls n_steps=-1": Case(lambda: dot.ddls(_D, _G, Z0, 0.1, -1), "n_steps"),
    "CondOT tau=0": Case(lambda: flowmatch.CondOT(tau=0.0), "tau"),
    "ImprovedDDPMCosine offset=-1": Case(
        lambda: flowmatch.ImprovedDDPMCosine(offset=-1.0), "offset"
    ),
    "ExactVelocity query_chunk=0": Case(
        lambda: flowmatch.ExactVelocity(_sched(), DATA, query_chunk=0), "query_chunk"
    ),
    "KernelVelocity bandwidth=-1": Case(
        lambda: flowmatch.KernelVelocity(_sched(), DATA, DATA, bandwidth=-1.0), "bandwidth"
    ),
    "integrate n_steps=0": Case(
        lambda: flowmatch.integrate(_zero_velocity, DATA, 0, 1, n_steps=0), "n_steps"
    ),
    "sample_forward tau=-1": Case(
        lambda: flowmatch.sample_forward(_zero_velocity, DATA, -1.0), "tau"
    ),
    "standard_normal dim=0": Case(lambda: flowmatch.standard_normal(0), "dim"),
    "conditional_kinetic_energy dim=0": Case(
        lambda: flowmatch.conditional_kinetic_energy(_sched(), dim=0), "dim"
    ),
    "w2_lower_bound tau=0": Case(lambda: flowmatch.w2_lower_bound(DATA, DATA, 0.0), "tau"),
    "MLPGenerator latent_dim=0": Case(lambda: gan.MLPGenerator(latent_dim=0), "latent_dim"),
    "MLPGenerator hidden=(0,)": Case(lambda: gan.MLPGenerator(hidden=(0,)), "hidden"),
    "MLPDiscriminator in_dim=-1": Case(lambda: gan.MLPDiscriminator(in_dim=-1), "in_dim"),
    "ConvGenerator8 latent_dim=0": Case(lambda: gan.ConvGenerator8(latent_dim=0), "latent_dim"),
    "sample_latent n=0": Case(lambda: gan.sample_latent(0, 2), "n"),
    "sample_latent dim=0": Case(lambda: gan.sample_latent(2, 0), "dim"),
    "build_seeded seed=-1": Case(lambda: gan.build_seeded(-1, lambda: None), "seed"),
    "WGANGPLoss gp_weight=-1": Case(lambda: gan.WGANGPLoss(gp_weight=-1.0), "gp_weight"),
    "line_grid n=0": Case(lambda: gan.line_grid(0.0, 1.0, 0), "n"),
    "GaussianAffineModel dim=0": Case(
        lambda: gan.GaussianAffineModel(0, gan.gaussian_logpdf([0.0], [[1.0]])), "dim"
    ),
    "simulate_particles n_out=1": Case(
        lambda: thermo.simulate_particles(_ramp(), 10, n_out=1), "n_out"
    ),
    "effective_lipschitz seed=-1": Case(
        lambda: dot.effective_lipschitz(_D, _G, seed=-1, latent_dim=2), "seed"
    ),
    "kinetic_cost n_x=0": Case(
        lambda: flowmatch.kinetic_cost(
            flowmatch.GaussianMixtureVelocity(_sched(), [[0.0]], [[[1.0]]]), n_x=0
        ),
        "n_x",
    ),
}

NOT_FINITE = {
    "random_geometric radius=nan": Case(lambda: graph.random_geometric(10, NAN, seed=0), "radius"),
    "random_geometric center nan": Case(
        lambda: graph.random_geometric(10, 0.1, seed=0, center=(0.5, NAN)), "center"
    ),
    "grid spacing=inf": Case(lambda: graph.grid(4, spacing=INF), "spacing"),
    "solve atol=nan": Case(lambda: _solve(atol=NAN), "atol"),
    "solve t_span nan": Case(lambda: graph.solve(_flow(), _rho(), (0.0, NAN)), "t_span"),
    "solve rho0 nan": Case(lambda: graph.solve(_flow(), np.full(9, NAN), (0, 1)), "rho0"),
    "w2 x nan": Case(lambda: ot.w2(np.where(X > 0, NAN, X), Y), "x"),
    "w2 y inf": Case(lambda: ot.w2(X, np.full((3, 2), INF)), "y"),
    "sinkhorn eps=nan": Case(lambda: ot.sinkhorn(X, Y, NAN), "eps"),
    "emd p=inf": Case(lambda: ot.emd(X, Y, p=INF), "p"),
    "stiffness_ramp tau=nan": Case(lambda: _ramp(tau=NAN), "tau"),
    "rotational omega=nan": Case(lambda: thermo.rotational(1.0, NAN, 1.0), "omega"),
    "stationary_covariance A nan": Case(
        lambda: thermo.stationary_covariance(np.array([[NAN, 0.0], [0.0, -1.0]]), 1.0), "A"
    ),
    "stationary_covariance T=nan": Case(lambda: thermo.stationary_covariance(-np.eye(2), NAN), "T"),
    "gaussian_entropy cov nan": Case(lambda: thermo.gaussian_entropy(np.full((2, 2), NAN)), "cov"),
    "two_peaks separation=inf": Case(lambda: data.two_peaks(10, separation=INF), "separation"),
    "PotentialEnergy V nan": Case(lambda: functionals.PotentialEnergy([0.0, NAN]), "V"),
    "mccann_interpolation t=nan": Case(
        lambda: jko.mccann_interpolation(np.linspace(0, 1, 5), np.linspace(1, 2, 5), NAN), "t"
    ),
    "frechet_distance C1 nan": Case(
        lambda: metrics.frechet_distance([0.0], [[NAN]], [0.0], [[1.0]]), "C1"
    ),
    "dot_target lr=nan": Case(lambda: dot.dot_target(_D, Z0, 1.0, lr=NAN), "lr"),
    "ExactVelocity data nan": Case(
        lambda: flowmatch.ExactVelocity(_sched(), torch.full((3, 2), NAN)), "data"
    ),
    "integrate t1=nan": Case(lambda: flowmatch.integrate(_zero_velocity, DATA, 0, NAN), "t1"),
    "VPLinear beta_min=nan": Case(lambda: flowmatch.VPLinear(beta_min=NAN), "beta_min"),
    "curvature delta=nan": Case(
        lambda: gan.curvature(
            gan.GaussianAffineModel(1, gan.gaussian_logpdf([0.0], [[1.0]])),
            torch.tensor([1.0, 0.0]),
            torch.tensor([1.0, 0.0]),
            torch.tensor([0.0, 1.0]),
            NAN,
            gan.line_grid(-1.0, 1.0, 5).points,
        ),
        "delta",
    ),
    "gaussians_ring radius=nan": Case(lambda: data.gaussians_ring(10, radius=NAN), "radius"),
    "antisymmetric_norm H nan": Case(lambda: gan.antisymmetric_norm([[NAN]]), "H"),
}

BAD_SHAPE = {
    "random_geometric center length": Case(
        lambda: graph.random_geometric(10, 0.1, seed=0, center=(0.5,)), "center"
    ),
    "from_edges ragged": Case(lambda: graph.from_edges([[0, 1], [1]]), "edges"),
    "from_scipy not square": Case(lambda: graph.from_scipy(np.ones((2, 3))), "adjacency"),
    "gradient u length": Case(lambda: graph.gradient(_graph(), [1.0, 2.0]), "u"),
    "solve rho0 length": Case(lambda: graph.solve(_flow(), np.full(8, 1 / 8), (0, 1)), "rho0"),
    "solve t_span reversed": Case(lambda: graph.solve(_flow(), _rho(), (1.0, 0.0)), "t_span"),
    "solve t_eval decreasing": Case(
        lambda: graph.solve(_flow(), _rho(), (0.0, 1.0), [0.5, 0.2]), "t_eval"
    ),
    "potential drho not tangent": Case(
        lambda: graph.potential(_graph(), _rho(), np.ones(9)), "drho"
    ),
    "w2 x ragged": Case(lambda: ot.w2([[0.0, 1.0], [2.0]], Y), "x"),
    "w2 x 3-D": Case(lambda: ot.w2(np.zeros((2, 2, 2)), Y), "x"),
    "w2 dimension mismatch": Case(lambda: ot.w2(X1, Y), "x"),
    "w2 a length": Case(lambda: ot.w2(X, Y, a=[0.5, 0.5]), "a"),
    "w_1d not on the line": Case(lambda: ot.w_1d(X, Y), "x"),
    "w2_gaussian C1 shape": Case(
        lambda: ot.w2_gaussian([0.0, 0.0], np.eye(3), [0.0, 0.0], np.eye(2)), "C1"
    ),
    "stationary_covariance A not square": Case(
        lambda: thermo.stationary_covariance(np.ones((2, 3)), 1.0), "A"
    ),
    "stationary_covariance A ragged": Case(
        lambda: thermo.stationary_covariance([[-1.0, 0.0], [0.0]], 1.0), "A"
    ),
    "gaussian_entropy cov not square": Case(
        lambda: thermo.gaussian_entropy(np.ones((2, 3))), "cov"
    ),
    "stiffness_ramp center length": Case(lambda: _ramp(dim=2, center=[0.0]), "center"),
    "gaussian_mixture_1d weights length": Case(
        lambda: data.gaussian_mixture_1d(10, (0.0, 1.0), (1.0, 1.0), (1.0,)), "weights"
    ),
    "PotentialEnergy V matrix": Case(lambda: functionals.PotentialEnergy(np.ones((2, 2))), "V"),
    "w2_quantile X ragged": Case(lambda: jko.w2_quantile([[0.0, 1.0], [2.0]], [0.0, 1.0]), "X"),
    "fid_from_features f1 ragged": Case(
        lambda: metrics.fid_from_features([[0.0, 1.0], [2.0]], X), "f1"
    ),
    "frechet_distance mu shapes": Case(
        lambda: metrics.frechet_distance([0.0, 1.0], np.eye(2), [0.0], np.eye(1)), "mu1"
    ),
    "ExactVelocity data 1-D": Case(
        lambda: flowmatch.ExactVelocity(_sched(), torch.zeros(5)), "data"
    ),
    "GaussianMixture means ragged": Case(
        lambda: flowmatch.GaussianMixture([[0.0, 1.0], [2.0]], [np.eye(2), np.eye(2)]), "means"
    ),
    "ot_couple sizes": Case(lambda: flowmatch.ot_couple(DATA, DATA[:3]), "noise"),
    "decompose H not square": Case(lambda: gan.decompose(np.ones((2, 3))), "H"),
    "lyapunov_velocity cov 2-D": Case(
        lambda: thermo.lyapunov_velocity(np.eye(2), np.eye(2)), "cov"
    ),
    "ddls z0 ragged": Case(lambda: dot.ddls(_D, _G, [[0.0, 1.0], [2.0]], 0.1, 1), "z0"),
    "calibrate real_logits ragged": Case(
        lambda: dot.calibrate([[1.0, 2.0], [3.0]], [0.0, 1.0]), "real_logits"
    ),
    "eigenvalues H ragged": Case(lambda: gan.eigenvalues([[1.0, 2.0], [3.0]]), "H"),
}

BAD_RANGE = {
    "grid periodic axis of 2": Case(lambda: graph.grid((2, 3), periodic=True), "periodic"),
    "sinkhorn tol=inf": Case(lambda: ot.sinkhorn(X, Y, 0.1, tol=INF), "tol"),
    "stationary_covariance A unstable": Case(
        lambda: thermo.stationary_covariance(np.eye(2), 1.0), "A"
    ),
    "digits test_fraction=1.5": Case(lambda: data.digits(test_fraction=1.5), "test_fraction"),
    "PorousMedium m=1": Case(lambda: functionals.PorousMedium(1.0), "m"),
    "FDivergence q zero": Case(lambda: functionals.FDivergence("kl", [0.0, 1.0]), "q"),
    "Entropy value rho<0": Case(lambda: functionals.Entropy().value([-1.0, 2.0]), "rho"),
    "mccann_interpolation t=2": Case(
        lambda: jko.mccann_interpolation(np.linspace(0, 1, 5), np.linspace(1, 2, 5), 2.0), "t"
    ),
    "drs percentile=150": Case(
        lambda: dot.drs(_D, _G, "normal", 4, percentile=150.0, latent_dim=2), "percentile"
    ),
    "line_grid lo >= hi": Case(lambda: gan.line_grid(1.0, 0.0, 5), "lo"),
    "integrate t0 == t1": Case(lambda: flowmatch.integrate(_zero_velocity, DATA, 1.0, 1.0), "t0"),
}

UNKNOWN_OPTION = {
    "divergence mean": Case(
        lambda: graph.divergence(_graph(), _rho(), np.ones(12), mean="geometric"), "mean"
    ),
    "WassersteinFlow mean": Case(
        lambda: graph.WassersteinFlow(_graph(), functionals.Entropy(), mean="max"), "mean"
    ),
    "solve method": Case(lambda: _solve(method="euler"), "method"),
    "edi_check method": Case(
        lambda: graph.edi_check(_wflow(), _rho(), [0.0, 0.1], method="euler"), "method"
    ),
    "toy_2d name": Case(lambda: data.toy_2d("moons", 10), "2-D data set"),
    "digits split": Case(lambda: data.digits("val"), "split"),
    "FDivergence f": Case(lambda: functionals.FDivergence("tv", [0.5, 0.5]), "f-divergence"),
    "quantile_from_masses interpolation": Case(
        lambda: jko.quantile_from_masses(np.full(4, 0.25), np.linspace(0, 1, 5), 5, "cubic"),
        "interpolation",
    ),
    "dot_target optimizer": Case(
        lambda: dot.dot_target(_D, Z0, 1.0, optimizer="rmsprop"), "optimizer"
    ),
    "dot_target mode": Case(lambda: dot.dot_target(_D, Z0, 1.0, mode="greedy"), "mode"),
    "calibrate method": Case(
        lambda: dot.calibrate(np.ones(4), np.zeros(4), method="platt"), "method"
    ),
    "KernelVelocity coupling": Case(
        lambda: flowmatch.KernelVelocity(_sched(), DATA, DATA, coupling="sinkhorn"), "coupling"
    ),
    "integrate method": Case(
        lambda: flowmatch.integrate(_zero_velocity, DATA, 0, 1, method="heun"), "method"
    ),
    "MLPGenerator activation": Case(lambda: gan.MLPGenerator(activation="gelu"), "activation"),
    "make_loss name": Case(lambda: gan.make_loss("gan"), "GAN loss"),
    "make_loss fgan name": Case(lambda: gan.make_loss("fgan-tv"), "GAN loss"),
}

NOT_POSITIVE_DEFINITE = {
    "gaussian_entropy negative definite": Case(lambda: thermo.gaussian_entropy(-np.eye(2)), "cov"),
    "gaussian_entropy indefinite": Case(
        lambda: thermo.gaussian_entropy(np.array([[1.0, 2.0], [2.0, 1.0]])), "cov"
    ),
    "gaussian_entropy batch with one bad": Case(
        lambda: thermo.gaussian_entropy(np.stack([np.eye(2), -np.eye(2)])), "cov"
    ),
    "w2_gaussian C2": Case(lambda: ot.w2_gaussian(0.0, 1.0, 0.0, -1.0), "C2"),
    "geodesic_protocol C1": Case(
        lambda: thermo.geodesic_protocol(0.0, 1.0, 0.0, -1.0, 1.0), "C1"
    ),
    "frechet_distance C2": Case(
        lambda: metrics.frechet_distance([0.0], [[1.0]], [0.0], [[-1.0]]), "C2"
    ),
    "Normal cov": Case(lambda: flowmatch.Normal([0.0, 0.0], -np.eye(2)), "cov"),
    "gaussian_logpdf cov": Case(lambda: gan.gaussian_logpdf([0.0], [[-1.0]]), "cov"),
}

TABLES = {
    "wrong type": (WRONG_TYPE, TypeError),
    "non-integer size": (NON_INTEGER, TypeError),
    "zero or negative": (NON_POSITIVE, ValueError),
    "NaN or inf": (NOT_FINITE, ValueError),
    "wrong shape": (BAD_SHAPE, ValueError),
    "out of range": (BAD_RANGE, ValueError),
    "unknown option": (UNKNOWN_OPTION, ValueError),
    "not positive definite": (NOT_POSITIVE_DEFINITE, ValueError),
}
CASES = [
    pytest.param(case, kind, id=f"{cls}: {name}")
    for cls, (table, kind) in TABLES.items()
    for name, case in table.items()
]


@pytest.mark.parametrize(("case", "kind"), CASES)
def test_bad_input_is_refused_naming_the_argument(case: Case, kind: type[Exception]) -> None:
    other = ValueError if kind is TypeError else TypeError
    with pytest.raises(kind) as info:
        case.call()
    assert not isinstance(info.value, other), f"{type(info.value).__name__}: {info.value}"
    assert re.search(rf"(?<![\w.]){re.escape(case.arg)}(?!\w)", str(info.value)), str(info.value)

