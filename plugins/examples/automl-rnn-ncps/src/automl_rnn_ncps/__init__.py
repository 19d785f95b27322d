"""automl-rnn plugins: continuous-time CfC and LTC families and a CSV forecasting task.

The entry-point modules (``families``, ``csv_forecast``) import neither torch nor ncps, so
``automl-rnn plugins`` stays fast; the models live in ``_backbones`` and ``_forecaster``.
"""

__version__ = "0.1.0"
