"""The Snowflake tools' output models: what each tool returns (its outputSchema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .client import JsonValue


class Column(BaseModel):
    name: str
    type: str
    nullable: bool | None = None
    # Numeric columns only: every value of the column on this page is a JSON number, or every one is
    # the exact decimal text (when one would not survive a double), never a mix.
    json_type: Literal["number", "string"] | None = None


class QueryResult(BaseModel):
    """A page of rows. Repeat the same sql with next_cursor to get the next page."""

    kind: str = Field(description="statement kind: select, show, describe or explain")
    columns: list[Column]
    # Rows are typed loosely in the schema: a per-row, per-cell schema makes clients that validate
    # output (the SDK does, with jsonschema) spend seconds on a large page. json_safe guarantees JSON.
    rows: list[Any] = Field(description="one list per row, values in column order, JSON-safe")
    row_count: int = Field(description="rows in this page")
    offset: int = Field(description="index of this page's first row in the whole result")
    truncated: bool = Field(description="more rows exist, or a cell or the page was cut to the size cap")
    next_cursor: str | None = Field(default=None, description="pass back with the same sql for the next page")
    query_id: str | None = None
    request_id: str = Field(description="the id snowflake_cancel takes while the statement runs")
    local: bool = Field(description="true: the local demo warehouse, not Snowflake")
    source: str


class ExecuteResult(BaseModel):
    kind: str
    rows_affected: int | None = None
    status: str | None = None
    query_id: str | None = None
    request_id: str
    local: bool
    source: str


class Database(BaseModel):
    name: str
    comment: str | None = None
    created_on: str | None = None


class DatabaseList(BaseModel):
    databases: list[Database]
    truncated: bool
    local: bool
    source: str = ""


class Schema(BaseModel):
    name: str
    database: str


class SchemaList(BaseModel):
    database: str
    schemas: list[Schema]
    truncated: bool
    local: bool
    source: str = ""


class Table(BaseModel):
    database: str
    schema_name: str
    name: str
    kind: str
    row_count: int | None = None
    bytes: int | None = None
    comment: str | None = None


class TableList(BaseModel):
    tables: list[Table]
    truncated: bool
    local: bool
    source: str = ""


class TableColumn(BaseModel):
    name: str
    type: str
    nullable: bool
    default: str | None = None
    primary_key: bool = False
    comment: str | None = None


class TableDescription(BaseModel):
    table: str
    columns: list[TableColumn]
    truncated: bool
    local: bool
    source: str = ""


class ExplainResult(BaseModel):
    kind: str
    statement: str = Field(description="the statement as it would run (re-rendered, comments removed)")
    tables: list[str]
    columns: list[Column] = Field(description="the result columns, from compiling without running")
    plan: JsonValue = Field(default=None, description="Snowflake's EXPLAIN USING JSON plan, when available")
    plan_truncated: bool = False
    note: str | None = None
    local: bool
    source: str = ""


class CancelResult(BaseModel):
    request_id: str
    cancelled: bool
    message: str


# -- helpers ----------------------------------------------------------------------------------


