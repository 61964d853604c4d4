"""Sub-commands of ``satclip-tg`` besides the LightningCLI ones.

Each module here defines ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function ``(args) -> exit status``.
"""
