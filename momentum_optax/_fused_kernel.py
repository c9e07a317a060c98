"""The CPU kernel of :func:`~momentum_optax.fused_sgd`: one pass over memory, on every core.

``m' = g + b m`` and ``p' = p + (-lr) out`` (``out = m'``, or Nesterov's ``g + b' m'``) are
computed element by element, each element of ``p, m, g`` read once and ``p, m`` written
once, in place, by a loop that Numba compiles (LLVM, vectorised) and runs over blocks of
``chunk`` elements on all cores (``prange``). XLA calls it through ``jax.ffi`` (the typed
FFI), one call per step for every leaf it takes, the results aliasing the parameters and
the buffer. Numba comes from PyPI as a wheel: nothing is compiled on install; the loops
are compiled on first use and cached (``momentum_optax/__pycache__``, or Numba's
user-wide cache where that is read-only), the parallel part once per process (about 2 s
on the first step).

The numbers are those of ``mo.sgd`` + ``optax.apply_updates`` under XLA on the same CPU,
bit for bit: the arithmetic is float32; a multiply feeding an add may be contracted to
one fused multiply-add, as XLA's CPU backend contracts it (LLVM's ``contract`` flag on
both); bfloat16 values are widened exactly and rounded to nearest even where XLA rounds
them (after the output, after ``-lr * out``, after ``p + update``).

Supported leaves: float32 or bfloat16 parameters with gradients of the same dtype, a
float32 buffer, and coefficients that compute in float32. :func:`takes` says which; the
rest use XLA's expressions (``fused.py``).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

TARGET = "momentum_optax_fused_sgd"
DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


@functools.cache
def available() -> bool:
    """Whether the kernel can run here: Numba is installed (``momentum_optax[fused]``)."""
    return importlib.util.find_spec("numba") is not None


def takes(p: Any, m: Any, g: Any, coefficients: Sequence[Any]) -> bool:
    """Whether the kernel computes this leaf's step with ``mo.sgd``'s numbers: ``p`` and
    ``g`` both float32 or both bfloat16, a float32 ``m``, every coefficient computing in
    float32 (Python floats and weakly typed scalars do; a float64 array does not), and
    elements."""
    return (
        jnp.dtype(p.dtype) in DTYPES
        and jnp.dtype(g.dtype) == jnp.dtype(p.dtype)
        and jnp.dtype(m.dtype) == jnp.float32
        and p.size > 0
        and all(jnp.result_type(c, jnp.float32) == jnp.float32 for c in coefficients)
    )


def apply(
    ps: list[jax.Array],
    ms: list[jax.Array],
    gs: list[jax.Array],
    coefficients: tuple[Any, Any, Any],
    nesterov: bool,
    chunk: int,
) -> tuple[list[jax.Array], list[jax.Array]]:
    """New parameters and buffers for the leaves ``ps, ms, gs``, in one kernel call.

    ``coefficients`` are ``(-lr, b, b')``, scalars (traced or not). The results alias
    ``ps`` and ``ms``: donated, they are written in place.
    """
    _register()
    scalars = jnp.stack([jnp.asarray(c, jnp.float32) for c in coefficients])
    config = jnp.asarray([int(nesterov), chunk], jnp.int32)
    leaves = len(ps)
    results = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (*ps, *ms)]
    call = jax.ffi.ffi_call(
        TARGET,
        results,
        input_output_aliases={i: i for i in range(2 * leaves)},
        vmap_method="sequential",
    )
    out = call(*ps, *ms, *gs, scalars, config)
    return list(out[:leaves]), list(out[leaves:])


@functools.cache
def _register() -> None:
    """Compiles the handler (once per process) and registers it with XLA's CPU runtime."""
    from momentum_optax import _fused_numba

    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    jax.ffi.register_ffi_target(
        TARGET, new_capsule(_fused_numba.handler().address, None, None), platform="cpu"
    )
