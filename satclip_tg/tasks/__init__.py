"""TorchGeo tasks: SatCLIP pretraining and downstream probes."""

from .fusion import LocationFusionClassification, LocationFusionRegression
from .location_probes import LocationClassificationTask, LocationRegressionTask
from .satclip import SatCLIPPretraining, SatCLIPTask

__all__ = [
    'LocationClassificationTask',
    'LocationFusionClassification',
    'LocationFusionRegression',
    'LocationRegressionTask',
    'SatCLIPPretraining',
    'SatCLIPTask',
]
