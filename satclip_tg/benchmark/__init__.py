"""Deprecated: the downstream evaluation is `satclip_tg.evaluation`.

The downstream data sets moved to `satclip_tg.datasets.downstream` and the
splits to `satclip_tg.datasets.splits`. Every old import path
(``satclip_tg.benchmark`` and its modules, e.g.
``satclip_tg.benchmark.tasks.PackagedTask``) still resolves, with a
`FutureWarning` naming the new path. The ``satclip-tg benchmark`` command
keeps its name.
"""

from .._deprecated import forwarder

__getattr__ = forwarder(
    __name__,
    'satclip_tg.evaluation',
    submodules=(
        'checks',
        'comparison',
        'data',
        'encoders',
        'evaluation',
        'probes',
        'report',
        'runner',
        'sources',
        'splits',
        'tasks',
    ),
)
