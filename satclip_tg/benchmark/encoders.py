"""Deprecated: use `satclip_tg.evaluation.encoders`.

Every name still resolves here, with a `FutureWarning`.
"""

from .._deprecated import forwarder

__getattr__ = forwarder(__name__, 'satclip_tg.evaluation.encoders')
