"""Generator and discriminator networks for the GAN experiments (seeds 001 and 003).

* :class:`MLPGenerator` ``G_theta: R^latent_dim -> R^out_dim`` and
  :class:`MLPDiscriminator` ``D_phi: R^in_dim -> R`` (fully connected). The seed-001
  §17 experiment uses ``MLPGenerator(16, (32,), 1)`` against
  ``MLPDiscriminator(1, (32,))`` on a 1-D Gaussian target; the seed-003 2-D model is
  ``MLPGenerator(2, (256, 256, 256), 2, activation="leaky_relu")`` with a uniform
  latent, against a 3 x 512 WGAN-GP critic.
* :class:`ConvGenerator8` / :class:`ConvDiscriminator8`: a small convolutional pair
  for 8 x 8 single-channel images in [-1, 1] (scikit-learn's digits, scaled), small
  enough to train on a CPU in minutes.

Every discriminator returns LOGITS, one real number per sample, shape ``(n,)``:
the meaning of that number depends on the loss (see :mod:`ottokit.gan.losses`;
for the usual GAN it is ``log q(x)/rho(x)`` at the optimum, q the data density and
rho the model density). Features are always the LAST axis (or the last three for
images), so the networks also accept a single unbatched sample, as
``torch.func.vmap`` passes it.

Weights are initialised by PyTorch's default initialisers from the global RNG:
build networks inside :func:`build_seeded` to make the initialisation depend on a
seed only (the caller's global RNG is left untouched).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ottokit._checks import check_instance, check_int, check_option, check_real, options
from ottokit.priors import Prior, PriorName

__all__ = [
    "ACTIVATIONS",
    "MLPGenerator",
    "MLPDiscriminator",
    "ConvGenerator8",
    "ConvDiscriminator8",
    "sample_latent",
    "build_seeded",
]

Activation = Literal["tanh", "relu", "leaky_relu", "elu", "softplus"]
ACTIVATIONS: tuple[str, ...] = options(Activation)
_LEAKY_SLOPE = 0.2

T = TypeVar("T")


def _activation(name: str) -> nn.Module:
    check_option(name, Activation, "activation")
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(_LEAKY_SLOPE)
    if name == "elu":
        return nn.ELU()
    return nn.Softplus()


def _hidden_sizes(hidden: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or isinstance(hidden, str):
        raise TypeError(
            f"hidden must be a tuple of layer widths such as (32,) or (256, 256), got {hidden!r}"
        )
    return tuple(check_int(h, f"hidden[{k}]", ge=1) for k, h in enumerate(hidden))


def _check_features(x: Tensor, size: int, name: str, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0 or x.shape[-1] != size:
        raise ValueError(
            f"{name} must have shape (n, {size}) ({what} on the last axis), got {tuple(x.shape)}"
        )


def _mlp(
    sizes: Sequence[int], activation: str, spectral_norm: bool, final: nn.Module | None = None
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear: nn.Module = nn.Linear(a, b)
        if spectral_norm:
            linear = _spectral_norm(linear)
        layers.append(linear)
        if k < len(sizes) - 2:
            layers.append(_activation(activation))
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class _ScaledTanh(nn.Module):
    """x -> s tanh(x): bounds the generator output to [-s, s]."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * torch.tanh(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class MLPGenerator(nn.Module):
    """Fully connected push-forward generator ``x = G_theta(z)``, z in R^latent_dim.

    Layers ``latent_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim`` with
    ``activation`` between them; the last layer is affine, so ``hidden=()`` gives the
    affine generator ``G(z) = A z + b``. The model distribution is the push-forward
    ``rho_theta = (G_theta)_# p_z`` (seed 001 §12).

    Args:
        latent_dim: dimension of z.
        hidden: widths of the hidden layers (an int means one layer).
        out_dim: dimension of x.
        activation: one of :data:`ACTIVATIONS` (leaky ReLU slope 0.2).
        spectral_norm: wrap every linear layer in spectral normalisation.
        output_scale: ``None`` for an affine output; a number s > 0 for
            ``s * tanh(.)``, which keeps the samples in [-s, s] (images in [-1, 1]
            take s = 1).

    Input ``(..., latent_dim)``, output ``(..., out_dim)``.
    """

    def __init__(
        self,
        latent_dim: int = 16,
        hidden: int | Sequence[int] = (32,),
        out_dim: int = 1,
        activation: Activation = "tanh",
        spectral_norm: bool = False,
        output_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim = check_int(latent_dim, "latent_dim", ge=1)
        self.out_dim = check_int(out_dim, "out_dim", ge=1)
        self.hidden = _hidden_sizes(hidden)
        check_option(activation, Activation, "activation")
        self.activation = activation
        final: nn.Module | None = None
        if output_scale is not None:
            output_scale = check_real(
                output_scale, "output_scale", gt=0, hint="or None for an affine output"
            )
            final = _ScaledTanh(float(output_scale))
        self.output_scale = output_scale
        sizes = (self.latent_dim, *self.hidden, self.out_dim)
        self.net = _mlp(sizes, activation, bool(spectral_norm), final)

    def forward(self, z: Tensor) -> Tensor:
        _check_features(z, self.latent_dim, "z", "latent coordinates")
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """Fully connected discriminator ``D_phi: R^in_dim -> R`` returning logits.

    Layers ``in_dim -> hidden[0] -> ... -> hidden[-1] -> 1``, affine last layer, no
    output nonlinearity: the output is the unconstrained number ``v = D(x)`` that the
    losses of :mod:`ottokit.gan.losses` map through their own output activation
    (the logit for the usual GAN, the critic value for WGAN). Input ``(..., in_dim)``,
    output ``(...)`` (shape ``(n,)`` for a batch).
    """

    def __init__(
        self,
        in_dim: int = 1,
        hidden: int | Sequence[int] = (32,),
        activation: Activation = "tanh",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_dim = check_int(in_dim, "in_dim", ge=1)
        self.hidden = _hidden_sizes(hidden)
        check_option(activation, Activation, "activation")
        self.activation = activation
        self.net = _mlp((self.in_dim, *self.hidden, 1), activation, bool(spectral_norm))

    def forward(self, x: Tensor) -> Tensor:
        _check_features(x, self.in_dim, "x", "coordinates")
        return self.net(x).squeeze(-1)


class ConvGenerator8(nn.Module):
    """DCGAN-style generator of 8 x 8 single-channel images in [-1, 1].

    ``z -> Linear -> (2w, 2, 2) -> ConvT(4, stride 2) -> (w, 4, 4) ->
    ConvT(4, stride 2) -> (w/2, 8, 8) -> Conv(3) -> tanh``, ReLU in between
    (w = ``width``, no batch normalisation, so the output of a sample does not
    depend on the rest of its batch). Input ``(..., latent_dim)``, output
    ``(..., 1, 8, 8)``.
    """

    def __init__(self, latent_dim: int = 32, width: int = 64) -> None:
        super().__init__()
        self.latent_dim = check_int(latent_dim, "latent_dim", ge=1)
        self.width = check_int(width, "width", ge=2, hint="the last block has width // 2")
        self.out_dim = 64
        self.out_shape = (1, 8, 8)
        w = self.width
        self.fc = nn.Linear(self.latent_dim, 2 * w * 4)
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(w, w // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w // 2, 1, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        _check_features(z, self.latent_dim, "z", "latent coordinates")
        lead = z.shape[:-1]
        h = self.fc(z).reshape(-1, 2 * self.width, 2, 2)
        return self.body(h).reshape(*lead, *self.out_shape)


class ConvDiscriminator8(nn.Module):
    """Convolutional discriminator of 8 x 8 single-channel images, returning logits.

    ``Conv(4, stride 2) -> (w, 4, 4) -> Conv(4, stride 2) -> (2w, 2, 2) -> Linear -> 1``
    with leaky ReLU (slope 0.2); ``spectral_norm=True`` (the default) normalises
    every layer (Miyato et al. 2018), which keeps the critic roughly 1-Lipschitz
    layer by layer. Input ``(..., 1, 8, 8)``, output ``(...)``.
    """

    def __init__(self, width: int = 64, spectral_norm: bool = True) -> None:
        super().__init__()
        self.width = check_int(width, "width", ge=1)
        self.in_shape = (1, 8, 8)
        w = self.width
        wrap: Callable[[nn.Module], nn.Module] = _spectral_norm if spectral_norm else (lambda m: m)
        self.features = nn.Sequential(
            wrap(nn.Conv2d(1, w, 4, stride=2, padding=1)),
            nn.LeakyReLU(_LEAKY_SLOPE),
            wrap(nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)),
            nn.LeakyReLU(_LEAKY_SLOPE),
        )
        self.head = wrap(nn.Linear(2 * w * 4, 1))

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 3 or tuple(x.shape[-3:]) != self.in_shape:
            raise ValueError(
                f"x must be a batch of images of shape (n, 1, 8, 8), got {tuple(x.shape)}"
            )
        lead = x.shape[:-3]
        h = self.features(x.reshape(-1, *self.in_shape))
        return self.head(h.flatten(1)).reshape(lead)


def sample_latent(
    n: int,
    dim: int,
    prior: PriorName = "normal",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``n >= 1`` latents of dimension ``dim`` from the prior p_z, shape ``(n, dim)``.

    ``Prior(prior, (dim,)).sample(...)`` (:class:`ottokit.priors.Prior`): ``"normal"`` is
    N(0, I), ``"uniform"`` the cube [-1, 1]^dim. The draw uses ``generator`` (and lives on
    its device unless ``device`` is given); ``dtype`` defaults to torch's default dtype.
    """
    n, dim = check_int(n, "n", ge=1), check_int(dim, "dim", ge=1)
    if dtype is not None:
        check_instance(dtype, torch.dtype, "dtype", hint="e.g. torch.float32")
    return Prior(prior, (dim,)).sample(n, generator=generator, device=device, dtype=dtype)


def build_seeded(seed: int, factory: Callable[[], T]) -> T:
    """``factory()`` with torch's global RNG seeded by ``seed`` inside ``fork_rng``.

    Two calls with the same seed give identically initialised networks, and the
    caller's global RNG state is the same afterwards as before (CPU RNG only; build
    on the CPU and move to the GPU afterwards for device-independent weights).
    Example: ``G = build_seeded(0, lambda: MLPGenerator(16, (32,), 1))``.
    """
    seed = check_int(seed, "seed", ge=0)
    if not callable(factory):
        raise TypeError(f"factory must be a callable returning the network, got {factory!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()
