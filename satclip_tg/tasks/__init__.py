"""TorchGeo tasks: SatCLIP pretraining."""

from .satclip import SatCLIPTask

__all__ = ['SatCLIPTask']
