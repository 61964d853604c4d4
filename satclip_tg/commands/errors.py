"""How the ``satclip-tg`` command tells user errors from bugs, and words them.

A user error (a typo in a config, a missing file, a bad setting, a checkpoint
of the wrong kind) prints one ``error: ...`` message and exits with 1; a bug
keeps its traceback. ``--debug`` (or ``SATCLIP_TG_DEBUG=1``) shows the
traceback of user errors too.
"""

import argparse
import difflib
import importlib
import inspect
import re
import sys

__all__ = ['report_error', 'summarise_config_error', 'user_error_message']

# Lines of jsonargparse's messages that say nothing a user needs: the Union
# plumbing around every class option, and the repr of the whole value.
_NOISE = (
    re.compile(r'^Does not validate against any of the Union subtypes'),
    re.compile(r'^Subtypes: '),
    re.compile(r'^Errors:$'),
    re.compile(r"^- Expected a <class 'NoneType'>"),
    re.compile(r'^Given value type: '),
    re.compile(r'^Given value: '),
)
_KEY = re.compile(r'^Parser key "([^"]+)":\s*(.*)$')
_CLASS_PATH = re.compile(r"class_path='([\w.]+)'")
_PROBLEM = re.compile(r"^- Problem with given class_path '([\w.]+)':$", re.MULTILINE)
_UNKNOWN_OPTION = re.compile(r"Option '(\w+)' is not accepted")
#: At most this many lines of a configuration error are shown.
MAX_LINES = 4


def _load_class(class_path: str) -> type | None:
    module_name, _, name = class_path.rpartition('.')
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return cls if isinstance(cls, type) else None


def _accepted_options(class_path: str) -> list[str]:
    cls = _load_class(class_path)
    if cls is None:
        return []
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    return list(parameters)


def _role(class_path: str) -> str:
    """``'model (path)'`` or ``'data (path)'``: which config section it is."""
    from lightning.pytorch import LightningDataModule, LightningModule

    cls = _load_class(class_path)
    if cls is not None and issubclass(cls, LightningModule):
        return f'model ({class_path})'
    if cls is not None and issubclass(cls, LightningDataModule):
        return f'data ({class_path})'
    return class_path


def report_error(message: str) -> int:
    """Print a sub-command's user error, ``satclip-tg: error: ...``, to stderr.

    Args:
        message: What went wrong and what to do.

    Returns:
        1, the exit status of a user error, so a handler can ``return`` it.
    """
    print(f'satclip-tg: error: {message}', file=sys.stderr)
    return 1


def summarise_config_error(message: str) -> str:
    """Shorten a LightningCLI (jsonargparse) error to its key path and cause.

    Args:
        message: The parser's message.

    Returns:
        ``'<key path>: <cause>'`` in at most `MAX_LINES` lines, with a close
        match when an option name was mistyped.
    """
    lines = [line.strip() for line in message.strip().splitlines()]
    key = ''
    first = _KEY.match(lines[0]) if lines else None
    if first:
        key, rest = first.groups()
        lines = [rest, *lines[1:]] if rest else lines[1:]
    if not key:
        found = _CLASS_PATH.search(message)
        if found:
            key = _role(found.group(1))
    kept: list[str] = []
    for line in lines:
        if not line or any(pattern.match(line) for pattern in _NOISE):
            continue
        problem = _PROBLEM.match(line)
        if problem:
            key = f'{key} ({problem.group(1)})' if key else problem.group(1)
            continue
        kept.append(line.removeprefix('- '))
    unknown = _UNKNOWN_OPTION.search(message)
    problem_class = _PROBLEM.search(
        '\n'.join(line.strip() for line in message.splitlines())
    )
    if unknown and problem_class:
        options = _accepted_options(problem_class.group(1))
        close = difflib.get_close_matches(unknown.group(1), options, n=2)
        if close:
            kept.append(f'did you mean {" or ".join(map(repr, close))}?')
    if not kept:
        kept = ['invalid value']
    text = '\n  '.join(kept[:MAX_LINES])
    return f'{key}: {text}' if key else text


def user_error_message(error: BaseException) -> str | None:
    """The message of an error that is the user's to fix, or None for a bug.

    User errors are the configuration errors of LightningCLI, the errors
    satclip-tg raises on purpose about inputs (`ValueError` and its
    subclasses, such as `CheckpointError` and `FeatureCacheError`), missing or
    inaccessible files, unreadable tiles, missing benchmark data, memory the
    machine does not have (`HostMemoryError`), and Lightning's
    misconfiguration errors (devices, accelerators, strategies).

    Args:
        error: The exception.

    Returns:
        The message to print after ``error:``, or None.
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from ..errors import DataUnavailableError, HostMemoryError, UnreadableTileError

    if isinstance(error, argparse.ArgumentError):
        return summarise_config_error(str(error))
    message = str(error) or type(error).__name__
    if isinstance(error, ValueError):
        if 'Does not validate against any of the Union subtypes' in message:
            return summarise_config_error(message)
        return message
    if isinstance(
        error,
        MisconfigurationException
        | HostMemoryError
        | UnreadableTileError
        | DataUnavailableError
        | FileNotFoundError
        | FileExistsError
        | PermissionError
        | IsADirectoryError
        | NotADirectoryError,
    ):
        return message
    return None
