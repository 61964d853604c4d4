"""Fixtures shared by the tests of the loaders, the registry and the export."""

import pathlib

import pytest
from tiny_fits import fit_tiny


@pytest.fixture(scope='session')
def trained(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The checkpoint of a tiny one-step fit (`fit_tiny`), written once.

    Tests read it or copy it; none may change it.
    """
    return fit_tiny(tmp_path_factory.mktemp('tiny-fit'))
