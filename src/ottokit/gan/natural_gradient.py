"""Damped natural gradient with the pullback metric (seed 001 Algorithm 2, Prop. 8.3, 16.1).

:class:`NaturalGradient` is a ``torch.optim.Optimizer`` implementing seed 001 Algorithm 2
(§15),

    theta_{k+1} = theta_k - eta (g_hat + lambda I)^{-1} grad J(theta_k),

with heavy-ball momentum in the form of seed 001 Prop. 8.2 / Prop. 16.1,

    theta_k = theta_{k-1} + beta (theta_{k-1} - theta_{k-2}) - eta (g_hat + lambda I)^{-1} grad J,

and an optional Armijo sufficient-decrease safeguard (Prop. 8.3, :class:`Armijo`). The
metric g_hat is a :class:`~ottokit.gan.pullback.PullbackMetric` on the latents the trainer
passes to :meth:`NaturalGradient.set_latents`; the linear system is solved by a
:class:`~ottokit.gan.solvers.LinearSolver`. Each step publishes a frozen :class:`StepInfo`
as ``optimizer.last_step_info``.

Parameters are flattened in ``generator.parameters()`` order (trainable ones only), each
tensor row-major, as :class:`~ottokit.gan.jacobian.ParamLayout` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ottokit import distributed as D
from ottokit.gan.jacobian import ParamLayout
from ottokit.gan.pullback import PullbackMetric
from ottokit.gan.solvers import (
    CholeskyFactor,
    Factor,
    LinearSolver,
    NonFiniteError,
    SolverName,
    Woodbury,
    WoodburyFactor,
    as_solver,
)

__all__ = ["Armijo", "NaturalGradient", "StepInfo"]

DEFAULT_SAMPLER_N = 256
_STATE_KEY = "natural_gradient"


def _check_int(x: Any, name: str, lo: int) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {x!r}")


def _check_hyper(lr: Any, damping: Any, momentum: Any) -> None:
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}; try 0.1")
    if not isinstance(damping, (int, float)) or not math.isfinite(damping) or damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping!r}; use a small value such as 1e-3")
    if not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}; the seed uses 0.85")


@dataclass(frozen=True)
class Armijo:
    """The sufficient-decrease safeguard J(theta + d) <= J(theta) - c eta <grad J, v>.

    Args:
        c: the Armijo constant, in (0, 1).
        max_shrinks: at most this many halvings of eta before the step is rejected (>= 0).
    """

    c: float = 1e-4
    max_shrinks: int = 10

    def __post_init__(self) -> None:
        if not (isinstance(self.c, (int, float)) and 0 < self.c < 1):
            raise ValueError(f"armijo c must lie in (0, 1), got {self.c!r}; 1e-4 is usual")
        _check_int(self.max_shrinks, "max_shrinks", 0)


class _Trials(NamedTuple):
    """The safeguard's trials in one step (none without the safeguard)."""

    shrinks: int = 0
    restarts: int = 0
    rejected: bool = False
    losses: tuple[float, ...] = ()
    lipschitz_estimate: float = math.nan


@dataclass(frozen=True)
class StepInfo:
    """Diagnostics of one :meth:`NaturalGradient.step` (``optimizer.last_step_info``).

    Every numeric field is a number at every step (NaN where it does not apply), so a
    trainer can record them as series.

    Attributes:
        step: the step's index (0 for the first).
        solver: the solver that ran (``"cholesky"``, ``"cg"`` or ``"woodbury"``; the chosen
            one under ``"auto"``).
        solve_iterations, solve_residual, solve_converged: CG's iterations, relative
            residual and whether it met its tolerance (0, NaN and True for the direct
            solvers); see :class:`~ottokit.gan.solvers.SolveStats`.
        jacobian_path: ``"structured"`` or ``"torch.func"``; ``fallback_reason`` why the
            structured path did not apply (None if it did or was not asked for).
        metric_refreshed: the metric was recomputed at this step (else reused).
        metric_samples: latents in the metric; ``projected``: the damped projection was used.
        pivot_range: (min, max) squared pivot of the direct solvers' Cholesky factor;
            ``eig_range``: g_hat's eigenvalue range (``Cholesky(eig_diagnostics=True)``).
        lr_used: the step size taken (0 if the safeguard rejected the step); ``accepted``.
        grad_norm, direction_norm, grad_dot_direction: |grad J|, |v| and <grad J, v>.
        shrinks, restarts, rejected: the safeguard's halvings of eta, its trials after
            which momentum was dropped, and whether every trial failed (the parameters
            then stay unchanged); 0, 0, False without the safeguard.
        trial_losses: J at each trial point of the safeguard, in order.
        lipschitz_estimate: the smallest L consistent with Prop. 8.3's bound on the last
            momentum-free trial, 2 (J(trial) - J + eta <grad J, v>) / (eta^2 |v|^2); NaN if
            there was none.
    """

    step: int
    solver: str
    solve_iterations: int
    solve_residual: float
    solve_converged: bool
    jacobian_path: str
    fallback_reason: str | None
    metric_refreshed: bool
    metric_samples: int
    projected: bool
    pivot_range: tuple[float, float] | None
    eig_range: tuple[float, float] | None
    lr_used: float
    accepted: bool
    grad_norm: float
    direction_norm: float
    grad_dot_direction: float
    shrinks: int = 0
    restarts: int = 0
    rejected: bool = False
    trial_losses: tuple[float, ...] = ()
    lipschitz_estimate: float = math.nan


class NaturalGradient(torch.optim.Optimizer):
    r"""Damped natural gradient with the pullback metric (seed 001 Algorithm 2, Prop. 16.1).

    Each :meth:`step` reads ``grad J`` from ``.grad`` and moves

        theta_k = theta_{k-1} + beta (theta_{k-1} - theta_{k-2}) - eta v,
        v = (g_hat + lambda I)^{-1} grad J(theta_{k-1}),

    (``eta = lr``, ``lambda = damping``, ``beta = momentum``; beta = 0 is Algorithm 2 /
    Def. 13.1, beta > 0 the heavy-ball form of Prop. 8.2 / 16.1). The displacement
    ``theta_k - theta_{k-1}`` is kept in the state as ``momentum_buffer``.

    The metric ``g_hat = (1/m) sum_i J(z_i)^T J(z_i)`` (:class:`PullbackMetric`) uses the
    latents passed by :meth:`set_latents` (the trainer's batch; the ones set last are kept
    until replaced), subsampled without replacement to ``metric_samples`` of them if given,
    otherwise ``latent_sampler(n)`` with ``n = metric_samples or 256``. ``structured``
    chooses its Jacobian path (``"auto"``: the per-sample structured path for MLPs,
    ``torch.func`` otherwise). The solver is a name (``"auto"``, ``"cholesky"``, ``"cg"``,
    ``"woodbury"``, default settings) or a :class:`~ottokit.gan.solvers.LinearSolver`
    carrying its own, e.g. ``ConjugateGradient(maxiter=50, warm_start=True)``.

    Gradient and metric on the same latents. When the loss is a function of the generated
    batch G(z_1), ..., G(z_N) only and the metric uses the same latents, grad J = J^T r / N
    lies in range(J^T), and (g_hat + lambda I)^{-1} grad J = J^T (J J^T + N lambda I)^{-1} r
    stays bounded as lambda -> 0. A subsampled (``metric_samples``) or reused
    (``metric_every``) metric has another J, and the part of grad J outside its row space is
    multiplied by 1/lambda. ``project=True`` replaces grad J by its damped projection
    P grad J, P = g_hat (g_hat + lambda I)^{-1} = J^T (J J^T + N lambda I)^{-1} J, i.e.
    v = N J^T (J J^T + N lambda I)^{-2} J grad J: eigen-direction gains s / (s + lambda)^2
    <= 1/(4 lambda) instead of 1/(s + lambda); for the fresh full-batch metric it differs from
    the exact step by O(lambda / s_min).

    ``metric_every = K`` recomputes the metric and its factorisation at steps 0, K, 2K, ...
    and reuses them in between (for CG the reused object is the linearisation at the refresh
    point). The state holds everything a resume needs: ``step``, ``metric_step``, the flat
    parameters and the latents at which the metric was computed (``metric_params``,
    ``metric_latents``), the subsampling generator's state, ``momentum_buffer``, the previous
    direction and the counters. The factorisation itself is not stored: after
    :meth:`load_state_dict` it is recomputed from ``metric_params`` and ``metric_latents``
    (the same operations on the same inputs, hence bit-identical on the same machine and
    thread count).

    Safeguard (``safeguard=True`` or an :class:`Armijo`, needs a closure). Prop. 8.3 bounds
    the one-step change for an L-smooth J: J(theta - eta v) <= J(theta) - eta <grad J, v> +
    (L/2) eta^2 |v|^2. L is unknown, so the implemented test is the Armijo rule
    J(theta + d) <= J(theta) - c eta <grad J, v> on the trial displacement d
    (``beta * buffer - eta v``), which by Prop. 8.3 holds for every
    eta <= 2 (1 - c) <grad J, v> / (L |v|^2), so halving terminates. On a failure the
    momentum term is dropped first (a restart), then eta is halved up to ``max_shrinks``
    times; if every trial fails, the step is rejected (parameters unchanged, buffer cleared).
    A non-finite trial loss counts as a failure. The closure is called at each trial point;
    after an accepted step ``.grad`` holds the gradient at the new parameters, after a
    rejection the gradient at the (unchanged) parameters. The returned loss is the one at
    the starting point.

    Under torch.distributed (a process group initialised, e.g. by ``torchrun``), the latents
    given to :meth:`set_latents` are this rank's share of the metric's latents and the step
    equals the one-process step on the union of the shares (rank order). The contract: every
    rank passes a share of the same size, computes the loss through the generator wrapped
    in ``DistributedDataParallel`` (``ottokit.distributed.wrap_ddp``), whose backward leaves
    the mean of the ranks' gradients in ``.grad``, i.e. the gradient of the loss on the
    union, and gives this optimiser the unwrapped module, whose Jacobians the metric takes.
    The metric is sharded (:class:`PullbackMetric` with ``sharded=True``): with
    ``solver="cg"`` each product (1/N) J^T J v is an all-reduce of the ranks' products;
    ``"cholesky"`` all-reduces the ranks' J_r^T J_r; ``"woodbury"`` gathers the per-sample
    factors of J on every rank, or refuses with an error naming ``solver="cg"`` where they
    would not fit. The loss the closure returns is averaged over the ranks, and every value
    a decision rests on (losses in the safeguard, finiteness, CG's residuals) is the same
    on every rank, so all ranks take the same branches and call the closure equally often;
    gradients that differ between ranks (no DDP) raise. ``metric_samples`` draws the same
    subsample of the union as one process would; ``metric_latents`` in the state is the
    union, so rank 0's checkpoint resumes every rank.

    After each step ``last_step_info`` is a :class:`StepInfo` and ``last_direction`` is v.

    Args:
        params: the generator's trainable parameters (exactly those of ``generator`` with
            ``requires_grad``, in any order; one parameter group).
        generator: the module whose pullback metric is used.
        lr: eta > 0.
        damping: lambda >= 0.
        momentum: beta in [0, 1).
        solver: a name in :data:`~ottokit.gan.solvers.SOLVERS` or a ``LinearSolver``.
        metric_samples: latents used for the metric (subsample size); None = all given.
        metric_every: K >= 1, steps between metric refreshes.
        latent_sampler: ``n -> (n, ...)`` latents, used when no latents were set.
        safeguard: False, True (``Armijo()``) or an :class:`Armijo`.
        project: use the damped projection of the gradient (see above).
        structured: ``"auto"``, True or False: the metric's Jacobian path.
        chunk_size: ``vmap`` chunk size (>= 1; None: one chunk) for the Jacobian on the
            ``torch.func`` path.
        seed: seed of the generator that draws the latent subsamples.

    Raises:
        NonFiniteError: from :meth:`step` when the loss or a gradient is not finite.
        SingularMetricError: from :meth:`step` with a direct solver, lambda = 0 and a
            singular metric.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        generator: nn.Module,
        lr: float = 0.1,
        damping: float = 1e-3,
        momentum: float = 0.0,
        solver: SolverName | LinearSolver = "auto",
        *,
        metric_samples: int | None = None,
        metric_every: int = 1,
        latent_sampler: Callable[[int], Tensor] | None = None,
        safeguard: bool | Armijo = False,
        project: bool = False,
        structured: bool | Literal["auto"] = "auto",
        chunk_size: int | None = None,
        seed: int = 0,
    ) -> None:
        _check_hyper(lr, damping, momentum)
        if not (isinstance(structured, bool) or structured == "auto"):
            raise ValueError(f"structured must be 'auto', True or False, got {structured!r}")
        if not isinstance(project, bool):
            raise TypeError(f"project must be True or False, got {project!r}")
        if not isinstance(safeguard, (bool, Armijo)):
            raise TypeError(f"safeguard must be True, False or an Armijo, got {safeguard!r}")
        self.solver = as_solver(solver)
        if isinstance(self.solver, Woodbury) and damping == 0:
            raise ValueError(
                "the woodbury solver needs damping > 0 (it divides by damping); "
                "use damping such as 1e-3, or solver='cholesky' / 'cg'"
            )
        _check_int(metric_every, "metric_every", 1)
        if metric_samples is not None:
            _check_int(metric_samples, "metric_samples", 1)
        if chunk_size is not None:
            _check_int(chunk_size, "chunk_size", 1)
        if latent_sampler is not None and not callable(latent_sampler):
            raise TypeError("latent_sampler must be a callable n -> latents of shape (n, ...)")
        self.layout = ParamLayout(generator)
        super().__init__(self._ordered_params(params, generator), {
            "lr": lr, "damping": damping, "momentum": momentum,
        })  # fmt: skip
        self.generator = generator
        self.metric_samples = metric_samples
        self.metric_every = metric_every
        self.latent_sampler = latent_sampler
        self.safeguard: Armijo | None = Armijo() if safeguard is True else (safeguard or None)
        self.project = project
        self.structured = structured
        self.chunk_size = chunk_size
        self.seed = int(seed)
        self._latents: Tensor | None = None
        self._factor: Factor | None = None
        self.last_step_info: StepInfo | None = None
        self.last_direction: Tensor | None = None
        self._init_state()

    def _ordered_params(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], generator: nn.Module
    ) -> list[Tensor]:
        """``params`` checked to be the generator's trainable ones, in layout order."""
        plist = list(params)
        if plist and isinstance(plist[0], dict):
            if len(plist) != 1:
                raise ValueError(
                    "NaturalGradient takes a single parameter group (the metric couples all "
                    f"parameters), got {len(plist)} groups"
                )
            plist = list(plist[0]["params"])
        trainable = dict(generator.named_parameters())
        by_id = {id(trainable[k]): k for k in self.layout.names}
        for p in plist:
            if not isinstance(p, Tensor):
                raise TypeError(f"params must be tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(
                    "a parameter passed to NaturalGradient has requires_grad=False; pass "
                    "exactly the generator's trainable parameters, e.g. generator.parameters()"
                )
        ids = [id(p) for p in plist]
        if len(set(ids)) != len(ids) or set(ids) != set(by_id):
            raise ValueError(
                "params must be exactly the generator's trainable parameters (each once): "
                f"got {len(plist)} tensors for {len(by_id)} trainable generator parameters; "
                "use NaturalGradient(generator.parameters(), generator, ...)"
            )
        return [trainable[k] for k in self.layout.names]

    def _init_state(self) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        self.state[_STATE_KEY] = {
            "step": 0,
            "metric_step": -1,
            "metric_params": None,
            "metric_latents": None,
            "rng_state": gen.get_state(),
            "momentum_buffer": None,
            "prev_direction": None,
            "shrinks": 0,
            "restarts": 0,
            "rejections": 0,
        }

    @property
    def _st(self) -> dict[str, Any]:
        return self.state[_STATE_KEY]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state; the cached factorisation is rebuilt from the stored metric point.

        A state of another optimiser is refused before anything is loaded, so the optimiser
        is left as it was.
        """
        saved = state_dict.get("state") if isinstance(state_dict, dict) else None
        st = saved.get(_STATE_KEY) if isinstance(saved, dict) else None
        if not isinstance(st, dict) or "metric_step" not in st:
            raise ValueError(
                "this state_dict was not written by NaturalGradient (it holds no "
                f"{_STATE_KEY!r} state); load the state of a NaturalGradient optimiser"
            )
        super().load_state_dict(state_dict)
        st = self._st
        dev, dt = self.layout.device, self.layout.dtype
        for key in ("metric_params", "momentum_buffer", "prev_direction"):
            if st[key] is not None:
                st[key] = st[key].to(device=dev, dtype=dt)
        if st["metric_latents"] is not None:
            st["metric_latents"] = st["metric_latents"].to(device=dev)
        self._factor = None

    def set_latents(self, latents: Tensor) -> None:
        """Latents ``(N, ...)`` for the next metric refresh (e.g. the trainer's batch)."""
        if not isinstance(latents, Tensor) or latents.ndim < 1 or latents.shape[0] < 1:
            raise ValueError(
                "latents must be a tensor of shape (N, ...) with N >= 1, got "
                f"{getattr(latents, 'shape', type(latents))}"
            )
        self._latents = latents.detach()

    def _draw_latents(self) -> Tensor:
        """The metric's latents (this rank's share of them under torch.distributed)."""
        st = self._st
        if self._latents is not None:
            z = self._latents
            m = self.metric_samples
            counts = [int(z.shape[0])]
            if D.is_distributed() and m is not None:
                counts = D.all_gather_cat(torch.tensor(counts)).tolist()
            if m is not None and m < sum(counts):
                # the same global subsample as one process drawing from the union
                gen = torch.Generator()
                gen.set_state(st["rng_state"])
                idx = torch.randperm(sum(counts), generator=gen)[:m]
                st["rng_state"] = gen.get_state()
                ends = np.cumsum(counts)
                shares = [
                    idx[(idx >= e - c) & (idx < e)] - (e - c)
                    for e, c in zip(ends.tolist(), counts, strict=True)
                ]
                if any(len(share) == 0 for share in shares):
                    raise ValueError(
                        f"metric_samples={m} leaves a rank without metric latents; use a larger "
                        "metric_samples or fewer processes"
                    )
                z = z[shares[D.rank()].to(z.device)]
            return z
        if self.latent_sampler is not None:
            n = self.metric_samples or DEFAULT_SAMPLER_N
            z = self.latent_sampler(n)
            if not isinstance(z, Tensor) or z.ndim < 1 or z.shape[0] != n:
                raise ValueError(
                    f"latent_sampler({n}) must return a tensor of shape ({n}, ...), got "
                    f"{getattr(z, 'shape', type(z))}"
                )
            if D.is_distributed():  # rank 0's draw, split over the ranks
                z = D.shard_rows(D.broadcast(z.detach()))
            return z.detach()
        raise RuntimeError(
            "NaturalGradient needs latents for its metric: call opt.set_latents(z) before "
            "opt.step(), or pass latent_sampler=lambda n: torch.randn(n, latent_dim)"
        )

    def _metric(self, z: Tensor, theta: Tensor | None) -> PullbackMetric:
        """The metric on ``z`` at ``theta`` (None: the generator's present parameters)."""
        return PullbackMetric(
            self.generator,
            z,
            params=theta,
            chunk_size=self.chunk_size,
            structured=self.structured,
            sharded=D.is_distributed(),
        )

    def _refresh(self, lam: float) -> bool:
        """Refresh the metric and its factor when due (or rebuild it after a resume or a new
        damping); True if the metric was recomputed."""
        st = self._st
        k = st["step"]
        if st["metric_step"] < 0 or k - st["metric_step"] >= self.metric_every:
            params = self.param_groups[0]["params"]
            theta = torch.cat([p.detach().reshape(-1) for p in params]).clone()
            metric = self._metric(self._draw_latents(), None)
            self._factor = self.solver.factor(metric, lam)
            st["metric_params"] = theta
            # sharded: the union of the ranks' latents, so that any rank's state resumes all
            st["metric_latents"] = (
                D.all_gather_cat(metric.latents) if metric.sharded else metric.latents
            )
            st["metric_step"] = k
            return True
        if self._factor is None or self._factor.damping != lam:
            metric = self._metric(D.shard_rows(st["metric_latents"]), st["metric_params"])
            self._factor = self.solver.factor(metric, lam)
        return False

    def _gradient(self) -> Tensor:
        params = self.param_groups[0]["params"]
        for name, p in zip(self.layout.names, params, strict=True):
            if p.grad is None:
                raise RuntimeError(
                    f"generator parameter {name!r} has no gradient; call loss.backward() "
                    "before opt.step(), or pass a closure that does"
                )
        g = torch.cat([p.grad.reshape(-1) for p in params]).to(self.layout.dtype)
        finite = bool(torch.isfinite(g).all())
        if D.is_distributed():
            # one all-reduce: whether any rank's gradient is not finite, and whether they differ
            s = torch.stack([g.sum(), g.square().sum()]) if finite else g.new_zeros(2)
            top = D.all_reduce(torch.cat([g.new_tensor([float(not finite)]), s, -s]), "max")
            finite = not top[0] > 0
            spread = (top[1:3] + top[3:]).abs()  # max - min over the ranks of (sum g, |g|^2)
            scale = torch.stack([(g.numel() * top[2]).sqrt(), top[2]])
            if finite and bool((spread > 1e-9 * scale).any()):
                raise RuntimeError(
                    "the generator gradients differ between ranks; compute the loss through "
                    "the generator wrapped in DistributedDataParallel (ottokit.distributed."
                    "wrap_ddp), which averages them, and pass the unwrapped module here"
                )
        if not finite:
            raise NonFiniteError(
                "the generator gradient is not finite (NaN or inf); the step was not taken"
            )
        return g

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """One natural-gradient step; returns the closure's loss (None without a closure)."""
        group = self.param_groups[0]
        lr, lam, beta = group["lr"], group["damping"], group["momentum"]
        _check_hyper(lr, lam, beta)
        if self.safeguard is not None and closure is None:
            raise ValueError("safeguard=True needs a closure to evaluate the loss at trial points")
        loss = None if closure is None else self._eval(closure)
        g = self._gradient()
        st = self._st
        refreshed = self._refresh(lam)
        f = self._factor
        assert f is not None
        v, stats = self.solver.solve(f, g, project=self.project, x0=st["prev_direction"])
        finite = torch.isfinite(v).all().reshape(1).to(v.dtype)
        if D.is_distributed():
            finite = D.all_reduce(finite, "min")
        if not finite:
            raise NonFiniteError("the natural-gradient direction is not finite")
        gv = float(g.dot(v))
        params = group["params"]
        buf = st["momentum_buffer"] if beta > 0 else None
        d = -lr * v if buf is None else beta * buf - lr * v
        eta, trials = lr, _Trials()
        if self.safeguard is not None:
            assert closure is not None and loss is not None
            d, eta, trials = self._safeguard(closure, float(loss), g, v, gv, buf, beta, lr)
        accepted = not trials.rejected
        theta_now = torch.cat([p.detach().reshape(-1) for p in params])
        if accepted:
            self._write(params, theta_now + d)
            st["momentum_buffer"] = d.clone()
        else:
            self._write(params, theta_now)
            st["momentum_buffer"] = None
            # the trials overwrote .grad: put back the gradient at the (unchanged) point
            for p, gp in zip(params, self.layout.unflatten(g).values(), strict=True):
                p.grad.copy_(gp.to(p.grad.dtype))
        st["prev_direction"] = v.clone()
        self.last_step_info = StepInfo(
            step=st["step"],
            solver=stats.solver,
            solve_iterations=stats.iterations,
            solve_residual=math.nan if stats.residual is None else stats.residual,
            solve_converged=stats.converged,
            jacobian_path=f.metric.path,
            fallback_reason=f.metric.fallback_reason,
            metric_refreshed=refreshed,
            metric_samples=f.metric.n_samples,
            projected=self.project,
            pivot_range=f.pivot_range if isinstance(f, (CholeskyFactor, WoodburyFactor)) else None,
            eig_range=f.eig_range if isinstance(f, CholeskyFactor) else None,
            lr_used=eta if accepted else 0.0,
            accepted=accepted,
            grad_norm=float(g.norm()),
            direction_norm=float(v.norm()),
            grad_dot_direction=gv,
            shrinks=trials.shrinks,
            restarts=trials.restarts,
            rejected=trials.rejected,
            trial_losses=trials.losses,
            lipschitz_estimate=trials.lipschitz_estimate,
        )
        st["step"] += 1
        self.last_direction = v
        return loss

    def _write(self, params: list[Tensor], theta: Tensor) -> None:
        for p, t in zip(params, self.layout.unflatten(theta).values(), strict=True):
            p.copy_(t)

    def _eval(self, closure: Callable[[], Tensor], trial: bool = False) -> Tensor:
        with torch.enable_grad():
            loss = closure()
        if not isinstance(loss, Tensor):
            raise TypeError(
                f"the closure must return the loss as a scalar tensor, got {type(loss).__name__}"
            )
        if loss.numel() != 1:
            raise ValueError(
                f"the closure must return a scalar loss tensor, got shape {tuple(loss.shape)}; "
                "reduce it, e.g. loss.mean()"
            )
        loss = loss.detach()
        if D.is_distributed():  # the ranks' mean: every rank takes the same branches
            loss = D.all_reduce(loss, "mean")
        if not trial and not torch.isfinite(loss).all():
            raise NonFiniteError(f"the loss is not finite ({float(loss)}); the step was not taken")
        return loss

    def _safeguard(
        self,
        closure: Callable[[], Tensor],
        j0: float,
        g: Tensor,
        v: Tensor,
        gv: float,
        buf: Tensor | None,
        beta: float,
        lr: float,
    ) -> tuple[Tensor, float, _Trials]:
        """Armijo backtracking from the current parameters; returns the displacement, the
        step size and the trials (the parameters are left at their starting point)."""
        assert self.safeguard is not None
        rule, st = self.safeguard, self._st
        params = self.param_groups[0]["params"]
        theta0 = torch.cat([p.detach().reshape(-1) for p in params]).clone()
        decrease = max(gv, 0.0)
        vv = float(v.dot(v))
        eta, use_mom = lr, buf is not None
        shrinks = restarts = 0
        trials: list[float] = []
        lipschitz = math.nan
        rejected = False
        while True:
            d = beta * buf - eta * v if (use_mom and buf is not None) else -eta * v
            self._write(params, theta0 + d)
            jt = float(self._eval(closure, trial=True))
            trials.append(jt)
            if not use_mom and math.isfinite(jt) and vv > 0:
                lipschitz = 2.0 * (jt - j0 + eta * gv) / (eta * eta * vv)
            if math.isfinite(jt) and jt <= j0 - rule.c * eta * decrease:
                break
            if use_mom:
                use_mom = False
                restarts += 1
                continue
            if shrinks >= rule.max_shrinks:
                rejected = True
                d, eta = torch.zeros_like(v), 0.0
                break
            eta *= 0.5
            shrinks += 1
        self._write(params, theta0)
        st["shrinks"] += shrinks
        st["restarts"] += restarts
        st["rejections"] += int(rejected)
        return d, eta, _Trials(shrinks, restarts, rejected, tuple(trials), lipschitz)
