"""TorchGeo tasks: SatCLIP pretraining and downstream probes."""

from .probes import LocationClassificationTask, LocationRegressionTask
from .satclip import SatCLIPTask

__all__ = ['LocationClassificationTask', 'LocationRegressionTask', 'SatCLIPTask']
