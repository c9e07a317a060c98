"""PyTorch baselines, measured when torch is installed (``pip install torch``); skipped otherwise."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

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
        return (f"JAX runs on {jax.default_backend()}: the CPU PyTorch rows are skipped "
                "(they would compare different devices).")
    return "PyTorch is not installed: its rows are skipped (pip install torch to add them)."


def sgd_steps(size: int, kind: str, lr: float, momentum: float) -> dict[str, Callable[[], Callable]]:
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


def mlp_epoch(x, y, batch_size: int, lr: float, momentum: float, seed: int = 0) -> Callable[[], int]:
    """A function training a fresh 64-64-10 MLP for one epoch in eager PyTorch; returns samples."""
    import torch

    torch.manual_seed(seed)
    x_t = torch.tensor(x)  # a copy: JAX's host arrays are read-only
    y_t = torch.tensor(y).long()
    batches = [(x_t[i:i + batch_size], y_t[i:i + batch_size])
               for i in range(0, len(x_t) - batch_size + 1, batch_size)]

    def run(momentum_value: float = momentum) -> int:
        model = torch.nn.Sequential(torch.nn.Linear(x_t.shape[1], 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 10))
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum_value)
        loss_fn = torch.nn.CrossEntropyLoss()
        for xb, yb in batches:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        return len(batches) * batch_size

    return run


def clock(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
