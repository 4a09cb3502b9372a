"""The game Jacobian of the simultaneous gradient over GAN training (seed 001 §6, §10.2).

Its antisymmetric part A is set beside the Hessian of a scalar objective J(theta), whose
antisymmetric part K (the seed's Def. 6.5) is zero up to rounding (Schwarz).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.functional import softplus

from ottokit.experiments.gan_geometry.config import DT, GanGeometryConfig
from ottokit.gan.game import GameJacobian, antisymmetric_norm, eigenvalues, hessian
from ottokit.gan.nets import MLPDiscriminator, MLPGenerator, build_seeded, sample_latent
from ottokit.gan.train import GANTrainConfig, train_gan
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = [
    "GameJacobianStudy",
    "GameSnapshot",
    "checks",
    "comparisons",
    "figure",
    "study",
    "summary",
]

NAME = "game"
CAPTION = "Antisymmetric part of the game Jacobian over training, and of the Hessian of J"


@dataclass(frozen=True)
class GameSnapshot:
    """The game Jacobian H of the non-saturating GAN at one training step.

    Attributes:
        step: the training step.
        antisym_ratio: ||A||_F / ||H||_F, A = (H - H^T)/2.
        hessian_antisym_ratio: ||K||_F / ||Hess J||_F for J(theta) = E softplus(-D(G(z))).
        antisym_xi_ratio: ||A^T xi|| / ||xi||, xi the simultaneous gradient.
        max_abs_imag_over_abs: max |Im eigenvalue| / max |eigenvalue| of H.
        eig_real: real parts of H's eigenvalues.
        eig_imag: their imaginary parts.
        n: the size of H (generator plus discriminator parameters).
    """

    step: int
    antisym_ratio: float
    hessian_antisym_ratio: float
    antisym_xi_ratio: float
    max_abs_imag_over_abs: float
    eig_real: list[float]
    eig_imag: list[float]
    n: int


@dataclass(frozen=True)
class GameJacobianStudy:
    """Snapshots of the game Jacobian every ``game_every`` steps of training.

    Attributes:
        snapshots: one per snapshot step, the first at step 0.
    """

    snapshots: list[GameSnapshot]

    @property
    def k_max(self) -> float:
        """The largest ||K|| / ||Hess J|| over the snapshots."""
        return max(s.hessian_antisym_ratio for s in self.snapshots)

    @property
    def a_min(self) -> float:
        """The smallest ||A|| / ||H|| over the snapshots."""
        return min(s.antisym_ratio for s in self.snapshots)


def _ns_losses(real: torch.Tensor, z: torch.Tensor):
    """Non-saturating GAN losses (L_G, L_D) as a function of bound networks."""

    def losses(G_fn, D_fn):
        fake = G_fn(z)
        L_G = softplus(-D_fn(fake)).mean()
        L_D = softplus(-D_fn(real)).mean() + softplus(D_fn(fake)).mean()
        return L_G, L_D

    return losses


def _snapshot(
    step: int, G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor
) -> GameSnapshot:
    G64 = copy.deepcopy(G).to(DT)
    D64 = copy.deepcopy(D).to(DT)
    r64, z64 = real.to(DT), z.to(DT)
    game = GameJacobian.from_modules(G64, D64, _ns_losses(r64, z64))
    H = game.full()
    ev = eigenvalues(H)
    xi = game.xi()
    d_params = {k: v.detach() for k, v in D64.named_parameters()}

    def J(gp):
        fake = torch.func.functional_call(G64, gp, (z64,))
        return softplus(-torch.func.functional_call(D64, d_params, (fake,))).mean()

    Hess, K = hessian(J, {k: v.detach() for k, v in G64.named_parameters()})
    return GameSnapshot(
        step=step,
        antisym_ratio=antisymmetric_norm(H),
        hessian_antisym_ratio=float(torch.linalg.norm(K) / torch.linalg.norm(Hess)),
        antisym_xi_ratio=float(game.antisymmetric_xi_norm() / torch.linalg.norm(xi)),
        max_abs_imag_over_abs=float(ev.imag.abs().max() / ev.abs().max()),
        eig_real=ev.real.tolist(),
        eig_imag=ev.imag.tolist(),
        n=int(H.shape[0]),
    )


def study(config: GanGeometryConfig, checkpoint_dir: Path) -> GameJacobianStudy:
    """Train the seed's 1-D Gaussian GAN, taking snapshots; checkpoints go to
    ``checkpoint_dir``."""
    G = build_seeded(config.seed, lambda: MLPGenerator(16, (32,), 1))
    D = build_seeded(config.seed + 1, lambda: MLPDiscriminator(1, (32,)))
    gen = torch.Generator().manual_seed(config.seed + 2)
    real = 2.0 + 0.5 * torch.randn(config.game_batch, 1, generator=gen)
    z = sample_latent(config.game_batch, 16, generator=gen)
    snaps = [_snapshot(0, G, D, real, z)]

    def callback(step: int, _metrics: dict[str, float]) -> None:
        if step % config.game_every == 0:
            snaps.append(_snapshot(step, G, D, real, z))

    def target(n: int, g: torch.Generator) -> torch.Tensor:
        return 2.0 + 0.5 * torch.randn(n, 1, generator=g)

    train_gan(
        G,
        D,
        "ns",
        target,
        g_optimizer=torch.optim.Adam(G.parameters(), lr=2e-3),
        d_optimizer=torch.optim.Adam(D.parameters(), lr=5e-3, betas=(0.5, 0.999)),
        config=GANTrainConfig(
            steps=config.game_steps,
            batch_size=256,
            eval_every=0,
            eval_metric="none",
            checkpoint_every=config.game_steps,
            seed=config.seed,
        ),
        checkpoint_dir=checkpoint_dir,
        callback=callback,
    )
    return GameJacobianStudy(snapshots=snaps)


def checks(s: GameJacobianStudy) -> list[Check]:
    """Def. 6.5: K = 0 for a Hessian; the game Jacobian's A is not zero."""
    snaps = s.snapshots
    return [
        Check(
            "Def. 6.5: K = antisymmetric part of the Hessian of J(theta) is zero (to rounding)",
            bool(s.k_max <= 1e-12),
            f"max ||K||/||Hess J|| over {len(snaps)} snapshots = {s.k_max:.2g} (Schwarz: a "
            "Hessian is symmetric); the game Jacobian's ||A||/||H|| is at least "
            f"{s.a_min:.3g} at every snapshot",
        ),
        Check(
            "The game Jacobian of the simultaneous gradient has a non-zero antisymmetric part",
            bool(s.a_min > 1e-3),
            "||A||_F/||H||_F over training: "
            + ", ".join(
                f"{x.step}: {x.antisym_ratio:.3f}" for x in snaps[:: max(1, len(snaps) // 6)]
            ),
        ),
    ]


def comparisons(s: GameJacobianStudy) -> list[Comparison]:
    """||K|| / ||Hess J|| beside Schwarz's 0."""
    return [Comparison("max ||K|| / ||Hess J||", f"{s.k_max:.2g}", 0, "REFERENCE.md: Schwarz")]


def summary(s: GameJacobianStudy) -> str:
    """One clause of the experiment's summary."""
    return f"the Hessian's K is {s.k_max:.1g} while the game's ||A||/||H|| is >= {s.a_min:.2f}"


def figure(s: GameJacobianStudy, path: Path) -> Path:
    """||A||/||H|| and ||K||/||Hess|| over training (left); H's last spectrum (right)."""
    fig, (a1, a2) = new_figure(1, 2, figsize=(11, 4))
    snaps = s.snapshots
    steps = [x.step for x in snaps]
    a1.semilogy(steps, [x.antisym_ratio for x in snaps], "o-", label="game: ||A||/||H||")
    a1.semilogy(steps, [x.antisym_xi_ratio for x in snaps], "^-", label="game: ||A^T xi||/||xi||")
    a1.semilogy(
        steps,
        [max(x.hessian_antisym_ratio, 1e-18) for x in snaps],
        "s-",
        label="Hessian of J: ||K||/||Hess||",
    )
    a1.set_xlabel("training step")
    a1.legend(fontsize=8)
    last = snaps[-1]
    a2.scatter(last.eig_real, last.eig_imag, s=8)
    a2.set_xlabel("Re eigenvalue of H")
    a2.set_ylabel("Im")
    a2.set_title(f"game Jacobian at step {last.step}", fontsize=10)
    return save_figure(fig, path)
