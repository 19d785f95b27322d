"""The plugin contract: every hook a plugin may implement.

A plugin is a module listed under the ``automl_rnn`` entry-point group of its
distribution's metadata::

    [project.entry-points.automl_rnn]
    my_plugin = "my_package.my_plugin"

and implements one or more of the hooks below with ``@automl_rnn.hookimpl``. Hooks use a
register-callback style: a plugin calls ``register`` once per thing it adds, so one module
can add several things and every error can name the plugin that caused it.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from automl_rnn import PROJECT_NAME
from automl_rnn.types import Architecture, Task

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def automl_rnn_register_architectures(register: Callable[[Architecture], None]) -> None:
    """Register architecture families.

    Called once per process, the first time anything asks for the list of architectures
    (a search, ``automl-rnn plugins``). Call ``register(Architecture(...))`` for each family
    the plugin adds. Names must be unique over all plugins; a duplicate is an error that
    names both plugins. Keep the module's top level light: import torch inside
    ``Architecture.build``. Returns nothing.
    """


@hookspec
def automl_rnn_register_tasks(register: Callable[[Task], None]) -> None:
    """Register tasks.

    Called once per process, the first time anything asks for the list of tasks. Call
    ``register(Task(...))`` for each task the plugin adds. Names must be unique over all
    plugins; a duplicate is an error that names both plugins. Load data inside
    ``Task.prepare``, never at import or registration time. Returns nothing.
    """
