"""FCNet: the residual MLP of GeoPrior (Mac Aodha et al., ICCV 2019)."""

from torch import Tensor, nn

from ._validation import check_network_arguments

__all__ = ['FCNet', 'ResidualLayer']


class ResidualLayer(nn.Module):
    """``x + ReLU(Linear(Dropout(ReLU(Linear(x)))))``."""

    def __init__(self, width: int, dropout: float) -> None:
        """Initialize a residual layer.

        Args:
            width: Number of input and output features.
            dropout: Dropout probability between the two linear layers.
        """
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer.

        Args:
            x: ``(N, width)`` features.

        Returns:
            ``(N, width)`` features.
        """
        out: Tensor = x + self.block(x)
        return out


class FCNet(nn.Module):
    """Linear -> ReLU -> residual layers -> Linear without bias.

    If you use this network, please cite:

    * https://arxiv.org/abs/1906.05272
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        hidden_dim: int = 256,
        num_residual_layers: int = 4,
        dropout: float = 0.5,
    ) -> None:
        """Initialize an FCNet.

        Args:
            dim_in: Number of input features.
            dim_out: Number of output features.
            hidden_dim: Width of the residual layers.
            num_residual_layers: Number of residual layers.
            dropout: Dropout probability inside each residual layer.

        Raises:
            ValueError: If a size is not positive or dropout is not in [0, 1).
        """
        super().__init__()
        check_network_arguments(
            dropout=dropout,
            dim_in=dim_in,
            dim_out=dim_out,
            hidden_dim=hidden_dim,
            num_residual_layers=num_residual_layers,
        )
        self.stem = nn.Sequential(nn.Linear(dim_in, hidden_dim), nn.ReLU(inplace=True))
        self.residual_layers = nn.Sequential(
            *(ResidualLayer(hidden_dim, dropout) for _ in range(num_residual_layers))
        )
        self.head = nn.Linear(hidden_dim, dim_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network.

        Args:
            x: ``(N, dim_in)`` features.

        Returns:
            ``(N, dim_out)`` embeddings.
        """
        out: Tensor = self.head(self.residual_layers(self.stem(x)))
        return out
