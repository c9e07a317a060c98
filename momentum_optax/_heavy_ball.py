"""The heavy-ball formula, once: used by ``trace``, ``aggmo`` and the fused SGD step."""

from __future__ import annotations

from typing import Any


def velocity(g: Any, m: Any, beta: Any) -> Any:
    """The new velocity ``g + beta * m`` of one leaf."""
    return g + beta * m


def output(g: Any, new_m: Any, beta_next: Any, nesterov: bool) -> Any:
    """The update: ``new_m``, or Nesterov's ``g + beta_next * new_m``."""
    return g + beta_next * new_m if nesterov else new_m
