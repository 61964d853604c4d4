"""Koppen-Geiger climate groups as a satclip-tg downstream task."""

from .classify import KOPPEN_GROUPS, koppen_groups
from .task import KoppenTask

__all__ = ['KOPPEN_GROUPS', 'KoppenTask', 'koppen_groups']
