"""OpenTelemetry traces of tool calls, opt-in (SOPHIA_OTEL=1): one span per call on every server it passes.

`request.serve` opens the span around the whole request path, so both lanes of the host and every
server get the same span with the same attributes (tool, principal, correlation id, outcome, error
code). A host forwards the W3C traceparent of its span in the call's `_meta` (`forward_meta`), and a
child takes it as its span's parent only from a trusted parent (the rule `_meta` follows for the
principal), so the host's span and its child's are one trace.

Each process keeps its own TracerProvider rather than the global one (nothing else in the process
changes). Spans go over OTLP/HTTP (`opentelemetry-exporter-otlp-proto-http`, configured by the
standard OTEL_EXPORTER_OTLP_* variables), or to SOPHIA_OTEL_FILE as JSON lines.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .request import Call
    from .settings import SuiteSettings

TRACEPARENT_META_KEY = "sophia/traceparent"
# A W3C traceparent is 55 characters; anything longer is not one.
MAX_TRACEPARENT_CHARS = 64
_providers: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()
# Whether any server of this process traces: `forward_meta` asks it first, so it costs nothing when off.
active = False


def tracer_for(service: str, suite: SuiteSettings) -> Any:
    """The tracer of server `service`, or None when tracing is off (the default)."""
    global active
    if not suite.otel:
        return None
    target = str(suite.otel_file) if suite.otel_file else "otlp"
    with _lock:
        provider = _providers.get((service, target))
        if provider is None:
            provider = _providers[(service, target)] = _provider(service, suite)
        active = True
    return provider.get_tracer("sophia")


def _provider(service: str, suite: SuiteSettings) -> Any:
    from .settings import SettingsError

    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        raise SettingsError("SOPHIA_OTEL=1 needs the OpenTelemetry SDK: install sophia-shared[otel]") from None

    provider = TracerProvider(resource=Resource.create({"service.name": f"sophia-{service}"}))
    if suite.otel_file is not None:
        out = suite.otel_file.open("a", encoding="utf-8", buffering=1)  # a line per span, written as it ends
        exporter = ConsoleSpanExporter(out=out, formatter=lambda span: json.dumps(json.loads(span.to_json())) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise SettingsError("SOPHIA_OTEL=1 needs opentelemetry-exporter-otlp-proto-http installed "
                            "(or SOPHIA_OTEL_FILE to write spans to a file)") from None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def parent_of(meta: object) -> str | None:
    """The traceparent a trusted parent put in a call's `_meta` (None when absent or not one)."""
    if not isinstance(meta, Mapping):
        return None
    value = meta.get(TRACEPARENT_META_KEY)
    return value if isinstance(value, str) and 0 < len(value) <= MAX_TRACEPARENT_CHARS else None


@contextmanager
def call_span(tracer: Any, server: str, call: Call) -> Iterator[None]:
    """One span around a call's whole request path; its outcome and code are set as it ends."""
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": call.traceparent}) if call.traceparent else None
    attributes = {"sophia.server": server, "sophia.tool": call.tool, "sophia.principal": call.principal.name,
                  "sophia.correlation_id": call.correlation_id}
    with tracer.start_as_current_span(f"tools/call {call.tool}", context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes) as span:
        try:
            yield
        finally:
            span.set_attribute("sophia.outcome", call.outcome.value)
            if call.code is not None:
                span.set_attribute("sophia.error_code", call.code)
                span.set_status(Status(StatusCode.ERROR, call.code))


def current_traceparent() -> str | None:
    """The W3C traceparent of the span this code runs in (for a forwarded call's `_meta`)."""
    if not active:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")
