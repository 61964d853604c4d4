"""Outputs that appear whole or not at all."""

import contextlib
import os
import pathlib
import tempfile
import threading
from collections.abc import Iterator

__all__ = ['OutputExistsError', 'atomic_output']

_UMASK_LOCK = threading.Lock()


class OutputExistsError(FileExistsError):
    """The output exists and overwriting was not allowed."""


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], overwrite: bool = False
) -> Iterator[pathlib.Path]:
    """Write a file under a temporary name and move it into place on success.

    The temporary file sits in the destination folder (so the final rename is
    atomic on POSIX) and is removed if the block raises; an existing output is
    then left untouched.

    Example::

        with atomic_output('embeddings.parquet') as tmp:
            table.to_parquet(tmp)

    Args:
        path: The final output path.
        overwrite: Whether an existing file may be replaced.

    Yields:
        The temporary path to write to (same suffix as ``path``).

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
    """
    final = pathlib.Path(path)
    if final.exists() and not overwrite:
        raise OutputExistsError(
            f'{final} already exists; pass --overwrite (overwrite=True) to replace '
            f'it, or choose another output path'
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f'.{final.name}.', suffix=f'.partial{final.suffix}', dir=final.parent
    )
    os.close(handle)
    temporary = pathlib.Path(name)
    try:
        yield temporary
        # mkstemp makes the file private (0o600); give the output the
        # permissions a plain open(path, 'w') would have.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    with _UMASK_LOCK:
        # os.umask can only be read by setting it; restore it at once.
        mask = os.umask(0o022)
        os.umask(mask)
    return mask
