"""The Numba code of the fused SGD kernel (imported only when the kernel first runs).

XLA's typed FFI hands the handler a call frame (``xla/ffi/api/c_api.h``): the handler reads
its buffers' addresses, dtypes and shapes, splits every leaf into blocks of ``chunk``
elements and runs the blocks on all cores, one vectorised loop per dtype.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from numba import carray
from numba import njit
from numba import prange
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

BF16 = 16  # XLA_FFI_DataType_BF16 (float32 is 11)
METADATA = 1  # XLA_FFI_Extension_Metadata: XLA asks the handler which API it speaks
API_VERSION = (0, 1)  # the oldest typed-FFI version; every release since accepts it
# int64 word offsets in XLA_FFI_CallFrame: extension_start, args.size, args.args, rets.rets
FRAME_EXTENSION, ARGS_SIZE, ARGS, RETS = 1, 7, 9, 14
# in XLA_FFI_Buffer: dtype, data, rank, dims
BUFFER_DTYPE, BUFFER_DATA, BUFFER_RANK, BUFFER_DIMS = 2, 3, 4, 5
_U32 = np.uint32


def _pointer_typing(typingctx: Any, address: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


_pointer: Any = intrinsic(_pointer_typing)


def _float_from_bits_typing(typingctx: Any, bits: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return types.float32(types.uint32), codegen


_float_from_bits: Any = intrinsic(_float_from_bits_typing)


def _bits_of_typing(typingctx: Any, value: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return types.uint32(types.float32), codegen


_bits_of: Any = intrinsic(_bits_of_typing)


@njit(inline="always", cache=True)
def _words(address: int, n: int) -> Any:
    return carray(_pointer(address), (n,), np.int64)


@njit(inline="always", cache=True)
def _widen(bits: Any) -> Any:
    """bfloat16 bits -> the float32 of the same value (exact)."""
    return _float_from_bits(_U32(bits) << _U32(16))


@njit(inline="always", cache=True)
def _round(x: Any) -> Any:
    """float32 -> the nearest bfloat16 (ties to even), as a float32.

    NaN needs no case of its own here: every NaN in the loop comes from a bfloat16 input or
    from float32 arithmetic (the default NaN), so its low 16 bits are zero and adding at
    most 0x8000 leaves it the same NaN.
    """
    bits = _bits_of(x)
    return _float_from_bits(
        (bits + _U32(0x7FFF) + ((bits >> _U32(16)) & _U32(1))) & _U32(0xFFFF0000)
    )


@njit(inline="always", cache=True)
def _narrow(x: Any) -> Any:
    """float32 -> bfloat16 bits, rounded as :func:`_round`."""
    return np.uint16(_bits_of(_round(x)) >> _U32(16))


# Two loops, each a function of its own with one signature: Numba's cache numbers the
# compiled versions of a function per process, so two processes compiling different versions
# of one function at once could swap them; one version per function cannot be swapped. The
# Nesterov flag is an argument: LLVM hoists the test out of the loop and vectorises both.
@njit(fastmath={"contract"}, cache=True)
def _float32_loop(
    p: Any, m: Any, g: Any, neg_lr: Any, beta: Any, beta_next: Any, nesterov: bool
) -> None:
    for i in range(p.shape[0]):
        new_m = g[i] + beta * m[i]
        m[i] = new_m
        out = g[i] + beta_next * new_m if nesterov else new_m
        p[i] = p[i] + neg_lr * out


@njit(fastmath={"contract"}, cache=True)
def _bfloat16_loop(
    p: Any, m: Any, g_bits: Any, neg_lr: Any, beta: Any, beta_next: Any, nesterov: bool
) -> None:
    for i in range(p.shape[0]):
        g = _widen(g_bits[i])
        new_m = g + beta * m[i]
        m[i] = new_m
        out = g + beta_next * new_m if nesterov else new_m
        # mo.sgd rounds the output and the scaled update to the gradient's dtype
        p[i] = _narrow(_widen(p[i]) + _round(neg_lr * _round(out)))


@njit(parallel=True)  # not cached: Numba may mislink a cached parallel function
def _blocks(leaves: Any, starts: Any, stops: Any, owner: Any, scalars: Any, nesterov: bool) -> None:
    """Every block on the cores: ``leaves[j] = (p, m, g addresses, bfloat16 or float32)``.

    The arrays are built here and handed to the loops (an array built from an address
    inside the loop hides it from LLVM's vectoriser).
    """
    neg_lr, beta, beta_next = scalars[0], scalars[1], scalars[2]
    for k in prange(starts.shape[0]):
        j, a, b = owner[k], starts[k], stops[k]
        m = carray(_pointer(leaves[j, 1]), (b,), np.float32)[a:b]
        if leaves[j, 3]:
            p16 = carray(_pointer(leaves[j, 0]), (b,), np.uint16)[a:b]
            g16 = carray(_pointer(leaves[j, 2]), (b,), np.uint16)[a:b]
            _bfloat16_loop(p16, m, g16, neg_lr, beta, beta_next, nesterov)
        else:
            p32 = carray(_pointer(leaves[j, 0]), (b,), np.float32)[a:b]
            g32 = carray(_pointer(leaves[j, 2]), (b,), np.float32)[a:b]
            _float32_loop(p32, m, g32, neg_lr, beta, beta_next, nesterov)


@njit(inline="always", cache=True)
def _buffer(address: int) -> Any:
    return _words(address, 6)


@njit  # it calls the parallel function, so it is not cached either
def _run(frame: int) -> int:
    """The handler's body: ``args = (p..., m..., g..., scalars f32[3], config i32[2])``,
    ``rets = (p'..., m'...)`` aliasing ``p..., m...`` (XLA copied them in if not donated)."""
    f = _words(frame, 15)
    if f[FRAME_EXTENSION] != 0:
        extension = _words(f[FRAME_EXTENSION], 4)  # struct_size, type, next, metadata
        if (extension[1] & 0xFFFFFFFF) == METADATA:
            version = carray(_pointer(extension[3] + 24), (2,), np.int32)
            version[0], version[1] = API_VERSION
            _words(extension[3], 5)[4] = 0  # no traits
            return 0
    n_args = f[ARGS_SIZE]
    args = _words(f[ARGS], n_args)
    n = (n_args - 2) // 3
    rets = _words(f[RETS], 2 * n)
    scalars = carray(_pointer(_buffer(args[n_args - 2])[BUFFER_DATA]), (3,), np.float32)
    config = carray(_pointer(_buffer(args[n_args - 1])[BUFFER_DATA]), (2,), np.int32)
    nesterov, chunk = config[0] != 0, np.int64(config[1])
    leaves = np.empty((n, 4), np.int64)
    sizes = np.empty(n, np.int64)
    count = 0
    for j in range(n):
        p, g = _buffer(rets[j]), _buffer(args[2 * n + j])
        size = 1
        if p[BUFFER_RANK] > 0:
            dims = _words(p[BUFFER_DIMS], p[BUFFER_RANK])
            for d in range(p[BUFFER_RANK]):
                size *= dims[d]
        sizes[j] = size
        leaves[j, 0] = p[BUFFER_DATA]
        leaves[j, 1] = _buffer(rets[n + j])[BUFFER_DATA]
        leaves[j, 2] = g[BUFFER_DATA]
        leaves[j, 3] = (p[BUFFER_DTYPE] & 0xFFFFFFFF) == BF16  # p and g share a dtype
        count += (size + chunk - 1) // chunk
    starts, stops = np.empty(count, np.int64), np.empty(count, np.int64)
    owner = np.empty(count, np.int64)
    k = 0
    for j in range(n):
        for a in range(0, sizes[j], chunk):
            starts[k], stops[k], owner[k] = a, min(a + chunk, sizes[j]), j
            k += 1
    _blocks(leaves, starts, stops, owner, scalars, nesterov)
    return 0


@functools.cache
def handler() -> Any:
    """The XLA FFI handler, ``XLA_FFI_Error* (XLA_FFI_CallFrame*)`` (NULL: success), a thin
    ``cfunc`` around :func:`_run`, compiled once per process (Numba cannot cache a ``cfunc``,
    and :func:`_run` calls the parallel :func:`_blocks`, which is not cached either)."""

    @numba.cfunc(types.int64(types.int64))
    def call(frame: int) -> int:
        return _run(frame)

    return call
