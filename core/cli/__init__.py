"""The ``cadence`` command: one module per group of commands, all on :data:`cli`.

:data:`cli` imports a command's module when the command is looked up (see
:data:`core.cli.app.COMMAND_MODULES`), so importing this package stays cheap.
"""

from core.cli.app import cli, main

__all__ = ["cli", "main"]
