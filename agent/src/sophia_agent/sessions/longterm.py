"""Long-term memory for the agent loop: the shared memory store, in the asking user's own tenant.

Shared (team) spaces are reached only through `resolve_space`, the memory server's own rule
(`sophia_memory.spaces.resolve`, bound to its settings by the host): this package never imports a
server, so without a resolver only the personal space exists.
"""

from __future__ import annotations

from collections.abc import Callable

from sophia_shared.auth import Principal
from sophia_shared.errors import Forbidden, InvalidArgument
from sophia_shared.memory import MemoryFilter, MemoryInput, MemoryStore, PutResult, SearchHit

PERSONAL = "personal"
SHARED_PREFIX = "space:"
# (principal, space, write) -> the store tenant, or forbidden / invalid_argument.
SpaceResolver = Callable[[Principal, str, bool], str]


class LongTermMemory:
    """`remember` and `recall` as one principal, scoped to their tenant (or a space the rules allow)."""

    def __init__(self, store: MemoryStore, principal: Principal, *, resolve_space: SpaceResolver | None = None,
                 namespace: str = "agent"):
        self.store, self.principal, self.namespace = store, principal, namespace
        self._resolve = resolve_space

    def tenant(self, space: str = PERSONAL, *, write: bool = False) -> str:
        """The store tenant behind `space` for this principal."""
        if space == PERSONAL:
            own = self.principal.name
            if own.startswith(SHARED_PREFIX):
                raise Forbidden(f"{own[:80]!r} cannot have a personal memory space")
            return own
        if self._resolve is None:
            raise InvalidArgument(f"no memory space {space[:64]!r} here; use {PERSONAL!r}")
        return self._resolve(self.principal, space, write)

    async def remember(self, text: str, *, space: str = PERSONAL, tags: list[str] | None = None,
                       source_ref: str | None = None) -> PutResult:
        """Store one memory (a near-duplicate is updated instead)."""
        item = MemoryInput(text=text, namespace=self.namespace, tags=tags or [], source="agent", source_ref=source_ref)
        return await self.store.put(self.tenant(space, write=True), item)

    async def recall(self, query: str, *, k: int = 5, space: str = PERSONAL,
                     all_namespaces: bool = False) -> list[SearchHit]:
        """The memories most relevant to `query`, best first."""
        flt = None if all_namespaces else MemoryFilter(namespaces=[self.namespace])
        return await self.store.search(self.tenant(space), query, flt, k=k)
