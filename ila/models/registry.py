"""A name -> class registry, as timm's and open_clip's: the operators and the video aggregators each have one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry:
    def __init__(self, kind: str, key: str):
        self.kind = kind  # what is registered, for messages ("temporal operator")
        self.key = key  # the config key that names one ("model.operator")
        self._classes: dict[str, Callable[..., Any]] = {}

    def register(self, name: str):
        """Class decorator: registers the class under ``name`` and sets its ``registry_name``."""

        def deco(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._classes[name] = cls
            cls.registry_name = name
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._classes:
            raise ValueError(f"{self.key}: unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        return self._classes[name]
