"""The one definition of Sophia's roles: the ordered enum the request path compares, and the names
settings and `_meta` carry (`RoleName`), kept in step by a test."""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from .errors import InvalidArgument

# The names as a type, for settings and models that take a role by name.
RoleName = Literal["viewer", "developer", "devops", "admin"]


class Role(IntEnum):
    """Ordered roles: each includes every permission of the ones below it."""

    VIEWER = 1
    DEVELOPER = 2
    DEVOPS = 3
    ADMIN = 4

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        if isinstance(value, Role):
            return value
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(r.name.lower() for r in cls)
            raise InvalidArgument(f"unknown role {value!r}; use one of: {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()
