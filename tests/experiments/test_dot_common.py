"""The seed-003 comparison harness: named random streams and one record shape for both
experiments (dot-toy ascends naively in target space, dot-digits in latent space)."""

from __future__ import annotations

import math
from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ottokit.dot import effective_lipschitz
from ottokit.experiments._dot_common import (
    NAIVE,
    Streams,
    compare_methods,
    summarise_seeds,
)
from ottokit.gan.nets import MLPDiscriminator, MLPGenerator, build_seeded
from ottokit.priors import Prior

CPU = torch.device("cpu")
CFG = SimpleNamespace(
    n_eval=64,
    n_calibration=32,
    dot_steps=5,
    dot_lr=0.01,
    k_pairs=16,
    k_factor=1.5,
    drs_percentile=95.0,
    drs_pilot=64,
    mh_proposals=4,
    ddls_steps=3,
    ddls_step=1e-3,
)


def test_streams_are_reproducible_distinct_and_32_bit() -> None:
    a, b = Streams.from_seed(3), Streams.from_seed(3)
    assert a == b
    seeds = [getattr(a, f.name) for f in fields(Streams)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**32 for s in seeds)
    other = Streams.from_seed(4)
    assert not set(seeds) & {getattr(other, f.name) for f in fields(Streams)}
    # a purpose's torch generator is that stream's seed
    g = a.generator("latents", CPU)
    expected = torch.rand(5, generator=torch.Generator().manual_seed(a.latents))
    assert torch.equal(torch.rand(5, generator=g), expected)


def test_streams_are_spawned_children_so_a_new_purpose_keeps_the_others() -> None:
    n = len(fields(Streams))
    more = np.random.SeedSequence(3).spawn(n + 1)
    assert [int(c.generate_state(1)[0]) for c in more[:n]] == [
        getattr(Streams.from_seed(3), f.name) for f in fields(Streams)
    ]


def _nets() -> tuple[torch.nn.Module, torch.nn.Module]:
    G = build_seeded(0, lambda: MLPGenerator(2, (8,), 2)).eval().requires_grad_(False)
    D = build_seeded(1, lambda: MLPDiscriminator(2, (8,))).eval().requires_grad_(False)
    return G, D


@pytest.mark.parametrize("naive", ["target", "latent"])
def test_compare_methods_records_the_same_keys_for_either_naive_space(naive: str) -> None:
    G, D = _nets()
    streams, prior = Streams.from_seed(5), Prior("uniform", (2,))
    real = torch.rand(96, 2, generator=torch.Generator().manual_seed(2)) - 0.5
    runs = compare_methods(
        G, D, prior, CFG, streams, real_calibration=real[:32], real_chains=real[32:],
        optimizer="adam", clip=2.0, naive=naive, ratio=None, device=CPU,
    )  # fmt: skip
    methods = ["generator", NAIVE[naive], "DOT target", "DOT latent", "DRS", "MH-GAN", "DDLS"]
    assert list(runs.samples) == methods and set(runs.seconds) == set(methods)
    assert set(runs.transports) == {NAIVE[naive], "DOT target", "DOT latent"}
    diag = runs.diagnostics()
    assert set(diag) == {*runs.transports, "calibration", "DRS", "MH-GAN", "DDLS"}
    assert set(diag["DRS"]) == {"acceptance_rate", "proposals_per_sample", "n_returned"}
    for label in methods:
        assert runs.samples[label].shape == (CFG.n_eval, 2)
        assert runs.samples_per_s(label) > 0
    # the transports start from G(z0), z0 drawn from the latent stream
    z0 = prior.sample(CFG.n_eval, generator=streams.generator("latents", CPU))
    assert torch.equal(runs.latents, z0)
    with torch.no_grad():
        y0 = G(z0)
    assert all(torch.equal(y, y0) for y in runs.starts.values())
    # the generator's time is part of every method that starts from it
    for label in (*runs.transports, "DDLS"):
        assert runs.seconds[label] >= runs.seconds["generator"]
    # K = k_factor x the original rule, its pairs drawn from the Lipschitz stream
    K_eff = effective_lipschitz(D, G, prior, CFG.k_pairs, "target", seed=streams.lipschitz)
    k_eff = effective_lipschitz(D, G, prior, CFG.k_pairs, "latent", seed=streams.lipschitz)
    assert runs.K.K_eff == pytest.approx(K_eff, rel=1e-12)
    assert runs.K.k_eff == pytest.approx(k_eff, rel=1e-12)
    assert runs.K.K_used == pytest.approx(CFG.k_factor * K_eff, rel=1e-12)
    assert runs.transports["DOT target"].K == pytest.approx(runs.K.K_used, rel=1e-12)
    assert runs.transports["DOT latent"].K == pytest.approx(runs.K.k_used, rel=1e-12)
    # the transport records, recomputed: objective ||x - y0 + o|| - D(x)/K at both ends
    t, x = runs.transports["DOT target"], runs.samples["DOT target"].double()
    with torch.no_grad():
        d0, d1 = D(y0).double(), D(runs.samples["DOT target"]).double()
    cost = torch.linalg.vector_norm(x - y0.double() + 1e-3, dim=1)
    start = math.sqrt(2) * 1e-3 - d0.mean().item() / t.K
    assert t.objective_start == pytest.approx(start, abs=1e-6)
    assert t.objective_end == pytest.approx((cost - d1 / t.K).mean().item(), abs=1e-5)
    assert t.mean_D_after == pytest.approx(d1.mean().item(), rel=1e-12)
    assert t.mean_displacement == pytest.approx(
        torch.linalg.vector_norm(x - y0.double(), dim=1).mean().item(), rel=1e-9
    )
    assert float(runs.samples["DOT target"].abs().max()) <= 2.0
    assert 0.0 < diag["DRS"]["acceptance_rate"] <= 1.0
    assert diag["DRS"]["n_returned"] == CFG.n_eval
    assert 0.0 <= diag["MH-GAN"]["never_moved_fraction"] <= 1.0


def test_compare_methods_is_reproducible() -> None:
    G, D = _nets()
    real = torch.rand(96, 2, generator=torch.Generator().manual_seed(2)) - 0.5

    def once():
        return compare_methods(
            G, D, Prior("uniform", (2,)), CFG, Streams.from_seed(5), real_calibration=real[:32],
            real_chains=real[32:], optimizer="sgd", clip=2.0, naive="target", device=CPU,
        )  # fmt: skip

    a, b = once(), once()
    for label in a.samples:
        assert torch.equal(a.samples[label], b.samples[label]), label
    assert a.diagnostics() == b.diagnostics()


def test_summarise_seeds_spread() -> None:
    s = summarise_seeds([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["std"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert (s["min"], s["max"]) == (1.0, 4.0)
    assert summarise_seeds([5.0])["std"] == 0.0
    assert math.isnan(summarise_seeds([])["mean"])
