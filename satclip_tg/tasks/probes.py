"""Deprecated: use `satclip_tg.tasks.location_probes`.

The module was renamed so that it no longer shares its name with
`satclip_tg.evaluation.probes` (the benchmark's scikit-learn-style probes).
Every name still resolves here, with a `FutureWarning`.
"""

from .._deprecated import forwarder

__getattr__ = forwarder(__name__, 'satclip_tg.tasks.location_probes')
