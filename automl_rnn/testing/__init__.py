"""Contract test kit for plugin authors: the checks every built-in plugin passes.

Call these from any pytest file (they raise ``AssertionError`` with a message that names the
plugin, the problem and the fix)::

    from automl_rnn.testing import check_architecture, check_task

    def test_my_family():
        check_architecture(MY_ARCH)

    def test_my_task(tmp_path):
        check_task(MY_TASK, MyOptions(path="data.csv"), workdir=tmp_path)

Each check is also available on its own (``check_causal_flag``, ``check_splits``, ...), and
``registered_architectures`` / ``registered_tasks`` list what an installed distribution
registered, for ``pytest.mark.parametrize``. Checks run on one torch thread (the models are
tiny). This package imports torch; ``import automl_rnn`` does not import it.
"""

from automl_rnn.testing.architecture import (
    ArchitectureReport,
    check_architecture,
    check_causal_flag,
    check_determinism,
    check_extremes_train,
    check_learns_tiny_task,
    check_output_shape,
    check_picklable,
    check_space,
    check_variable_length,
    count_parameters,
)
from automl_rnn.testing.discovery import registered_architectures, registered_tasks
from automl_rnn.testing.study import check_micro_study
from automl_rnn.testing.task import (
    check_head_shapes,
    check_metric_declared,
    check_splits,
    check_task,
    check_task_picklable,
    check_task_space,
    check_time_order,
)

__all__ = [
    "ArchitectureReport",
    "check_architecture",
    "check_causal_flag",
    "check_determinism",
    "check_extremes_train",
    "check_head_shapes",
    "check_learns_tiny_task",
    "check_metric_declared",
    "check_micro_study",
    "check_output_shape",
    "check_picklable",
    "check_space",
    "check_splits",
    "check_task",
    "check_task_picklable",
    "check_task_space",
    "check_time_order",
    "check_variable_length",
    "count_parameters",
    "registered_architectures",
    "registered_tasks",
]
