"""Memory spaces: each person's own (`personal`) and shared ones (`team`, or any in settings).

A space is a tenant of the store. A personal space is the caller's user name; a shared space
named N is the tenant "space:N" — user names cannot contain ':' (`sophia_shared.auth.check_user`),
and a principal whose name still starts with "space:" (a JWT subject) gets no personal space, so
no person's memories and no shared space can ever be the same tenant. Who may read and write a
shared space is its rule (`SpaceRule`); a personal space is only ever its owner's (an admin may
name another person's with `tenant`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, field_validator
from sophia_shared.auth import Principal, Role
from sophia_shared.errors import Forbidden, InvalidArgument
from sophia_shared.roles import RoleName

PERSONAL = "personal"
SHARED_PREFIX = "space:"
SPACE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

class SpaceRule(BaseModel):
    """Who may use a shared space: `read` is the lowest role that may read it, `write` that may write."""

    read: RoleName = "viewer"
    write: RoleName = "developer"

    @field_validator("write")
    @classmethod
    def _writers_can_write(cls, value: RoleName) -> RoleName:
        # Every memory write tool needs developer already: a lower write rule would only mislead.
        if Role.parse(value) < Role.DEVELOPER:
            raise ValueError("a space's write role must be developer or higher (memory writes need developer)")
        return value


# Why this default: a team's shared notes are for everyone on it, including people who may only
# look (viewer); changing them is as privileged as writing one's own memory (developer).
DEFAULT_SPACES: dict[str, SpaceRule] = {"team": SpaceRule()}


@dataclass(frozen=True)
class Space:
    """A resolved space: its name as the caller says it, and the store tenant behind it."""

    name: str
    tenant: str

    @property
    def shared(self) -> bool:
        return self.name != PERSONAL


def space_of(tenant: str) -> str:
    """The space name a stored tenant belongs to."""
    return tenant.removeprefix(SHARED_PREFIX) if tenant.startswith(SHARED_PREFIX) else PERSONAL


def resolve(
    principal: Principal, space: str, tenant: str | None, spaces: dict[str, SpaceRule], *, write: bool
) -> Space:
    """The space a call acts on, or forbidden / invalid_argument saying what to change."""
    if space == PERSONAL:
        return Space(PERSONAL, _personal(principal, tenant))
    if tenant is not None:
        raise InvalidArgument("tenant names a person's personal space; leave it out when space is a shared one")
    rule = spaces.get(space)
    if rule is None:
        known = ", ".join([PERSONAL, *sorted(spaces)])
        raise InvalidArgument(f"no memory space {space[:64]!r}; use one of: {known}")
    needed = Role.parse(rule.write if write else rule.read)
    if principal.role < needed:
        verb = "write to" if write else "read"
        raise Forbidden(
            f"to {verb} space {space!r} needs role {needed.label} or higher; {principal.name} has role "
            f"{principal.role.label}" + ("" if write else "; use your personal space")
        )
    return Space(space, SHARED_PREFIX + space)


def _personal(principal: Principal, tenant: str | None) -> str:
    own = principal.name
    if own.startswith(SHARED_PREFIX):
        raise Forbidden(f"{own[:80]!r} cannot have a personal memory space (names starting with "
                        f"{SHARED_PREFIX!r} are shared spaces)")
    if tenant is None or tenant == own:
        return own
    if principal.role < Role.ADMIN:
        raise Forbidden(
            f"only an admin may act on another tenant's memories; {own} has role {principal.role.label}: "
            "omit tenant to use your own"
        )
    if tenant.startswith(SHARED_PREFIX):
        raise InvalidArgument(f"name a shared space with space={space_of(tenant)!r}, not tenant")
    return tenant
