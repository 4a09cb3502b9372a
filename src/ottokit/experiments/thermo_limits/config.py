"""Settings of the thermo-limits experiment."""

from __future__ import annotations

from dataclasses import dataclass

from ottokit._config import (
    ConfigError,
    ValidatedConfig,
    check_config_memory,
    device_param,
    param,
    seed_param,
)

__all__ = ["ThermoLimitsConfig"]

_BYTES_PER_OUTPUT_TIME = 8 * 1024


@dataclass
class ThermoLimitsConfig(ValidatedConfig):
    """Settings of the thermo-limits experiment (2-D protocols, 1-D schedules, particles)."""

    tau: float = param(1.0, doc="duration of every protocol", gt=0)
    temperature: float = param(1.0, doc="bath temperature T (k_B = 1)", gt=0)
    n_times: int = param(401, doc="output times of the closed forms on [0, tau]", ge=3)
    k0: float = param(
        1.0,
        doc="initial stiffness (ramp, quench, moving trap; k of the rotational force)",
        gt=0,
    )
    k1: float = param(4.0, doc="final stiffness of the ramp and the quench (differs from k0)", gt=0)
    omega: float = param(2.0, doc="rotation rate of the non-potential force", gt=0)
    data_std: float = param(
        0.5, doc='std of the 1-D "data" N(0, data_std^2) the schedules start from (not 1)', gt=0
    )
    tau_scan: tuple[float, ...] = param(
        (0.25, 0.5, 1.0, 2.0, 4.0, 8.0), doc="durations of the tau sweep", gt=0, increasing=True
    )
    particle_counts: tuple[int, ...] = param(
        (100, 1_000, 10_000),
        doc="ensemble sizes N of the particle estimator (2-D estimates need N >= 6)",
        ge=6,
        distinct=True,
    )
    particle_steps: int = param(1_000, doc="Euler-Maruyama steps over [0, tau]", ge=2)
    particle_outputs: int = param(
        41, doc="times at which the particle estimates are made (<= particle_steps + 1)", ge=3
    )
    seed: int = seed_param()
    device: str = device_param()

    def check(self) -> None:
        """Protocols that move, outputs on the step grid, and sizes that fit in memory."""
        if self.k1 == self.k0:
            raise ConfigError.for_key(
                "k1",
                self.k1,
                f"different from k0 = {self.k0:g} (the ramp and the quench would not move, "
                "and their bound W2^2 / (tau T) would be 0)",
                4 * self.k0,
            )
        if self.data_std == 1:
            raise ConfigError.for_key(
                "data_std",
                self.data_std,
                "different from 1 (the OT path to the noise N(0, 1) would not move)",
                0.5,
            )
        if self.particle_outputs > self.particle_steps + 1:
            raise ConfigError.for_key(
                "particle_outputs",
                self.particle_outputs,
                f"<= particle_steps + 1 = {self.particle_steps + 1} (outputs lie on the steps)",
                min(41, self.particle_steps + 1),
            )
        # each output time holds a few dozen numbers for each of the nine closed-form cases
        check_config_memory(
            "n_times",
            self.n_times,
            _BYTES_PER_OUTPUT_TIME * self.n_times,
            what=f"the closed forms at {self.n_times} output times",
            knob="lower n_times",
        )
        # positions, forces and noise of the largest ensemble; the protocol at every step
        check_config_memory(
            "particle_counts",
            self.particle_counts,
            8.0 * (16 * max(self.particle_counts) + 8 * (self.particle_steps + 1)),
            what=f"{max(self.particle_counts)} particles over {self.particle_steps} steps",
            knob="lower particle_counts or particle_steps",
        )

    @classmethod
    def quick(cls) -> ThermoLimitsConfig:
        return cls()

    @classmethod
    def paper(cls) -> ThermoLimitsConfig:
        return cls(
            n_times=801,
            tau_scan=(0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
            particle_counts=(100, 1_000, 10_000, 100_000, 300_000),
            particle_steps=2_000,
            particle_outputs=81,
        )
