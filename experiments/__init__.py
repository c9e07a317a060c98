"""Experiments that measure the momentum literature's claims with momentum_optax."""
