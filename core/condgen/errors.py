"""User-facing errors.

Every error a user can cause (bad plugin name, bad condition, bad weights, unwritable
output ...) is a ``CondgenError``: the CLI prints its message as one line and exits
non-zero, without a traceback. The message says what went wrong *and* what to do.
"""


class CondgenError(Exception):
    """An error the user can fix; its message is one line that says how."""

    exit_code = 1


class UsageError(CondgenError):
    """Bad command-line or API arguments."""

    exit_code = 2


class PluginError(CondgenError):
    """A plugin is unknown, failed to load, or broke its contract."""


class ConditionError(UsageError):
    """A condition key or value is not accepted by the generator's schema."""


class CheckpointError(CondgenError):
    """Weights are missing, corrupt, foreign or not safetensors."""


class OutputError(CondgenError):
    """The run directory cannot be written, or a resume does not match."""


class StepFailed(CondgenError):
    """A step of a run (sampling, the collection files, the preview) raised an error that
    is not a user error; the message names the step and keeps the cause's first line."""

    def __init__(self, step: str, cause: BaseException, advice: str = ""):
        self.step = step
        self.cause = cause
        self.summary = f"{step} failed: {describe(cause)}"
        super().__init__(self.summary + (f"; {advice}" if advice else ""))

    def with_advice(self, advice: str) -> "StepFailed":
        return StepFailed(self.step, self.cause, advice)


class PluginFault(PluginError):
    """A plugin's own code broke at run time: it raised, or returned what its contract
    does not allow (a model output of the wrong shape, too few decoded samples). The
    message names the plugin, the generator and what broke, and sends the user to the
    plugin's authors rather than to condgen's."""

    def __init__(self, plugin: str, generator: str, what: str, advice: str = ""):
        self.plugin, self.generator, self.what = plugin, generator, what
        self.summary = f"plugin {plugin!r} (generator {generator}): {what}"
        self.advice = advice
        super().__init__(f"{self.summary}; report it to the plugin's authors" + (f"; {advice}" if advice else ""))

    def with_advice(self, advice: str) -> "PluginFault":
        return PluginFault(self.plugin, self.generator, self.what, advice)


def _message_lines(exc: BaseException) -> list[str]:
    try:
        return str(exc).strip().splitlines()
    except Exception:  # a plugin's exception may break even its own __str__
        return []


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (or ``Type``), for one-line errors."""
    lines = _message_lines(exc)
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def first_line(exc: BaseException) -> str:
    """The first line of the message (or ``Type`` when there is none)."""
    lines = _message_lines(exc)
    return lines[0] if lines else type(exc).__name__
