"""Crash safety: kill -9 a real writer process mid-stream; every acknowledged write survives, intact.

The writer is a separate Python process writing single memories and batches as fast as it can
and printing each acknowledgement; we SIGKILL it at an arbitrary point, twice, on both backends.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from sophia_shared.memory import MemoryFilter, MemorySettings, open_store

pytestmark = pytest.mark.anyio

WRITER = textwrap.dedent(
    """
    import sys
    import anyio
    from sophia_shared.memory import MemoryInput, MemorySettings, open_store

    async def main() -> None:
        settings = MemorySettings(dsn=sys.argv[1], models_dir=sys.argv[2])
        store = await open_store(settings)
        store.embedder.embed(["warm up"])
        start = int(sys.argv[3])
        print("ready", flush=True)
        i = start
        while True:
            if i % 4 == 3:
                items = [MemoryInput(text=f"durable fact {i} part {j}", source_ref=str(i)) for j in range(5)]
                results = await store.put_many("crash", items)
                for r in results:
                    print(f"ack {r.memory.id} {r.memory.text}", flush=True)
            else:
                r = await store.put("crash", MemoryInput(text=f"durable fact {i}"), dedupe=False)
                print(f"ack {r.memory.id} {r.memory.text}", flush=True)
            i += 1

    anyio.run(main)
    """
)


async def _write_then_kill(script: Path, settings: MemorySettings, start: int, acks_wanted: int) -> dict[str, str]:
    """Run the writer until it has acknowledged `acks_wanted` writes, then SIGKILL it."""
    assert settings.dsn is not None
    acked: dict[str, str] = {}
    process: Process = await anyio.open_process(
        [sys.executable, str(script), settings.dsn.get_secret_value(), str(settings.models_dir), str(start)],
        stderr=None,
    )
    try:
        assert process.stdout is not None
        buffer = ""
        with anyio.fail_after(120):
            async for chunk in TextReceiveStream(process.stdout):
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    if line.startswith("ack "):
                        _, memory_id, text = line.split(" ", 2)
                        acked[memory_id] = text
                if len(acked) >= acks_wanted:
                    process.send_signal(signal.SIGKILL)
                    break
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.fail_after(30):
            await process.wait()
    assert process.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def test_kill_9_never_loses_an_acknowledged_write(
    backend: str, memory_settings_for: Callable[[str], MemorySettings], tmp_path: Path
) -> None:
    settings = memory_settings_for(backend)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    acked = await _write_then_kill(script, settings, 0, 60)
    acked |= await _write_then_kill(script, settings, 10_000, 60)  # restart on the killed store, kill again

    if backend == "sqlite":
        from sophia_shared.memory.sqlite import connect

        conn = connect(settings.sqlite_path())
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            # Raises if the full-text index disagrees with the rows it indexes.
            conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check')")
        finally:
            conn.close()

    with anyio.fail_after(60):
        store = await open_store(settings)
        try:
            found = {}
            for start in range(0, len(acked), 100):
                ids = list(acked)[start : start + 100]
                for memory_id in ids:
                    found[memory_id] = (await store.get("crash", memory_id)).text
            assert found == acked
            total = (await store.stats("crash")).total
            # At most the write in flight at each kill may have committed without its ack printed.
            assert len(acked) <= total <= len(acked) + 2 * 5
            hits = await store.search("crash", next(iter(acked.values())), k=3)
            assert hits and hits[0].memory.text in acked.values()
            assert await store.forget("crash", MemoryFilter()) == total  # every row still deletable
        finally:
            await store.close()
