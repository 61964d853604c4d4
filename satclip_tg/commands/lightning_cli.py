"""satclip-tg's LightningCLI, whose configuration errors are user errors."""

import warnings
from typing import Any

from jsonargparse import ActionYesNo
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..callbacks.prediction_writer import EmbeddingWriter
from ..errors import ConfigurationError

__all__ = ['ConfigurationError', 'SatCLIPLightningCLI']


class SatCLIPLightningCLI(LightningCLI):
    """LightningCLI that reports constructor errors as `ConfigurationError`.

    Lightning and the components raise `TypeError` or `ValueError` when a
    config gives them a value they cannot take (``trainer.devices: abc``, a
    negative batch size); outside a config such errors would be bugs, here
    they are the user's, and ``satclip-tg`` prints them as one line.

    ``predict`` takes ``--output FILE.parquet`` (and ``--overwrite``): the
    embeddings are streamed into that file by an `EmbeddingWriter`, and the
    trainer returns no predictions (they would fill memory). Without
    ``--output`` and without a prediction writer among the configured
    callbacks, ``predict`` warns that nothing will be written.
    """

    # Set before the trainer is built; LightningCLI runs in its constructor.
    _prediction_writer: EmbeddingWriter | None = None

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        # LightningCLI builds one parser per sub-command here; it is the only
        # place that knows which one, and --output belongs to predict only.
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == 'predict':
            parser.add_argument(
                '--output',
                type=str | None,
                default=None,
                help='Parquet file receiving lon, lat and the embeddings '
                '(emb_*, and img_emb_* with images) of every predicted point',
            )
            parser.add_argument(
                '--overwrite',
                action=ActionYesNo,
                default=False,
                help='replace an existing --output file',
            )
        return parser

    def before_instantiate_classes(self) -> None:
        """For ``predict --output``, check the output before building anything.

        Raises:
            ValueError: If the output is not a writable ``.parquet`` path.
            OutputExistsError: If it exists and ``--overwrite`` is not given.
        """
        self._prediction_writer = None
        if self.subcommand != 'predict':
            return
        config = self.config['predict']
        output = config.get('output')
        if output is None:
            return
        self._prediction_writer = EmbeddingWriter(
            output, overwrite=bool(config.get('overwrite'))
        )
        # The writer streams every batch to disk; kept predictions would
        # only grow with the data set.
        config['return_predictions'] = False

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Build the trainer; for ``predict``, with the prediction writer.

        Args:
            kwargs: Trainer arguments that override the configured ones.

        Returns:
            The trainer.
        """
        if self.subcommand != 'predict':
            return super().instantiate_trainer(**kwargs)
        trainer_config = self._get(self.config_init, 'trainer', default={})
        given = kwargs.pop('callbacks', trainer_config.get('callbacks'))
        if given is None:
            callbacks = []
        elif isinstance(given, list | tuple):
            callbacks = list(given)
        else:  # a single callback
            callbacks = [given]
        if self._prediction_writer is not None:
            callbacks.append(self._prediction_writer)
        elif not any(isinstance(c, BasePredictionWriter) for c in callbacks):
            warnings.warn(
                'satclip-tg predict without --output writes nothing: the '
                'embeddings are computed and discarded. Add --output '
                'FILE.parquet to write lon, lat and the embeddings of every point',
                UserWarning,
                stacklevel=2,
            )
        return super().instantiate_trainer(callbacks=callbacks, **kwargs)

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
