"""What `make run` does before `sophia up`: a bearer token for this user, then each client's config.

The token (`make-run`, role developer, acting as you) is made once. Its plaintext is printed once,
when it is made, and kept in `$SOPHIA_HOME/keys/make-run.token` (0600, beside the audit key), so
that the configs printed on every run can point the `sophia connect` bridge at the file instead of
repeating the token. HTTP configs name the client's own secret mechanism instead (VS Code prompts
once; Cursor reads `$SOPHIA_TOKEN`).

    python -m sophia_host.first_run [--url http://127.0.0.1:8760/mcp]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TOKEN_NAME = "make-run"  # noqa: S105 - the token's label, not a token
DEFAULT_URL = "http://127.0.0.1:8760/mcp"


def token_file() -> Path:
    from sophia_shared.paths import sophia_home

    return sophia_home() / "keys" / f"{TOKEN_NAME}.token"


def ensure_token(path: Path) -> str | None:
    """Create the make-run token unless an active one exists; the new plaintext (else None)."""
    from sophia_shared.auth import Role, os_user, token_store
    from sophia_shared.settings import SuiteSettings

    store = token_store()
    try:
        if any(r.name == TOKEN_NAME and not r.revoked for r in store.list()):
            return None
        _record, plaintext = store.create(TOKEN_NAME, Role.DEVELOPER, user=SuiteSettings().user or os_user())
    finally:
        store.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plaintext + "\n")
    return plaintext


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sophia_host.first_run")
    parser.add_argument("--url", default=DEFAULT_URL, help="the endpoint `sophia up` will serve")
    url = parser.parse_args(argv).url
    from sophia_shared.errors import SophiaError

    from .client_config import render_all, suite_settings

    path = token_file()
    try:
        created = ensure_token(path)
    except SophiaError as exc:
        print(f"sophia: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 2
    if created is not None:
        print(f"Created the bearer token {TOKEN_NAME!r} (role developer); it is shown only now:\n\n    {created}\n\n"
              f"It is also kept in {path} (0600) for the `sophia connect` bridge.\n")
    elif not path.is_file():
        print(f"note: the {TOKEN_NAME!r} token predates {path}; for configs that read it, run "
              f"`sophia token revoke {TOKEN_NAME}` and `make run` again.\n", file=sys.stderr)
    settings = suite_settings()
    print("To use Sophia from a client, paste one entry into the file named (merge with what is there):\n")
    print(render_all(url=url, token_file=path, settings=settings))
    if settings.left_out:
        print(f"note: the stdio entries leave out your secret settings {', '.join(settings.left_out)}; add them to "
              "their env yourself, or keep them in sophia.toml", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
