"""SIREN: the sine-activated network of every released SatCLIP model."""

import math
from collections.abc import MutableMapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._validation import check_network_arguments

__all__ = ['SirenLayer', 'SirenNet']


class SirenLayer(nn.Module):
    """One SIREN layer: ``sin(w0 * dropout(W x + b))``.

    The parameters are plain ``weight`` and ``bias`` tensors (no wrapped
    ``nn.Linear``), so released SatCLIP state dicts load key for key.

    If you use this layer, please cite:

    * https://arxiv.org/abs/2006.09661
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        w0: float = 1.0,
        is_first: bool = False,
        dropout: float = 0.0,
        activation: bool = True,
    ) -> None:
        """Initialize a SIREN layer.

        Args:
            dim_in: Number of input features.
            dim_out: Number of output features.
            w0: Frequency factor of the sine.
            is_first: Whether this is the first layer, which draws weights and
                biases from U(-1/dim_in, 1/dim_in); other layers draw them from
                U(-sqrt(6/dim_in)/w0, sqrt(6/dim_in)/w0).
            dropout: Dropout probability applied to the linear output before
                the sine, in training mode only.
            activation: Whether to apply the sine; ``False`` gives the plain
                linear output layer.
        """
        super().__init__()
        self.w0 = w0
        self.dropout = dropout
        self.activation = activation
        bound = 1 / dim_in if is_first else math.sqrt(6 / dim_in) / w0
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(dim_out).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer.

        Args:
            x: ``(N, dim_in)`` features.

        Returns:
            ``(N, dim_out)`` features.
        """
        out = F.linear(x, self.weight, self.bias)
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return torch.sin(self.w0 * out) if self.activation else out

    def activate_(self, pre: Tensor) -> Tensor:
        """Apply the sine to pre-activations in place (eval mode: no dropout).

        Args:
            pre: ``W x + b``, overwritten.

        Returns:
            ``pre``, now ``sin(w0 * pre)`` (unchanged for the linear layer).
        """
        if self.activation:
            pre.mul_(self.w0).sin_()
        return pre

    def forward_into(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        """Apply the layer in eval mode as one ``addmm`` and an in-place sine.

        Args:
            x: ``(N, dim_in)`` features.
            out: Where to write the ``(N, dim_out)`` result (default: new memory).

        Returns:
            The result (``out`` when given).
        """
        return self.activate_(torch.addmm(self.bias, x, self.weight.t(), out=out))

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``repr``."""
        dim_out, dim_in = self.weight.shape
        return (
            f'dim_in={dim_in}, dim_out={dim_out}, w0={self.w0}, '
            f'dropout={self.dropout}, activation={self.activation}'
        )


class SirenNet(nn.Module):
    """A stack of SIREN layers followed by a linear output layer.

    With ``hidden_dim=512`` and ``num_hidden_layers=2`` (the defaults) this is
    the network of all released SatCLIP models: ``dim_in -> 512 -> 512 ->
    dim_out``. The first layer uses ``w0_initial`` and the wide first-layer
    initialisation, hidden layers ``w0``; dropout acts before each sine.
    Parameter names (``layers.{i}.weight``, ``last_layer.weight``, ...) match
    the released checkpoints.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        hidden_dim: int = 512,
        num_hidden_layers: int = 2,
        w0: float = 1.0,
        w0_initial: float = 30.0,
        dropout: float = 0.5,
    ) -> None:
        """Initialize a SIREN network.

        Args:
            dim_in: Number of input features (the encoding's ``embedding_dim``).
            dim_out: Number of output features (the embedding size).
            hidden_dim: Width of the hidden layers (SatCLIP's "capacity").
            num_hidden_layers: Number of sine layers before the output layer.
            w0: Sine frequency of the hidden layers.
            w0_initial: Sine frequency of the first layer.
            dropout: Dropout probability before each sine (training only).

        Raises:
            ValueError: If a size is not positive or dropout is not in [0, 1).
        """
        super().__init__()
        self.dim_in = dim_in
        self.dim_out = dim_out
        check_network_arguments(
            dropout=dropout,
            dim_in=dim_in,
            dim_out=dim_out,
            hidden_dim=hidden_dim,
            num_hidden_layers=num_hidden_layers,
        )
        self.layers = nn.ModuleList(
            SirenLayer(
                dim_in if index == 0 else hidden_dim,
                hidden_dim,
                w0=w0_initial if index == 0 else w0,
                is_first=index == 0,
                dropout=dropout,
            )
            for index in range(num_hidden_layers)
        )
        self.last_layer = SirenLayer(hidden_dim, dim_out, w0=w0, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network.

        Args:
            x: ``(N, dim_in)`` features.

        Returns:
            ``(N, dim_out)`` embeddings.
        """
        for layer in self.layers:
            x = layer(x)
        out: Tensor = self.last_layer(x)
        return out

    def input_linear(self) -> tuple[Tensor, Tensor]:
        """The weight and bias of the first layer's affine map.

        With `forward_from_linear` this splits the network after its first
        ``W x + b``, so that callers who can compute that product more cheaply
        (the row factorisation of grids) can do so.

        Returns:
            ``(weight, bias)``: ``(hidden_dim, dim_in)`` and ``(hidden_dim,)``.
        """
        first = self._sine_layers()[0]
        return first.weight, first.bias

    def forward_from_linear(
        self,
        pre: Tensor,
        out: Tensor | None = None,
        *,
        scratch: MutableMapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Finish an eval-mode forward from the first layer's ``W x + b``.

        Args:
            pre: ``(N, hidden_dim)`` pre-activations of the first layer (see
                `input_linear`); overwritten.
            out: As in `forward_into`.
            scratch: As in `forward_into`.

        Returns:
            ``(N, dim_out)`` embeddings, equal to ``self(x)`` in eval mode.
        """
        layers = self._sine_layers()
        return self._run(layers[0].activate_(pre), layers[1:], out, scratch)

    def forward_into(
        self,
        x: Tensor,
        out: Tensor | None = None,
        *,
        scratch: MutableMapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Apply the network in eval mode with in-place operations.

        The fast path of `satclip_tg.embedding.embed_points` (see
        ``docs/networks.md``): equal to ``self(x)`` in eval mode (dropout is
        then the identity), but each layer is one ``addmm`` followed by an
        in-place ``mul``/``sin``, into reusable buffers. Call it without
        autograd (under ``torch.inference_mode()`` or ``torch.no_grad()``).

        Args:
            x: ``(N, dim_in)`` features, in the network's dtype and device.
            out: Where to write the ``(N, dim_out)`` result, in the network's
                dtype and device (default: new memory).
            scratch: A dictionary the caller keeps between calls; the two
                hidden-size buffers the layers alternate between are kept in it
                (and grown when a call has more rows), so that repeated calls
                allocate nothing. ``None``: fresh buffers for this call.

        Returns:
            ``(N, dim_out)`` embeddings (``out`` when given).
        """
        return self._run(x, self._sine_layers(), out, scratch)

    def _sine_layers(self) -> list[SirenLayer]:
        return [cast(SirenLayer, layer) for layer in self.layers]

    def _run(
        self,
        x: Tensor,
        layers: list[SirenLayer],
        out: Tensor | None,
        scratch: MutableMapping[str, Tensor] | None,
    ) -> Tensor:
        rows = x.shape[0]
        for index, layer in enumerate(layers):
            target = None
            if scratch is not None:
                # Alternate between two buffers, so a layer never writes into
                # the memory it reads.
                key = f'hidden{index % 2}'
                width = layer.weight.shape[0]
                buffer = scratch.get(key)
                if (
                    buffer is None
                    or buffer.shape[0] < rows
                    or buffer.shape[1] != width
                    or buffer.dtype != x.dtype
                    or buffer.device != x.device
                ):
                    buffer = x.new_empty(max(rows, 1), width)
                    scratch[key] = buffer
                target = buffer[:rows]
            x = layer.forward_into(x, target)
        return self.last_layer.forward_into(x, out)
