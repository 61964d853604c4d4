"""Optional dependencies: is one installed, and import it or say how to get it.

Some features read data with packages that satclip-tg does not require (h5py
for the downstream data sets' HDF5 files, for instance). `module_available`
tells whether such a package can be imported without importing it (so listing
what is available stays fast), and `require_module` imports it or raises an
error that says what to install.
"""

import importlib
import importlib.util
from types import ModuleType

__all__ = ['module_available', 'require_module']


def module_available(name: str) -> bool:
    """Whether a module can be imported, without importing it.

    Args:
        name: The top-level module name.

    Returns:
        True if the module is installed.
    """
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_module(
    name: str, message: str, error: type[Exception] = ImportError
) -> ModuleType:
    """Import an optional module, or raise ``error(message)`` if it is missing.

    Args:
        name: The module to import.
        message: What needs the module and how to install it.
        error: The exception to raise, e.g. one its callers already catch.

    Returns:
        The module.

    Raises:
        Exception: ``error(message)``, chained to the `ImportError`, if the
            module cannot be imported.
    """
    try:
        return importlib.import_module(name)
    except ImportError as cause:
        raise error(message) from cause
