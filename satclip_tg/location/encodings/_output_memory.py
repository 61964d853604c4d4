"""Output memory that is reused once the caller has released it.

A large fresh tensor costs more than filling it: every page is faulted in and
zeroed by the kernel (about 0.02 s for 640 MB with huge pages, 0.12 s
without), and on a fragmented machine asking for huge pages can stall for
tenths of a second in memory compaction. Spherical harmonics at L = 40 write
6.4 kB per point, so for 100,000 points the allocation, not the arithmetic,
would set the speed.

`ReusableOutputMemory` keeps the memory of its last large output. The
tensor handed out wraps a NumPy view of that memory, and the holder keeps only
a weak reference to the view: while any tensor, view or NumPy array derived
from the output is alive the view is alive, and the next call gets new memory.
Once the caller has dropped every reference, the next call of the same size or
smaller reuses the memory (already faulted in) instead of allocating again.
Nothing a caller can still see is ever overwritten.
"""

import ctypes
import sys
import threading
import weakref
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ['ReusableOutputMemory', 'empty_with_huge_pages']

_HUGEPAGE_BYTES = 1 << 21
_MADV_HUGEPAGE = 14
_MIN_REUSE_BYTES = 32 << 20  # below this, malloc already recycles freed memory
_MAX_REUSE_BYTES = 1 << 30  # never keep more than this alive between calls
_NUMPY_DTYPES: dict[torch.dtype, np.dtype[Any]] = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
}


def _advise_huge_pages(address: int, nbytes: int) -> None:
    # Transparent huge pages before first touch: 2 MB page faults instead of
    # 4 kB ones. Only advice: ignored where unsupported.
    if not sys.platform.startswith('linux') or nbytes < 64 * _HUGEPAGE_BYTES:
        return
    start = -(-address // _HUGEPAGE_BYTES) * _HUGEPAGE_BYTES
    stop = (address + nbytes) // _HUGEPAGE_BYTES * _HUGEPAGE_BYTES
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(
            ctypes.c_void_p(start), ctypes.c_size_t(stop - start), _MADV_HUGEPAGE
        )
    except (OSError, AttributeError):  # pragma: no cover - advice only
        pass


def empty_with_huge_pages(rows: int, cols: int, dtype: torch.dtype) -> Tensor:
    """A fresh uninitialised ``(rows, cols)`` CPU tensor, huge pages advised.

    Args:
        rows: Number of rows.
        cols: Number of columns.
        dtype: Floating dtype.

    Returns:
        The tensor.
    """
    out = torch.empty(rows, cols, dtype=dtype)
    _advise_huge_pages(out.data_ptr(), out.numel() * out.element_size())
    return out


class ReusableOutputMemory:
    """Hands out output tensors whose memory is recycled once released.

    Thread-safe. Copying or pickling the holder (for example with the module
    that owns it) gives an empty holder: memory is never copied or shared.
    """

    def __init__(
        self,
        min_bytes: int = _MIN_REUSE_BYTES,
        max_bytes: int = _MAX_REUSE_BYTES,
    ) -> None:
        """Initialize an empty holder.

        Args:
            min_bytes: Outputs smaller than this are plain ``torch.empty``.
            max_bytes: Outputs larger than this are never kept for reuse.
        """
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self._memory: np.ndarray | None = None
        self._handed_out: weakref.ref[np.ndarray] | None = None
        self._lock = threading.Lock()

    def empty(self, rows: int, cols: int, dtype: torch.dtype) -> Tensor:
        """An uninitialised ``(rows, cols)`` CPU tensor, on reused memory if free.

        Args:
            rows: Number of rows.
            cols: Number of columns.
            dtype: ``torch.float32`` or ``torch.float64``.

        Returns:
            A contiguous tensor that no other live tensor shares memory with.
        """
        numpy_dtype = _NUMPY_DTYPES[dtype]
        nbytes = rows * cols * numpy_dtype.itemsize
        if not self.min_bytes <= nbytes <= self.max_bytes:
            return empty_with_huge_pages(rows, cols, dtype)
        with self._lock:
            in_use = self._handed_out is not None and self._handed_out() is not None
            memory = self._memory
            if in_use or memory is None or memory.nbytes < nbytes:
                # Keep the new memory only; memory still in use is owned by the
                # caller's tensor from now on and freed with it.
                memory = np.empty(nbytes + 64, dtype=np.uint8)
                _advise_huge_pages(memory.ctypes.data, memory.nbytes)
                self._memory = memory
            offset = -memory.ctypes.data % 64  # cache-line aligned rows
            view = memory[offset : offset + nbytes].view(numpy_dtype)
            view = view.reshape(rows, cols)
            self._handed_out = weakref.ref(view)
            return torch.from_numpy(view)

    def release(self) -> None:
        """Drop the kept memory (outputs still in use are unaffected)."""
        with self._lock:
            self._memory = None
            self._handed_out = None

    def __deepcopy__(self, memo: dict[int, Any]) -> 'ReusableOutputMemory':
        """An empty holder with the same limits."""
        return ReusableOutputMemory(self.min_bytes, self.max_bytes)

    def __reduce__(self) -> tuple[type, tuple[int, int]]:
        """Pickle as an empty holder with the same limits."""
        return ReusableOutputMemory, (self.min_bytes, self.max_bytes)
