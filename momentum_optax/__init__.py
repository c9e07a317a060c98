"""momentum_optax: momentum methods as pure Optax gradient transformations."""

from momentum_optax import checkpoints
from momentum_optax import schedules
from momentum_optax import tuning
from momentum_optax.accumulators import DeltaMomentumState
from momentum_optax.accumulators import EmaState
from momentum_optax.accumulators import ScheduledTraceState
from momentum_optax.accumulators import TraceState
from momentum_optax.accumulators import delta_momentum
from momentum_optax.accumulators import ema
from momentum_optax.accumulators import trace
from momentum_optax.aggregated import AggMoState
from momentum_optax.aggregated import aggmo
from momentum_optax.aliases import sgd
from momentum_optax.aliases import srsgd
from momentum_optax.checkpoints import check_restored
from momentum_optax.fused import FusedSGD
from momentum_optax.fused import FusedSGDState
from momentum_optax.fused import fused_sgd
from momentum_optax.masking import cautious
from momentum_optax.moving_average import SmaState
from momentum_optax.moving_average import sma
from momentum_optax.quasi_hyperbolic import QhAdamState
from momentum_optax.quasi_hyperbolic import QhmState
from momentum_optax.quasi_hyperbolic import qhadam
from momentum_optax.quasi_hyperbolic import qhm
from momentum_optax.quasi_hyperbolic import scale_by_qhadam
from momentum_optax.restarts import AdaptiveRestartState
from momentum_optax.restarts import PeriodicResetState
from momentum_optax.restarts import ScheduledResetState
from momentum_optax.restarts import adaptive_restart
from momentum_optax.restarts import periodic_reset
from momentum_optax.scaling import scale_by_learning_rate
from momentum_optax.self_tuning import YellowFinState
from momentum_optax.self_tuning import scale_by_yellowfin
from momentum_optax.self_tuning import yellowfin
from momentum_optax.torch_compat import TorchMomentumState
from momentum_optax.torch_compat import torch_sgd
from momentum_optax.training import train_step

__version__ = "0.2.1"

__all__ = (
    "AdaptiveRestartState",
    "AggMoState",
    "DeltaMomentumState",
    "EmaState",
    "FusedSGD",
    "FusedSGDState",
    "PeriodicResetState",
    "QhAdamState",
    "QhmState",
    "ScheduledResetState",
    "ScheduledTraceState",
    "SmaState",
    "TorchMomentumState",
    "TraceState",
    "YellowFinState",
    "adaptive_restart",
    "aggmo",
    "cautious",
    "check_restored",
    "checkpoints",
    "delta_momentum",
    "ema",
    "fused_sgd",
    "periodic_reset",
    "qhadam",
    "qhm",
    "scale_by_learning_rate",
    "scale_by_qhadam",
    "scale_by_yellowfin",
    "schedules",
    "sgd",
    "sma",
    "srsgd",
    "torch_sgd",
    "trace",
    "train_step",
    "tuning",
    "yellowfin",
)
