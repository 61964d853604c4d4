"""satclip-tg's LightningCLI, whose configuration errors are user errors."""

from lightning.pytorch.cli import LightningCLI

__all__ = ['ConfigurationError', 'SatCLIPLightningCLI']


class ConfigurationError(ValueError):
    """A configured class refused its arguments (a bad value in the config)."""


class SatCLIPLightningCLI(LightningCLI):
    """LightningCLI that reports constructor errors as `ConfigurationError`.

    Lightning and the components raise `TypeError` or `ValueError` when a
    config gives them a value they cannot take (``trainer.devices: abc``, a
    negative batch size); outside a config such errors would be bugs, here
    they are the user's, and ``satclip-tg`` prints them as one line.
    """

    def instantiate_classes(self) -> None:
        """Build the model, the data module and the trainer.

        Raises:
            ConfigurationError: If one of them refuses its configured
                arguments.
        """
        try:
            super().instantiate_classes()
        except (TypeError, ValueError) as error:
            raise ConfigurationError(str(error)) from error
