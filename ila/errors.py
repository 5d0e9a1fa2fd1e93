"""The suite's user-facing error types, in a module that imports nothing (so any module can raise them)."""


class ConfigError(ValueError):
    """A config key is unknown or its value is not what the suite expects."""
