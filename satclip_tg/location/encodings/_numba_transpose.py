"""An 8 x 8 in-register transpose for numba kernels.

Kernels that vectorise over points produce one column of the output at a time,
while the output is stored row by row. Writing those columns element by element
costs one scalar store per value, which dominated the spherical-harmonics
kernel. `transpose8_store` instead moves an 8 x 8 tile with eight vector
loads, a 24-shuffle butterfly network and eight vector stores; LLVM turns the
shuffles into the usual unpack/permute instructions of the target.
"""

from typing import Any

from llvmlite import ir
from numba import types
from numba.core.errors import TypingError
from numba.extending import intrinsic

__all__ = ['TILE', 'transpose8_store']

TILE = 8


def _butterfly_masks(distance: int) -> tuple[list[int], list[int]]:
    # One stage of the transpose network swaps the off-diagonal blocks of size
    # `distance` between rows i and i + distance (bit `distance` of i clear).
    # Shuffle indices >= TILE pick from the second row.
    low = [j if not j & distance else TILE + j - distance for j in range(TILE)]
    high = [j + distance if not j & distance else TILE + j for j in range(TILE)]
    return low, high


@intrinsic
def _transpose8_store(
    typingctx: Any,
    dst: types.Array,
    dst_start: types.Integer,
    dst_stride: types.Integer,
    src: types.Array,
    src_start: types.Integer,
    src_stride: types.Integer,
) -> Any:
    """Transpose an 8 x 8 tile from ``src`` into ``dst`` (flat C arrays).

    Sets ``dst[dst_start + j * dst_stride + i] = src[src_start + i * src_stride
    + j]`` for ``0 <= i, j < 8``. Both arrays must be 1-D, contiguous and of the
    same float dtype; indices are not bounds-checked.
    """
    for array in (dst, src):
        if not isinstance(array, types.Array) or array.ndim != 1:
            raise TypingError('transpose8_store needs 1-D arrays')
    if dst.dtype != src.dtype or dst.dtype not in (types.float32, types.float64):
        raise TypingError('transpose8_store needs two float32 or two float64 arrays')
    signature = types.void(dst, dst_start, dst_stride, src, src_start, src_stride)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        element = context.get_value_type(sig.args[0].dtype)
        vector = ir.VectorType(element, TILE)
        index = ir.IntType(64)

        def pointer(array_type: Any, array: Any) -> Any:
            data = context.make_array(array_type)(context, builder, array).data
            return builder.bitcast(data, element.as_pointer())

        def offsets(start: Any, stride: Any, start_type: Any, stride_type: Any) -> Any:
            start = context.cast(builder, start, start_type, types.int64)
            stride = context.cast(builder, stride, stride_type, types.int64)
            return [
                builder.add(start, builder.mul(stride, ir.Constant(index, k)))
                for k in range(TILE)
            ]

        source = pointer(sig.args[3], args[3])
        target = pointer(sig.args[0], args[0])
        rows = [
            builder.load(
                builder.bitcast(builder.gep(source, [offset]), vector.as_pointer()),
                align=element.get_abi_size(context.target_data),
            )
            for offset in offsets(args[4], args[5], sig.args[4], sig.args[5])
        ]
        distance = 1
        while distance < TILE:
            low, high = _butterfly_masks(distance)
            swapped = list(rows)
            for i in range(TILE):
                if i & distance:
                    continue
                first, second = rows[i], rows[i + distance]
                swapped[i] = builder.shuffle_vector(
                    first, second, ir.Constant(ir.VectorType(ir.IntType(32), TILE), low)
                )
                swapped[i + distance] = builder.shuffle_vector(
                    first,
                    second,
                    ir.Constant(ir.VectorType(ir.IntType(32), TILE), high),
                )
            rows = swapped
            distance *= 2
        for row, offset in zip(
            rows, offsets(args[1], args[2], sig.args[1], sig.args[2]), strict=True
        ):
            builder.store(
                row,
                builder.bitcast(builder.gep(target, [offset]), vector.as_pointer()),
                align=element.get_abi_size(context.target_data),
            )
        return context.get_dummy_value()

    return signature, codegen


# Called from compiled code with numba types; typed loosely for Python tools.
transpose8_store: Any = _transpose8_store
