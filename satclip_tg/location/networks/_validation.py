"""Argument checks shared by the networks."""


def check_positive(**sizes: int) -> None:
    """Raise if any of the named sizes is not a positive integer.

    Args:
        **sizes: Sizes by argument name.

    Raises:
        ValueError: Naming the first offending argument.
    """
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
