"""YellowFin: heavy ball whose learning rate and momentum are tuned online from the gradients
(Zhang & Mitliagkas, *YellowFin and the Art of Momentum Tuning*), with the safeguards of the
authors' code and a scale-invariant measure of the gradient.

``_single_step`` holds SingleStep (the cubic and its floor), ``_statistics`` the gradient's
statistics, ``_state`` the state and its legacy upgrade, ``_transform`` the two factories.
"""

from momentum_optax.self_tuning._single_step import P_RANGE
from momentum_optax.self_tuning._single_step import cubic_root
from momentum_optax.self_tuning._single_step import single_step
from momentum_optax.self_tuning._state import YellowFinState
from momentum_optax.self_tuning._transform import scale_by_yellowfin
from momentum_optax.self_tuning._transform import yellowfin

__all__ = (
    "P_RANGE",
    "YellowFinState",
    "cubic_root",
    "scale_by_yellowfin",
    "single_step",
    "yellowfin",
)

# the public names live here (the API pages, reprs and pickles name this module)
for _public in (YellowFinState, cubic_root, scale_by_yellowfin, single_step, yellowfin):
    _public.__module__ = __name__
del _public
