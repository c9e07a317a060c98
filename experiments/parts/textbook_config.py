"""The configuration of the textbook checks (``claims.textbook``), apart from the module
that runs them so that the checks' parts can import it without an import cycle."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    steps: int = 12_000  # every quadratic run (one compile)
    tolerance: float = 1e-6  # distance to the minimum, relative to the start
    lr_kappa: tuple[float, float] = (10.0, 30.0)  # C1: condition numbers drawn in this range
    lr_multiples: tuple[float, ...] = (0.05, 0.2, 0.5, 0.9, 1.2, 1.5, 1.8, 2.1, 2.5)  # x 1/L
    rate_kappa: tuple[float, float] = (100.0, 1000.0)  # C2, C3, C4
    rate_error: float = 0.05  # measured vs theoretical -log(rate), relative
    speedup: float = 0.5  # C2: GD's steps / heavy ball's at least this x sqrt(kappa)
    below_polyak: tuple[float, ...] = (0.0, 0.5)  # C3: beta = these x Polyak's beta
    beyond_polyak: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # beta = 1 - (1 - Polyak's) / these
    beta_lrs: tuple[float, ...] = (0.5, 0.7, 1.0, 1.2)  # x 2 (1 + beta) / (L + mu)
    ravine_kappa: tuple[float, float] = (1000.0, 10000.0)  # C12
    ravine_lr: float = 1.5  # x 1/L
    ravine_momentum: float = 0.9
    ravine_steps: int = 50
    flip_floor: float = 1e-5  # C1: sign changes of |z1| below this (rounding) are not counted
    ema_betas: tuple[float, ...] = (0.5, 0.9, 0.99)  # C7
    ema_lr: float = 0.05
    ema_steps: int = 400
    ema_batch: int = 32
    ema_tolerance: float = 1e-4  # max relative parameter difference (float32)


QUICK = Config(seeds=5, ema_steps=300)
FULL = Config()
