"""Deprecated: use `satclip_tg.datasets.downstream.sources`.

Every name still resolves here, with a `FutureWarning`.
"""

from .._deprecated import forwarder

__getattr__ = forwarder(__name__, 'satclip_tg.datasets.downstream.sources')
