"""Errors caused by the user's input rather than by a bug.

The CLI prints them as one paragraph, without a traceback, and exits with code 2.
"""


class UserError(Exception):
    """A mistake in what the user asked for; the message says what is wrong and how to fix it."""


class ConfigError(UserError):
    """One or more problems in a configuration, each naming the key, the value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the configuration has {len(self.problems)} problem(s):\n{lines}")
