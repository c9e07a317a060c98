"""PyTorch baselines, measured when torch is installed (``pip install torch``), else left out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

# PyTorch's OpenMP threads otherwise spin after each call and slow the XLA code timed next
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FOREACH, FUSED = "torch.optim.SGD, foreach", "torch.optim.SGD, fused"
LIMIT = "torch in-place a += s*b (3 passes)"


def available() -> bool:
    """Whether the PyTorch rows run: torch is installed and JAX runs on the CPU too (the
    baselines are CPU PyTorch; against a GPU they would compare different machines)."""
    import jax

    if jax.default_backend() != "cpu":
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def missing_message() -> str:
    import jax

    if jax.default_backend() != "cpu":
        return (
            f"JAX runs on {jax.default_backend()}: the CPU PyTorch rows are skipped "
            "(they would compare different devices)."
        )
    return "PyTorch is not installed: its rows are skipped (pip install torch to add them)."


def sgd_steps(
    size: int, kind: str, lr: float, momentum: float
) -> dict[str, Callable[[], Callable]]:
    """name -> factory of a no-argument step of torch.optim.SGD on ``size`` float32 params."""
    if not available():
        return {}
    import torch

    def factory(**flags: Any) -> Callable[[], Callable]:
        def make():
            shapes = [size] if kind == "array" else [size // 100] * 100
            params = [torch.ones(n, requires_grad=True) for n in shapes]
            for p in params:
                p.grad = torch.full_like(p, 1e-3)
            opt = torch.optim.SGD(params, lr=lr, momentum=momentum, **flags)

            def step():
                with torch.no_grad():
                    opt.step()

            return step

        return make

    def in_place_add() -> Callable:
        shapes = [size] if kind == "array" else [size // 100] * 100
        a = [torch.ones(n) for n in shapes]
        b = [torch.full((n,), 1e-3) for n in shapes]

        def step():
            torch._foreach_add_(a, b, alpha=0.01)

        return step

    return {FOREACH: factory(foreach=True), FUSED: factory(fused=True), LIMIT: in_place_add}


def mlp_training(
    data, idx, eval_every: int, lr: float, momentum: float, *, hidden: int, seed: int = 0
) -> Callable[..., None]:
    """A function training a fresh ``in-hidden-hidden-10`` ReLU MLP in eager PyTorch on the
    batches ``idx`` (``(steps, batch)`` indices into the training set), evaluating the loss
    on the full training set and the validation loss and accuracy every ``eval_every``
    steps and at step 0, and the test split at the end: what ``experiments.loop.train``
    computes. Its argument is the momentum (default ``momentum``)."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    as_x = lambda a: torch.tensor(np.asarray(a))  # a copy: JAX's host arrays are read-only
    as_y = lambda a: torch.tensor(np.asarray(a)).long()
    x_train, y_train = as_x(data.x_train), as_y(data.y_train)
    splits = [(x_train, y_train), (as_x(data.x_val), as_y(data.y_val))]
    test = (as_x(data.x_test), as_y(data.y_test))
    batches = [(x_train[i], y_train[i]) for i in torch.tensor(np.asarray(idx)).long()]
    loss_fn = torch.nn.CrossEntropyLoss()

    def evaluate(model, parts):
        with torch.no_grad():
            for x, y in parts:
                logits = model(x)
                loss_fn(logits, y).item()  # the numbers, as loop.train returns them
                (logits.argmax(-1) == y).float().mean().item()

    def run(momentum_value: float = momentum) -> None:
        model = torch.nn.Sequential(
            torch.nn.Linear(x_train.shape[1], hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, 10),
        )
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum_value)
        evaluate(model, splits)
        for step, (xb, yb) in enumerate(batches, 1):
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
            if step % eval_every == 0:
                evaluate(model, splits)
        evaluate(model, [test])

    return run


def clock(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
