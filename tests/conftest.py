"""Global test configuration: the only place where JAX and hypothesis settings change."""

import hypothesis
import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

hypothesis.settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("ci")

# the fixture generator needs PyTorch, which the tests do not depend on
collect_ignore = ["fixtures/make_torch_fixtures.py"]
