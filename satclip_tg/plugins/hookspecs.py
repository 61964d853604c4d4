"""The plugin contract: the hooks a satclip-tg plugin may implement.

A plugin is any importable object (usually a module) with functions marked
``@hookimpl`` whose names match the specifications below. Each hook returns a
mapping from a component name (used in Python and in LightningCLI YAML) to a
factory that builds the component. Built-in components are registered through
exactly these hooks, so a third-party plugin is a first-class citizen.

Plugins are discovered through the ``satclip_tg`` entry-point group::

    [project.entry-points.satclip_tg]
    my_plugin = "my_package.plugin"

A plugin module may declare the contract version it was written against with a
module attribute ``SATCLIP_TG_HOOK_API = 1``; a mismatch is reported loudly
instead of failing in strange ways later.
"""

from collections.abc import Callable, Mapping
from typing import Any

import pluggy
from torch import nn

__all__ = [
    'HOOK_API_VERSION',
    'PROJECT_NAME',
    'hookimpl',
    'hookspec',
    'satclip_tg_downstream_tasks',
    'satclip_tg_image_backbones',
    'satclip_tg_networks',
    'satclip_tg_positional_encodings',
]

#: The pluggy project name and the entry-point group plugins register under.
PROJECT_NAME = 'satclip_tg'

#: Version of the hook contract defined in this module. It changes only when a
#: hook's signature or the meaning of its return value changes.
HOOK_API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def satclip_tg_positional_encodings() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide positional encodings.

    Returns:
        A mapping from name to a factory (usually a subclass of
        `PositionalEncoding`). The
        factory is called with keyword arguments only and must return a module
        with an ``embedding_dim`` attribute whose ``forward`` maps an ``(N, 2)``
        tensor of (lon, lat) degrees to ``(N, embedding_dim)`` features.
    """
    raise NotImplementedError


@hookspec
def satclip_tg_networks() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide location networks (the trainable part of a location encoder).

    Returns:
        A mapping from name to a factory called as
        ``factory(dim_in, dim_out, **hyperparameters)`` that returns a module
        mapping ``(N, dim_in)`` to ``(N, dim_out)``.
    """
    raise NotImplementedError


@hookspec
def satclip_tg_image_backbones() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide image backbones for the image side of SatCLIP.

    Returns:
        A mapping from name to a factory called as
        ``factory(in_channels, num_outputs, weights=None, freeze=True,
        **backbone_args)`` that returns a module mapping
        ``(B, in_channels, H, W)`` images to ``(B, num_outputs)`` embeddings.
        ``weights`` is ``None``, a TorchGeo weights name or a checkpoint path;
        with ``freeze`` only the final projection may train, and the rest must
        stay in eval mode; ``backbone_args`` are the backbone's own options.
    """
    raise NotImplementedError


@hookspec
def satclip_tg_downstream_tasks() -> Mapping[str, Callable[..., Any]]:
    """Provide downstream evaluation tasks (labelled point data sets).

    The factory is called with keyword arguments only (the task's options) and
    returns a task object with these members:

    * ``task_type``: ``'regression'`` or ``'classification'``;
    * ``num_classes``: the number of classes (an ``int`` of at least 2) for
      classification, ``None`` for regression;
    * ``load(num_points, seed)``: returns ``(coords, labels)``, two NumPy
      arrays or torch tensors: ``coords`` of shape ``(n, 2)``, float64, valid
      (lon, lat) degrees, with ``1 <= n <= num_points``; ``labels`` of shape
      ``(n,)``, float64 and finite for regression, int64 in
      ``[0, num_classes)`` for classification. The same ``seed`` gives the
      same result. When data it needs is missing, it raises an error whose
      message says what to install.

    The hook and the factory stay cheap: data is read and heavy packages are
    imported in ``load`` only. `satclip_tg.testing.check_downstream_task`
    checks this contract.

    Optional members that ``satclip-tg benchmark`` uses when present:
    ``description`` (one line), ``sources`` (data sources with licences),
    ``classes`` (class names, indexed by the labels) and
    ``unavailable_reason()`` (``None``, or why the task cannot run here, with
    the install hint, found without loading data: the benchmark then lists
    the task as unavailable and runs the others). A factory that accepts a
    ``cache_dir`` keyword gets the benchmark's cache folder. The benchmark
    caches what ``load`` returns (see `satclip_tg.datasets.downstream.load_points`).

    Returns:
        A mapping from name to a factory of downstream task objects.
    """
    raise NotImplementedError
