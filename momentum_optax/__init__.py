"""momentum_optax: momentum methods as pure Optax gradient transformations."""

from momentum_optax import schedules
from momentum_optax.accumulators import DeltaMomentumState
from momentum_optax.accumulators import EmaState
from momentum_optax.accumulators import TraceState
from momentum_optax.accumulators import delta_momentum
from momentum_optax.accumulators import ema
from momentum_optax.accumulators import trace
from momentum_optax.aliases import sgd
from momentum_optax.checkpoints import check_restored
from momentum_optax.restarts import PeriodicResetState
from momentum_optax.restarts import periodic_reset

__version__ = "0.1.0"

__all__ = (
    "DeltaMomentumState",
    "EmaState",
    "PeriodicResetState",
    "TraceState",
    "check_restored",
    "delta_momentum",
    "ema",
    "periodic_reset",
    "schedules",
    "sgd",
    "trace",
)
