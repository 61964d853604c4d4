"""Moved module paths (``satclip_tg.benchmark``...) still work, warn, name the new."""

import importlib
import subprocess
import sys

import pytest

from satclip_tg.datasets.downstream import PackagedDownstreamDataset

#: Old module -> (a name it held, the module that holds it now).
MOVED = {
    'satclip_tg.benchmark': ('run_benchmark', 'satclip_tg.evaluation'),
    'satclip_tg.benchmark.tasks': ('PackagedTask', 'satclip_tg.datasets.downstream'),
    'satclip_tg.benchmark.data': (
        'era5_monthly',
        'satclip_tg.datasets.downstream.readers',
    ),
    'satclip_tg.benchmark.sources': (
        'SOURCES',
        'satclip_tg.datasets.downstream.sources',
    ),
    'satclip_tg.benchmark.checks': (
        'check_point_labels',
        'satclip_tg.datasets.downstream.checks',
    ),
    'satclip_tg.benchmark.splits': ('make_splits', 'satclip_tg.datasets.splits'),
    'satclip_tg.benchmark.evaluation': ('evaluate', 'satclip_tg.evaluation.evaluation'),
    'satclip_tg.benchmark.probes': ('fit_probe', 'satclip_tg.evaluation.probes'),
    'satclip_tg.benchmark.encoders': (
        'resolve_encoder',
        'satclip_tg.evaluation.encoders',
    ),
    'satclip_tg.benchmark.runner': ('run_benchmark', 'satclip_tg.evaluation.runner'),
    'satclip_tg.benchmark.report': ('write_report', 'satclip_tg.evaluation.report'),
    'satclip_tg.benchmark.comparison': (
        'count_wins',
        'satclip_tg.evaluation.comparison',
    ),
    'satclip_tg.tasks.probes': (
        'LocationRegressionTask',
        'satclip_tg.tasks.location_probes',
    ),
    'satclip_tg.demo.bluemarble': (
        'build_bluemarble',
        'satclip_tg.datasets.bluemarble',
    ),
}


@pytest.mark.parametrize('old', sorted(MOVED))
def test_old_path_warns_and_gives_the_same_object(old: str) -> None:
    name, new = MOVED[old]
    module = importlib.import_module(old)
    # A fresh look-up: a forwarded name is stored after its first warning.
    module.__dict__.pop(name, None)
    with pytest.warns(FutureWarning, match=new.replace('.', r'\.')):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_unknown_name_is_an_attribute_error() -> None:
    module = importlib.import_module('satclip_tg.benchmark.tasks')
    with pytest.raises(AttributeError, match='no_such_name'):
        module.no_such_name  # noqa: B018


def test_a_subclass_of_the_old_base_class_is_a_downstream_data_set() -> None:
    importlib.import_module('satclip_tg.benchmark.tasks').__dict__.pop(
        'PackagedTask', None
    )
    with pytest.warns(FutureWarning):
        from satclip_tg.benchmark.tasks import PackagedTask

    assert PackagedTask is PackagedDownstreamDataset


def test_point_data_module_does_not_load_the_evaluation_package() -> None:
    code = (
        'import sys, satclip_tg.datamodules.points; '
        "print(sorted(m for m in sys.modules if m.startswith('satclip_tg.') "
        "and m.split('.')[1] in ('evaluation', 'benchmark')))"
    )
    result = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == '[]'
