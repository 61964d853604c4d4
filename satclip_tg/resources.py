"""What the machine has: host memory and disk space, for checks before work starts."""

import os
import pathlib
import shutil

from .errors import HostMemoryError

__all__ = [
    'HostMemoryError',
    'available_memory_bytes',
    'format_bytes',
    'free_disk_bytes',
]


def _meminfo_available() -> int | None:
    try:
        with open('/proc/meminfo') as handle:
            for line in handle:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    # A container's limit can be far below the host's free memory.
    root = pathlib.Path('/sys/fs/cgroup')
    try:
        limit = (root / 'memory.max').read_text().strip()
        if limit == 'max':
            return None
        used = int((root / 'memory.current').read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def available_memory_bytes() -> int | None:
    """Host memory a new allocation can get, in bytes.

    The smaller of the kernel's ``MemAvailable`` and what the cgroup (v2)
    limit of this container leaves; the physical memory where neither can be
    read.

    Returns:
        The figure, or None when nothing can be read (not Linux).
    """
    figures = [f for f in (_meminfo_available(), _cgroup_available()) if f is not None]
    if figures:
        return min(figures)
    try:
        return int(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def free_disk_bytes(path: str | os.PathLike[str]) -> int:
    """Free space on the file system that holds ``path`` (or its nearest parent).

    Args:
        path: A file or folder, which need not exist yet.

    Returns:
        Free bytes for an unprivileged writer.
    """
    folder = pathlib.Path(path).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def format_bytes(size: float) -> str:
    """Format a byte count with an SI prefix, e.g. ``'25.8 GB'``.

    Args:
        size: Bytes.

    Returns:
        The text (powers of 1000, as disk and RAM sizes are quoted).
    """
    for unit in ('B', 'kB', 'MB', 'GB', 'TB'):
        if abs(size) < 1000 or unit == 'TB':
            return f'{size:.0f} {unit}' if unit == 'B' else f'{size:.1f} {unit}'
        size /= 1000
    raise AssertionError('unreachable')  # pragma: no cover
