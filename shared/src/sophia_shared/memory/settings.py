"""Memory store settings (env SOPHIA_MEMORY_*, `[memory]` in sophia.toml), shared by every server
that opens the store: the memory server itself, and any server that indexes text into it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from ..paths import sophia_home
from ..settings import ServerSettings, SuiteSettings, settings_config


class MemorySettings(ServerSettings):
    """Where memories live, how they are embedded, and the limits every write and read obeys."""

    model_config = settings_config("memory")

    # None: SQLite + sqlite-vec at $SOPHIA_HOME/memory/memory.db. `sqlite:///abs/path.db` (that is,
    # sqlite:// + an absolute path) picks
    # another file; `postgresql://...` selects PostgreSQL + pgvector. Unset, SOPHIA_DATABASE_URL
    # (the suite's one database) is used when that is set.
    dsn: SecretStr | None = None

    embedding_provider: Literal["local", "openai"] = "local"
    # For "openai": the model name sent to the endpoint. For "local": all-MiniLM-L6-v2-int8 (the
    # default: int8-quantised, about twice as fast, a quarter of the memory) or all-MiniLM-L6-v2
    # (float: sentence-transformers' exact vectors, the model of stores made before int8).
    # Changing it needs `sophia memory reembed` on an existing store.
    embedding_model: str = "all-MiniLM-L6-v2-int8"
    embedding_url: str | None = None
    embedding_api_key: SecretStr | None = None
    embedding_dimensions: int | None = Field(default=None, ge=8, le=8192)
    embedding_timeout_s: float = Field(default=30.0, gt=0, le=600)
    embedding_batch_size: int = Field(default=64, ge=1, le=2048)
    # Where the locally built ONNX graph is cached (default $SOPHIA_HOME/models).
    models_dir: Path | None = None

    # Cosine similarity at or above which a write in the same tenant+namespace updates the
    # existing memory instead of adding a copy. 1.0 disables near-duplicate merging.
    dedupe_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    # Search drops hits whose relevance (cosine similarity lifted by keyword evidence) is below
    # this: MiniLM puts unrelated texts at 0.0-0.25 and paraphrases at 0.4 and above.
    min_relevance: float = Field(default=0.3, ge=0.0, le=1.0)
    max_text_chars: int = Field(default=8_000, ge=1, le=1_000_000)
    max_tags: int = Field(default=32, ge=0, le=256)
    max_batch: int = Field(default=1_000, ge=1, le=100_000)
    max_search_k: int = Field(default=50, ge=1, le=1_000)
    max_list_limit: int = Field(default=200, ge=1, le=10_000)

    # PostgreSQL: connection pool and HNSW search breadth.
    pool_min_size: int = Field(default=1, ge=0, le=100)
    pool_max_size: int = Field(default=8, ge=1, le=200)
    # How long a call waits for a pooled connection: also how soon a call is refused `unavailable`
    # while the database is down.
    pool_timeout_s: float = Field(default=10.0, gt=0, le=600)
    hnsw_ef_search: int = Field(default=100, ge=10, le=1000)

    @model_validator(mode="after")
    def _default_to_database_url(self) -> MemorySettings:
        if self.dsn is None:
            self.dsn = SuiteSettings().database_url
        return self

    def resolved_models_dir(self) -> Path:
        """The directory that caches built embedding models."""
        path = self.models_dir or sophia_home() / "models"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def backend(self) -> Literal["sqlite", "postgres"]:
        """Which backend the DSN selects."""
        dsn = self.dsn.get_secret_value() if self.dsn else ""
        return "postgres" if dsn.startswith(("postgresql://", "postgres://")) else "sqlite"

    def sqlite_path(self) -> Path:
        """The SQLite database file for the embedded backend."""
        dsn = self.dsn.get_secret_value() if self.dsn else ""
        if dsn.startswith("sqlite://"):
            return Path(dsn.removeprefix("sqlite://")).expanduser()
        directory = sophia_home() / "memory"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return directory / "memory.db"
