"""Outputs that appear whole or not at all, and no leftovers of killed runs.

Every output is written under a hidden temporary name in its own folder,
``.NAME.HOST-PID.RANDOM.partial<suffix>``, and renamed when it is complete.
A process killed mid-write (SIGKILL, power loss) cannot remove its temporary
file, so the next writer of the same output removes those whose process is
gone (`remove_stale_temporaries`).
"""

import contextlib
import glob
import os
import pathlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

from .errors import OutputExistsError

__all__ = [
    'OutputExistsError',
    'atomic_output',
    'check_writable',
    'remove_stale_temporaries',
    'temporary_prefix',
]

#: Leftovers whose owner cannot be checked (another host, an older naming)
#: are removed once they are this old, in seconds.
STALE_AFTER = 24 * 3600

_UMASK_LOCK = threading.Lock()


def _host() -> str:
    # Dots and dashes would be ambiguous in the HOST-PID tag.
    return socket.gethostname().replace('.', '_').replace('-', '_') or 'host'


def temporary_prefix(final: str | os.PathLike[str]) -> str:
    """The name prefix of this process's temporary files for an output.

    Args:
        final: The output path.

    Returns:
        ``.NAME.HOST-PID.``, to which a random part and ``.partial`` follow.
    """
    return f'.{pathlib.Path(final).name}.{_host()}-{os.getpid()}.'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(final: str | os.PathLike[str]) -> list[pathlib.Path]:
    """Remove the temporary files or folders killed writers of an output left.

    A leftover ``.NAME.HOST-PID.*.partial*`` of this host whose process no
    longer runs is removed; one of another host, or with another name shape,
    once it is older than `STALE_AFTER`. Temporaries of running processes are
    kept.

    Args:
        final: The output path.

    Returns:
        The paths removed.
    """
    target = pathlib.Path(final)
    if not target.parent.is_dir():
        return []
    prefix = f'.{target.name}.'
    removed = []
    host = _host()
    for name in glob.glob(glob.escape(str(target.parent / prefix)) + '*.partial*'):
        path = pathlib.Path(name)
        tag = path.name[len(prefix) :].split('.', 1)[0]
        owner, _, pid = tag.rpartition('-')
        try:
            if owner == host and pid.isdigit():
                stale = not _alive(int(pid))
            else:
                stale = time.time() - path.lstat().st_mtime > STALE_AFTER
            if not stale:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # removed meanwhile by another writer
            continue
        removed.append(path)
    return removed


def check_writable(path: str | os.PathLike[str], folder: bool = False) -> None:
    """Fail early, before any work, if an output could not be created.

    The nearest existing folder of ``path`` must be a folder in which a file
    can be created; this is tried with a temporary file (removed at once),
    because permission bits say nothing about read-only file systems, ACLs
    or root.

    Args:
        path: The output path.
        folder: The output is a folder (it may exist as one).

    Raises:
        ValueError: If a file output is a folder, a parent of it is a file,
            or no file can be created where it goes.
    """
    target = pathlib.Path(path).absolute()
    if target.is_dir() and not folder:
        raise ValueError(f'output {str(path)!r} is a folder; give a file name')
    where = target if folder and target.is_dir() else target.parent
    # Missing folders are created by the write; their existing parent counts.
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise ValueError(f'cannot write {path}: {where} is a file, not a folder')
    try:
        handle, name = tempfile.mkstemp(
            prefix=f'.{target.name}.', suffix='.probe', dir=where
        )
    except OSError as error:
        raise ValueError(
            f'cannot write {path}: no file can be created in {where} '
            f'({error.strerror or error})'
        ) from error
    os.close(handle)
    os.unlink(name)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], overwrite: bool = False
) -> Iterator[pathlib.Path]:
    """Write a file under a temporary name and move it into place on success.

    The temporary file sits in the destination folder (so the final rename is
    atomic on POSIX) and is removed if the block raises; an existing output is
    then left untouched. Leftovers of killed writers of the same output are
    removed first (`remove_stale_temporaries`).

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
    remove_stale_temporaries(final)
    handle, name = tempfile.mkstemp(
        prefix=temporary_prefix(final),
        suffix=f'.partial{final.suffix}',
        dir=final.parent,
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
