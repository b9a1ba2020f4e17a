"""`sophia memory ...`: maintenance of the memory store (the host mounts `memory_app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from .memory.settings import MemorySettings

# The memory store, the SDK and pydantic settings are imported when a command runs, so that
# `sophia --help` can list this group without loading them.

memory_app = typer.Typer(
    name="memory",
    help="Maintain the memory store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@memory_app.callback()
def memory() -> None:
    """Maintain the memory store (settings: SOPHIA_MEMORY_* or [memory] in sophia.toml)."""
    # A callback keeps this a command group even while it has a single command.


@memory_app.command()
def reembed(
    provider: Annotated[
        str | None, typer.Option(help="local or openai (default: SOPHIA_MEMORY_EMBEDDING_PROVIDER)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (default: SOPHIA_MEMORY_EMBEDDING_MODEL)")] = None,
    url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Texts embedded per batch")] = 256,
) -> None:
    """Recompute every memory's vector with the configured (or given) model, batch by batch.

    Run it after changing the embedding model or provider: until then the store refuses writes
    and searches whose vectors would mix models or dimensions. Each batch is committed, so a run
    that is stopped (Ctrl-C, a crash) resumes where it stopped when run again; the store keeps
    serving its old model until the last batch.
    """
    import anyio

    from .errors import SophiaError
    from .memory.settings import MemorySettings
    from .settings import SettingsError, load_settings

    overrides: dict[str, Any] = {}
    if provider is not None:
        if provider not in ("local", "openai"):
            typer.echo("sophia memory reembed: --provider must be local or openai", err=True)
            raise typer.Exit(2)
        overrides["embedding_provider"] = provider
    if model is not None:
        overrides["embedding_model"] = model
    if url is not None:
        overrides["embedding_url"] = url
    try:
        settings = load_settings(MemorySettings, **overrides)
    except SettingsError as exc:
        typer.echo(f"sophia memory reembed: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        line = anyio.run(_reembed, settings, batch_size)
    except SophiaError as exc:
        typer.echo(f"sophia memory reembed: [{exc.code.value}] {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(line)


async def _reembed(settings: MemorySettings, batch_size: int) -> str:
    from .memory import open_store
    from .memory.embeddings import embedder_from_settings

    target = embedder_from_settings(settings)
    store = await open_store(settings, embedder=target)
    try:
        report = await store.reembed(target, batch_size=batch_size)
    finally:
        await store.close()
    before = report.from_model or "nothing"
    resumed = f"; {report.already_done} were done by an earlier run" if report.already_done else ""
    return (
        f"reembedded {report.reembedded} memories: {before} -> {report.to_model} "
        f"({report.dimensions} dimensions, {store.backend}){resumed}"
    )
