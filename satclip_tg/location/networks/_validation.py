"""Argument checks shared by the networks."""


def check_network_arguments(dropout: float = 0.0, **sizes: int) -> None:
    """Raise if a size is not a positive integer or dropout is not in [0, 1).

    Args:
        dropout: Dropout probability.
        **sizes: Sizes by argument name.

    Raises:
        ValueError: Naming the first offending argument.
    """
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    if not 0 <= dropout < 1:
        raise ValueError(f'dropout must be in [0, 1), got {dropout}')
