"""Plain multilayer perceptron and single linear layer networks."""

from torch import Tensor, nn

from ._validation import check_network_arguments

__all__ = ['LinearNetwork', 'MLPNetwork']


class MLPNetwork(nn.Sequential):
    """Linear/ReLU layers with independent weights, then a linear output layer.

    The reference implementation repeats one ``nn.Linear`` object for all
    hidden layers, so they share weights; here every layer has its own.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        hidden_dim: int = 256,
        num_hidden_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        """Initialize an MLP.

        Args:
            dim_in: Number of input features.
            dim_out: Number of output features.
            hidden_dim: Width of each hidden layer.
            num_hidden_layers: Number of hidden Linear/ReLU layers.
            dropout: Dropout probability after each hidden activation.

        Raises:
            ValueError: If a size is not positive or dropout is not in [0, 1).
        """
        check_network_arguments(
            dropout=dropout,
            dim_in=dim_in,
            dim_out=dim_out,
            hidden_dim=hidden_dim,
            num_hidden_layers=num_hidden_layers,
        )
        layers: list[nn.Module] = []
        width = dim_in
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_dim
        layers.append(nn.Linear(width, dim_out))
        super().__init__(*layers)


class LinearNetwork(nn.Linear):
    """A single linear layer: the encoding's features, linearly projected."""

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True) -> None:
        """Initialize a linear network.

        Args:
            dim_in: Number of input features.
            dim_out: Number of output features.
            bias: Whether to learn an additive bias.

        Raises:
            ValueError: If a size is not positive.
        """
        check_network_arguments(dim_in=dim_in, dim_out=dim_out)
        super().__init__(dim_in, dim_out, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer.

        Args:
            x: ``(N, dim_in)`` features.

        Returns:
            ``(N, dim_out)`` embeddings.
        """
        return super().forward(x)
