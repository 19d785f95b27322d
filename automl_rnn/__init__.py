"""automl-rnn: find good recurrent neural networks for sequence tasks.

Plugin authors need only ``hookimpl`` from here and the types in ``automl_rnn.types``.
Importing this package is cheap: it imports neither torch nor Lightning.
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "automl_rnn"
"""The pluggy project name and the entry-point group that plugins are listed under."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator that marks a plugin's hook implementation."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
