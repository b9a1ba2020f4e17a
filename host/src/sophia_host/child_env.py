"""The environment a child of the host gets: its own settings and what its client needs, nothing else.

A child inheriting the host's whole environment sees every other server's secrets (the Gong key
in the Snowflake child, where a warehouse function that reads /proc/self/environ can show it).
So each child starts from an empty environment plus, by name:
- what any process needs to run (PATH, HOME, locale, temp dir, Python's own variables);
- the suite's state and config (SOPHIA_HOME, SOPHIA_CONFIG) and every suite-wide setting
  (SuiteSettings' fields, read by the shared library in every server);
- its own prefix, SOPHIA_<NAME>_*, and the shared server settings' prefix SOPHIA_SERVER_*;
- what the real client library of that server reads from the environment (CLIENT_ENV below);
- its `env` table in sophia.toml, then the host's trust flag.
Anything more a deployment needs goes into that `env` table, by value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sophia_shared.paths import sophia_home

# Children started by the host accept the caller's principal from each call's _meta, and list
# every tool: the host lists to each caller what that caller's role may call.
TRUST_ENV = {"SOPHIA_TRUST_HOST_PRINCIPAL": "1", "SOPHIA_LIST_ALL_TOOLS": "1"}


@dataclass(frozen=True)
class Passed:
    """Environment variables passed through by exact name or by prefix."""

    names: frozenset[str] = field(default_factory=frozenset)
    prefixes: tuple[str, ...] = ()

    def __or__(self, other: Passed) -> Passed:
        return Passed(self.names | other.names, self.prefixes + other.prefixes)

    def pick(self, environ: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in environ.items() if k in self.names or k.startswith(self.prefixes)}


def _passed(*names: str, prefixes: tuple[str, ...] = ()) -> Passed:
    return Passed(frozenset(names), prefixes)


# OTEL_*: where a child exports its spans when SOPHIA_OTEL=1 (OTEL_EXPORTER_OTLP_ENDPOINT and the like).
PROCESS = _passed("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
                  prefixes=("LC_", "PYTHON", "OTEL_"))
# Outbound HTTPS: proxies and the CA bundle a company's network may require.
NETWORK = _passed("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy",
                  "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

# What each server's real client reads from the environment, beyond its SOPHIA_<NAME>_* settings.
CLIENT_ENV: dict[str, Passed] = {
    # docker-py's kwargs_from_env (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), the CLI's
    # config dir, ssh:// engines through the user's agent, rootless engines under XDG_RUNTIME_DIR.
    "docker": NETWORK | _passed("SSH_AUTH_SOCK", "XDG_RUNTIME_DIR", prefixes=("DOCKER_",)),
    # The Pulumi CLI and the providers its programs load read their clouds' credentials themselves.
    "pulumi": NETWORK | _passed("KUBECONFIG", "SSH_AUTH_SOCK", prefixes=(
        "PULUMI_", "AWS_", "AZURE_", "ARM_", "GOOGLE_", "CLOUDSDK_", "DIGITALOCEAN_", "CLOUDFLARE_")),
    # The connector's own files (connections.toml under SNOWFLAKE_HOME) and OCSP cache settings.
    "snowflake": NETWORK | _passed(prefixes=("SNOWFLAKE_", "SF_")),
    "gong": NETWORK,
    "retool": NETWORK,
    "memory": _passed(),
}


def suite_names() -> frozenset[str]:
    """SOPHIA_<FIELD> of every suite-wide setting: each server reads them through the shared library."""
    # Imported here: the host starts its fork server (fork_client.py, which needs PROCESS) before
    # it imports pydantic.
    from sophia_shared.settings import SuiteSettings

    prefix = str(SuiteSettings.model_config.get("env_prefix", "SOPHIA_"))
    return frozenset(f"{prefix}{name}".upper() for name in SuiteSettings.model_fields)


def own_prefix(name: str) -> str:
    return f"SOPHIA_{name.upper().replace('-', '_')}_"


def server_kinds(name: str, command: Sequence[str]) -> list[str]:
    """The server an entry runs: its name, and the `sophia-<kind>` script it starts if that differs
    (`[servers.warehouse] command = "sophia-snowflake"` reads SOPHIA_SNOWFLAKE_*)."""
    kinds = [name]
    script = Path(command[0]).name if command else ""
    if script.startswith("sophia-") and script != f"sophia-{name}":
        kinds.append(script.removeprefix("sophia-"))
    return kinds


def late_read(name: str, command: Sequence[str]) -> Passed:
    """What child `name` passes beyond PROCESS and SOPHIA_*: read by its client library when it
    connects, never by Python at start nor by a module the fork server preloads (so a child forked
    from it, its environment set after start, still sees them in time)."""
    passed = Passed()
    for kind in server_kinds(name, command):
        passed = passed | CLIENT_ENV.get(kind, Passed())
    return passed


def child_environment(
    name: str, command: Sequence[str], entry_env: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of child `name`, from the host's `environ` (default: os.environ)."""
    source = os.environ if environ is None else environ
    kinds = server_kinds(name, command)
    passed = PROCESS | Passed(suite_names(), (*(own_prefix(k) for k in kinds), "SOPHIA_SERVER_"))
    passed = passed | late_read(name, command)
    env = passed.pick(source)
    # Resolved here so a child finds the host's state even where the host found it through XDG.
    env["SOPHIA_HOME"] = str(sophia_home())
    if source.get("SOPHIA_CONFIG"):
        env["SOPHIA_CONFIG"] = source["SOPHIA_CONFIG"]
    return {**env, **entry_env, **TRUST_ENV}
