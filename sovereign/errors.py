"""The package's exception hierarchy: the CLI maps each kind to an exit code."""


class SovereignError(Exception):
    """Base of every error sovereign raises on purpose; the message is shown to the user as is."""

    exit_code = 1


class BadInput(SovereignError):
    """The user's input is wrong: the message names the field and the fix. CLI exit code 2."""

    exit_code = 2


class ToolMissing(SovereignError):
    """An external binary is not installed; the message says how to install it."""

    exit_code = 2


class Undecided(SovereignError):
    """No policy engine could decide (no verified bundle, engine unreachable); the message says why and
    how to fix it. CLI exit code 2, as for bad input: nothing was judged."""

    exit_code = 2


class NotRunning(SovereignError):
    """A service the command needs does not answer (the API server, the admission webhook): the message
    names it and the command that starts it. CLI exit code 2, as for any set-up problem: nothing was done."""

    exit_code = 2
