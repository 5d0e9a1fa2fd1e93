"""The suite's user-facing error types, in a module that imports nothing (so any module can raise them)."""


class IlaError(Exception):
    """A mistake in the user's input (an argument, a file, a config value) or an input that is missing, whose message
    already names the file or key and what was expected. Every user-facing error of the suite derives from it; the
    ``ila`` command prints one as a single line, ``<command>: <kind>: <message>``, with exit code 2.

    A subclass keeps a second, built-in base where callers catch it by that (``ValueError``, ``RuntimeError``,
    ``FileNotFoundError``, ...)."""

    kind = ""  # what the error is about, the CLI's prefix of its message ("config error"); empty: no prefix


class ConfigError(IlaError, ValueError):
    """A config key is unknown or its value is not what the suite expects."""

    kind = "config error"
