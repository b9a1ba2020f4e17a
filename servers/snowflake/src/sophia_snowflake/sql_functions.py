"""Which SQL functions the statement guard lets through, by name, and why it refuses the others.

Two lists decide:

- Refused in every mode (a Snowflake account or the local demo warehouse): functions that read,
  list or write files, read or change engine settings or session state, run SQL text the guard
  never saw, or expose the engine's internals. These are refused by name, whatever the case or
  quoting, wherever they appear (select list, FROM, CTE, subquery, lateral join, TABLE(...)).
- Allowed in local mode: the local warehouse is DuckDB under fakesnow, whose catalogue holds
  hundreds of functions nobody reviewed for a demo. There only functions on an allow-list run:
  sqlglot's typed functions (scalar, aggregate, window, JSON, array, date) minus the refused ones,
  plus the Snowflake and DuckDB names listed in `LOCAL_NAMED_FUNCTIONS`.

Every table function of both engines is classified below (`DUCKDB_TABLE_FUNCTIONS`,
`SNOWFLAKE_TABLE_FUNCTIONS`); the tests fail when an engine upgrade brings one that is not, and
when sqlglot brings a typed function that is in neither list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FILES = "reads, lists or writes files on the warehouse's host"
STAGE_FILES = "reads or hands out files in a stage"
SETTINGS = "reads or changes the engine's settings or the process environment"
SESSION = "reads or changes the session's state"
SQL_TEXT = "runs SQL text (or a table named by a string) that the statement guard never checked"
ENGINE = "exposes the engine's internals (databases, secrets, extensions, logs, memory, prepared statements)"
CONTROL = "controls the engine (checkpoints, logging, profiling, external resources)"
EXTERNAL = "calls a model or service outside the warehouse"
HISTORY = "shows statements and logins of every principal (they all share this server's warehouse user)"
SEQUENCE = "advances a sequence, which is a write"
STALL = "holds a warehouse worker for as long as the caller asks"
TEST_ONLY = "an engine self-test function"


@dataclass(frozen=True)
class Verdict:
    """Whether a function may run, and why."""

    allowed: bool
    reason: str


def allow(reason: str) -> Verdict:
    return Verdict(True, reason)


def refuse(reason: str) -> Verdict:
    return Verdict(False, reason)


# Refused in every mode, by exact (upper-case) name.
REFUSED_FUNCTIONS: dict[str, str] = {
    "GLOB": FILES,
    "SNIFF_CSV": FILES,
    "TO_FILE": STAGE_FILES,
    "INFER_SCHEMA": STAGE_FILES,
    "VALIDATE": STAGE_FILES,
    "VALIDATE_PIPE_LOAD": STAGE_FILES,
    "GET_PRESIGNED_URL": STAGE_FILES,
    "BUILD_SCOPED_FILE_URL": STAGE_FILES,
    "BUILD_STAGE_FILE_URL": STAGE_FILES,
    "GET_STAGE_LOCATION": STAGE_FILES,
    "GET_RELATIVE_PATH": STAGE_FILES,
    "GET_ABSOLUTE_PATH": STAGE_FILES,
    "CURRENT_SETTING": SETTINGS,
    "GETENV": SETTINGS,
    "SETSEED": SESSION,
    "GETVARIABLE": SESSION,
    "QUERY": SQL_TEXT,
    "QUERY_TABLE": SQL_TEXT,
    "TO_QUERY": SQL_TEXT,
    "JSON_EXECUTE_SERIALIZED_SQL": SQL_TEXT,
    "JSON_SERIALIZE_SQL": SQL_TEXT,
    "JSON_DESERIALIZE_SQL": SQL_TEXT,
    "HISTOGRAM": SQL_TEXT,
    "HISTOGRAM_VALUES": SQL_TEXT,
    "WHICH_SECRET": ENGINE,
    "CHECKPOINT": CONTROL,
    "FORCE_CHECKPOINT": CONTROL,
    "ENABLE_LOGGING": CONTROL,
    "DISABLE_LOGGING": CONTROL,
    "TRUNCATE_DUCKDB_LOGS": CONTROL,
    "ENABLE_PROFILING": CONTROL,
    "DISABLE_PROFILING": CONTROL,
    "WRITE_LOG": CONTROL,
    "SLEEP_MS": STALL,
    "PG_SLEEP": STALL,
    "TEST_ALL_TYPES": TEST_ONLY,
    "TEST_VECTOR_TYPES": TEST_ONLY,
    "LOGIN_HISTORY": HISTORY,
    "LOGIN_HISTORY_BY_USER": HISTORY,
}

# Refused in every mode, by name pattern (full match on the upper-case name). RESULT_SCAN, which
# reads the caller's own earlier result by its query id, is the one *_SCAN function allowed.
REFUSED_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"READ_\w*"), FILES),
    (re.compile(r"(?!RESULT_SCAN$)\w*_SCAN\w*"), FILES),
    (re.compile(r"PARQUET_\w+"), FILES),
    (re.compile(r"ICEBERG_(?:SCAN|METADATA|SNAPSHOTS)"), FILES),
    (re.compile(r"FL_\w+"), STAGE_FILES),
    (re.compile(r"DUCKDB_\w+"), ENGINE),
    (re.compile(r"PRAGMA_\w+"), SETTINGS),
    (re.compile(r"PYTHON_\w+"), ENGINE),
    (re.compile(r"\w*_EXTERNAL_RESOURCE(?:_TYPE)?"), CONTROL),
    (re.compile(r"QUERY_HISTORY\w*"), HISTORY),
)


def refusal_reason(name: str) -> str | None:
    """Why a function of this name is refused in every mode, or None."""
    upper = name.upper()
    reason = REFUSED_FUNCTIONS.get(upper)
    if reason is not None:
        return reason
    for pattern, why in REFUSED_PATTERNS:
        if pattern.fullmatch(upper):
            return why
    return None


# sqlglot's typed function classes refused in local mode (they are also refused by name in every
# mode when their name is on the refused lists: READ_CSV, READ_PARQUET, TO_FILE).
LOCAL_REFUSED_TYPED: dict[str, str] = {
    "ReadCSV": FILES,
    "ReadParquet": FILES,
    "ToFile": STAGE_FILES,
    "Secret": ENGINE,
    "NextValueFor": SEQUENCE,
    **{
        name: EXTERNAL
        for name in (
            "AIAgg", "AISummarizeAgg", "AIClassify", "AIEmbed", "AIGenerate", "AISimilarity", "AIForecast",
            "GenerateEmbedding", "GenerateText", "GenerateBool", "GenerateDouble", "GenerateInt", "GenerateTable",
            "MLForecast", "MLTranslate", "Predict", "VectorSearch", "FeaturesAtTime",
        )
    },
}

# sqlglot classes that stand for a call sqlglot does not model: checked by the name written.
NAMED_CALL_CLASSES = frozenset(
    {"Anonymous", "AnonymousAggFunc", "CombinedAggFunc", "CombinedParameterizedAgg", "ParameterizedAgg",
     "AggFunc", "SafeFunc"}
)

# sqlglot's typed function classes allowed in local mode: pure scalar, aggregate, window, JSON,
# array, string and date functions, and Snowflake's context functions. Reviewed against sqlglot's
# catalogue; a class missing from both lists is refused until someone classifies it.
LOCAL_ALLOWED_TYPED = frozenset(
    {
        "Abs", "Acos", "Acosh", "AddMonths", "Agg", "And", "AnyValue", "Apply", "ApproxDistinct",
        "ApproxPercentileAccumulate", "ApproxPercentileCombine", "ApproxPercentileEstimate", "ApproxQuantile",
        "ApproxQuantiles", "ApproxTopK", "ApproxTopKAccumulate", "ApproxTopKCombine", "ApproxTopKEstimate",
        "ApproxTopSum", "ApproximateSimilarity", "ArgMax", "ArgMin", "Array", "ArrayAgg", "ArrayAll", "ArrayAny",
        "ArrayAppend", "ArrayCompact", "ArrayConcat", "ArrayConcatAgg", "ArrayConstructCompact", "ArrayContainedBy",
        "ArrayContains", "ArrayContainsAll", "ArrayDistinct", "ArrayExcept", "ArrayFilter", "ArrayFirst",
        "ArrayInsert", "ArrayIntersect", "ArrayLast", "ArrayMax", "ArrayMin", "ArrayOverlaps", "ArrayPosition",
        "ArrayPrepend", "ArrayRemove", "ArrayRemoveAt", "ArrayReverse", "ArraySize", "ArraySlice", "ArraySort",
        "ArraySum", "ArrayToString", "ArrayUnionAgg", "ArrayUniqueAgg", "ArraysZip", "Ascii", "Asin", "Asinh", "Atan",
        "Atan2", "Atanh", "Avg", "Base64DecodeBinary", "Base64DecodeString", "Base64Encode", "BitLength",
        "BitmapBitPosition", "BitmapBucketNumber", "BitmapConstructAgg", "BitmapCount", "BitmapOrAgg",
        "BitwiseAndAgg", "BitwiseCount", "BitwiseOrAgg", "BitwiseXorAgg", "Booland", "Boolnot", "Boolor",
        "BoolxorAgg", "ByteLength", "Case", "Cast", "CastToStrType", "Cbrt", "Ceil", "CheckJson", "CheckXml", "Chr",
        "CityHash64", "Coalesce", "CodePointsToBytes", "CodePointsToString", "Collate", "Collation", "Columns",
        "Compress", "Concat", "ConcatWs", "ConnectByRoot", "Contains", "Convert", "ConvertTimezone",
        "ConvertToCharset", "Corr", "Cos", "Cosh", "CosineDistance", "Cot", "Coth", "Count", "CountIf", "CovarPop",
        "CovarSamp", "Csc", "Csch", "CumeDist", "CurrentAccount", "CurrentAccountName", "CurrentAvailableRoles",
        "CurrentCatalog", "CurrentClient", "CurrentDatabase", "CurrentDate", "CurrentDatetime", "CurrentIpAddress",
        "CurrentOrganizationName", "CurrentOrganizationUser", "CurrentRegion", "CurrentRole", "CurrentRoleType",
        "CurrentSchema", "CurrentSchemas", "CurrentSecondaryRoles", "CurrentSession", "CurrentStatement",
        "CurrentTime", "CurrentTimestamp", "CurrentTimestampLTZ", "CurrentTimezone", "CurrentTransaction",
        "CurrentUser", "CurrentUserId", "CurrentVersion", "CurrentWarehouse", "Date", "DateAdd", "DateBin",
        "DateDiff", "DateFromParts", "DateFromUnixDate", "DateStrToDate", "DateSub", "DateToDateStr", "DateToDi",
        "DateTrunc", "Datetime", "DatetimeAdd", "DatetimeDiff", "DatetimeSub", "DatetimeTrunc", "Day", "DayOfMonth",
        "DayOfWeek", "DayOfWeekIso", "DayOfYear", "Dayname", "Decode", "DecodeCase", "DecompressBinary",
        "DecompressString", "Decrypt", "DecryptRaw", "Degrees", "DenseRank", "DiToDate", "DotProduct",
        "DynamicIdentifier", "Elt", "Encode", "Encrypt", "EncryptRaw", "EndsWith", "EqualNull", "EuclideanDistance",
        "Exists", "Exp", "Explode", "ExplodingGenerateSeries", "Extract", "Factorial", "FarmFingerprint", "First",
        "FirstValue", "Flatten", "Float64", "Floor", "Format", "FromBase", "FromBase32", "FromBase64",
        "FromISO8601Date", "FromISO8601Timestamp", "FromISO8601TimestampNanos", "FromJson", "GapFill",
        "GenerateDateArray", "GenerateSeries", "GenerateTimestampArray", "Generator", "GetExtract", "GetIgnoreCase",
        "Getbit", "Greatest", "GroupConcat", "Grouping", "GroupingId", "HashAgg", "Hex", "HexDecodeString", "Hll",
        "Host", "Hour", "If", "Initcap", "Inline", "Int64", "IsArray", "IsAscii", "IsInf", "IsNan", "IsNullValue",
        "JSONArray", "JSONArrayAgg", "JSONArrayAppend", "JSONArrayContains", "JSONArrayInsert", "JSONBContains",
        "JSONBContainsAllTopKeys", "JSONBContainsAnyTopKeys", "JSONBContainsTopKey", "JSONBDeleteAtPath",
        "JSONBExists", "JSONBExtract", "JSONBExtractScalar", "JSONBObjectAgg", "JSONBPathExists", "JSONBool",
        "JSONCast", "JSONExists", "JSONExtract", "JSONExtractArray", "JSONExtractScalar", "JSONFormat", "JSONKeys",
        "JSONKeysAtDepth", "JSONObject", "JSONObjectAgg", "JSONRemove", "JSONSet", "JSONStripNulls", "JSONTable",
        "JSONType", "JSONValueArray", "JarowinklerSimilarity", "JustifyDays", "JustifyHours", "JustifyInterval",
        "Kurtosis", "Lag", "Last", "LastDay", "LastValue", "LaxBool", "LaxFloat64", "LaxInt64", "LaxString", "Lead",
        "Least", "Left", "Length", "Levenshtein", "List", "Ln", "Localtime", "Localtimestamp", "Log", "LogicalAnd",
        "LogicalOr", "Lower", "LowerHex", "MD5", "MD5Digest", "MD5NumberLower64", "MD5NumberUpper64", "MakeInterval",
        "ManhattanDistance", "Map", "MapCat", "MapContainsKey", "MapDelete", "MapFromEntries", "MapInsert", "MapKeys",
        "MapPick", "MapSize", "MatchAgainst", "Max", "Median", "Min", "Minhash", "MinhashCombine", "Minute", "Mode",
        "Month", "Monthname", "MonthsBetween", "Nanvl", "Negative", "NetFunc", "NextDay", "Normal", "Normalize",
        "NthValue", "Ntile", "Nullif", "NumberToStr", "Nvl2", "ObjectAgg", "ObjectId", "ObjectInsert",
        "ObjectTransform", "OpenJSON", "Or", "Overlay", "Pad", "ParseBignumeric", "ParseDatetime", "ParseIp",
        "ParseJSON", "ParseNumeric", "ParseTime", "ParseUrl", "PercentRank", "PercentileCont", "PercentileDisc", "Pi",
        "Posexplode", "PosexplodeOuter", "Pow", "PreviousDay", "Quantile", "Quarter", "Radians", "Rand", "Randn",
        "Randstr", "RangeBucket", "RangeN", "Rank", "Reduce", "RegDomain", "RegexpCount", "RegexpExtract",
        "RegexpExtractAll", "RegexpFullMatch", "RegexpILike", "RegexpInstr", "RegexpLike", "RegexpReplace",
        "RegexpSplit", "RegexpSubstr", "RegrAvgx", "RegrAvgy", "RegrCount", "RegrIntercept", "RegrR2", "RegrSlope",
        "RegrSxx", "RegrSxy", "RegrSyy", "RegrValx", "RegrValy", "Repeat", "Replace", "Reverse", "Right", "Rint",
        "Round", "RowNumber", "RtrimmedLength", "SHA", "SHA1Digest", "SHA2", "SHA2Digest", "SafeAdd",
        "SafeConvertBytesToString", "SafeDivide", "SafeMultiply", "SafeNegate", "SafeSubtract", "Search", "SearchIp",
        "Sec", "Sech", "Second", "Seq1", "Seq2", "Seq4", "Seq8", "SessionUser", "Shuffle", "Sign", "Sin", "Sinh",
        "Skewness", "SortArray", "Soundex", "SoundexP123", "Space", "Split", "SplitPart", "SplitToTable", "Sqrt",
        "StDistance", "StPoint", "Stack", "StandardHash", "StarMap", "StartsWith", "Stddev", "StddevPop",
        "StddevSamp", "StrPosition", "StrToDate", "StrToMap", "StrToTime", "StrToUnix", "String", "StringToArray",
        "StripNullValue", "Strtok", "StrtokToArray", "Struct", "StructExtract", "Stuff", "Substring",
        "SubstringIndex", "Sum", "Systimestamp", "Tan", "Tanh", "Time", "TimeAdd", "TimeDiff", "TimeFromParts",
        "TimeSlice", "TimeStrToDate", "TimeStrToTime", "TimeStrToUnix", "TimeSub", "TimeToStr", "TimeToTimeStr",
        "TimeToUnix", "TimeTrunc", "Timestamp", "TimestampAdd", "TimestampDiff", "TimestampFromParts",
        "TimestampLtzFromParts", "TimestampSub", "TimestampTrunc", "TimestampTzFromParts", "ToArray", "ToBase32",
        "ToBase64", "ToBinary", "ToBoolean", "ToChar", "ToCodePoints", "ToDays", "ToDecfloat", "ToDouble", "ToMap",
        "ToNumber", "ToVariant", "Transform", "Translate", "Trim", "Trunc", "Try", "TryBase64DecodeBinary",
        "TryBase64DecodeString", "TryCast", "TryHexDecodeBinary", "TryHexDecodeString", "TryToDecfloat", "TsOrDiToDi",
        "TsOrDsAdd", "TsOrDsDiff", "TsOrDsToDate", "TsOrDsToDateStr", "TsOrDsToDatetime", "TsOrDsToTime",
        "TsOrDsToTimestamp", "Typeof", "Unhex", "Unicode", "Uniform", "UnixDate", "UnixMicros", "UnixMillis",
        "UnixSeconds", "UnixToStr", "UnixToTime", "UnixToTimeStr", "Unnest", "Upper", "UtcDate", "UtcTime",
        "UtcTimestamp", "Uuid", "VarMap", "Variance", "VariancePop", "Week", "WeekOfYear", "WeekStart",
        "WeightString", "WidthBucket", "XMLElement", "XMLGet", "XMLTable", "Xor", "Year", "YearOfWeek",
        "YearOfWeekIso", "Zipf", "_ExplodeOuter",
    }
)

# Calls sqlglot leaves untyped that the local warehouse may run: Snowflake functions sqlglot has no
# class for (fakesnow runs many of them, an unknown one fails as "not found"), the read-only
# SYSTEM$ functions, and the DuckDB table functions classified as allowed below.
LOCAL_NAMED_FUNCTIONS = frozenset(
    {
        "HASH", "ZEROIFNULL", "NULLIFZERO", "DIV0", "DIV0NULL", "SQUARE", "EDITDISTANCE", "RATIO_TO_REPORT",
        "BOOLAND", "BOOLOR", "BOOLXOR", "BOOLAND_AGG", "BOOLOR_AGG", "BOOLXOR_AGG", "CONDITIONAL_TRUE_EVENT",
        "CONDITIONAL_CHANGE_EVENT", "ARRAY_CONSTRUCT", "OBJECT_CONSTRUCT", "OBJECT_CONSTRUCT_KEEP_NULL",
        "OBJECT_KEYS", "OBJECT_DELETE", "OBJECT_PICK", "GET", "GET_PATH", "TRY_PARSE_JSON", "IS_INTEGER",
        "IS_DECIMAL", "IS_DOUBLE", "IS_OBJECT", "IS_VARCHAR", "IS_BOOLEAN", "AS_VARCHAR", "AS_INTEGER", "AS_NUMBER",
        "AS_DOUBLE", "AS_BOOLEAN", "AS_OBJECT", "AS_ARRAY", "TRY_TO_NUMBER", "TRY_TO_DATE", "TRY_TO_TIMESTAMP",
        "TRY_TO_DECIMAL", "TRY_TO_DOUBLE", "TRY_TO_BOOLEAN", "TRY_TO_TIME", "TO_NUMERIC", "TO_DECIMAL",
        "TO_VARCHAR", "TO_DATE", "TO_TIME", "TO_TIMESTAMP", "TO_TIMESTAMP_NTZ", "TO_TIMESTAMP_LTZ",
        "TO_TIMESTAMP_TZ", "TO_JSON", "TO_OBJECT", "TIMEADD", "TIMEDIFF", "TIMESTAMPADD", "TIMESTAMPDIFF",
        "DATE_PART", "DAYOFWEEKISO", "WEEKISO", "YEAROFWEEKISO", "TRUNCATE", "CHARINDEX", "POSITION", "INSERT",
        "LTRIM", "RTRIM", "LPAD", "RPAD", "REGEXP_SUBSTR_ALL", "STRTOK_SPLIT_TO_TABLE", "SHA1_HEX", "SHA2_HEX",
        "MD5_HEX", "HEX_ENCODE", "HEX_DECODE_STRING", "BASE64_DECODE_STRING", "BIT_LENGTH", "OCTET_LENGTH",
        "UUID_STRING", "APPROX_PERCENTILE", "APPROX_COUNT_DISTINCT", "LISTAGG", "COUNT_IF", "MAX_BY", "MIN_BY",
        "KURTOSIS", "SKEW", "COVAR_POP", "COVAR_SAMP", "VAR_POP", "VAR_SAMP", "VARIANCE_SAMP", "STDDEV_SAMP",
        "PERCENT_RANK", "CUME_DIST", "LAST_QUERY_ID", "RESULT_SCAN",
        "SYSTEM$TYPEOF", "SYSTEM$CLUSTERING_INFORMATION", "SYSTEM$CLUSTERING_DEPTH", "SYSTEM$EXPLAIN_PLAN_JSON",
        "SYSTEM$EXPLAIN_JSON_TO_TEXT",
        # DuckDB table functions that only generate rows or unpack a value
        "GENERATE_SERIES", "RANGE", "UNNEST", "JSON_EACH", "JSON_TREE", "REPEAT", "REPEAT_ROW", "SUMMARY",
        "PG_TIMEZONE_NAMES", "ICU_CALENDAR_NAMES",
    }
)


def _duckdb_table_functions() -> dict[str, Verdict]:
    generators = allow("generates rows or unpacks a value; reads nothing outside the query")
    verdicts: dict[str, Verdict] = {
        name: generators
        for name in ("generate_series", "range", "unnest", "json_each", "json_tree", "repeat", "repeat_row",
                     "pg_timezone_names", "icu_calendar_names")
    }
    verdicts["summary"] = allow("summarises the rows of its own argument")
    for name in (
        "read_blob", "read_csv", "read_csv_auto", "read_duckdb", "read_json", "read_json_auto", "read_json_objects",
        "read_json_objects_auto", "read_ndjson", "read_ndjson_auto", "read_ndjson_objects", "read_parquet",
        "read_single_csv_file", "read_single_json_file", "read_single_parquet_file", "read_text", "glob",
        "sniff_csv", "parquet_scan", "parquet_bloom_probe", "parquet_file_metadata", "parquet_full_metadata",
        "parquet_kv_metadata", "parquet_metadata", "parquet_schema", "seq_scan", "arrow_scan", "arrow_scan_dumb",
        "pandas_scan", "python_arrow_scan",
    ):
        verdicts[name] = refuse(FILES)
    for name in ("query", "query_table", "json_execute_serialized_sql", "histogram", "histogram_values"):
        verdicts[name] = refuse(SQL_TEXT)
    for name in ("checkpoint", "force_checkpoint", "enable_logging", "disable_logging", "truncate_duckdb_logs",
                 "enable_profiling", "disable_profiling", "create_external_resource", "deregister_external_resource",
                 "destroy_external_resource", "register_external_resource", "register_external_resource_type"):
        verdicts[name] = refuse(CONTROL)
    for name in ("pragma_collations", "pragma_database_size", "pragma_metadata_info", "pragma_platform",
                 "pragma_show", "pragma_storage_info", "pragma_table_info", "pragma_user_agent", "pragma_version"):
        verdicts[name] = refuse(SETTINGS)
    verdicts["which_secret"] = refuse(ENGINE)
    verdicts["python_map_function"] = refuse(ENGINE)
    verdicts["test_all_types"] = refuse(TEST_ONLY)
    verdicts["test_vector_types"] = refuse(TEST_ONLY)
    return verdicts


# Every table function (and table macro) of the DuckDB under fakesnow; duckdb_* ones match a
# pattern and are refused: they list databases, settings, secrets, extensions, logs and memory.
DUCKDB_TABLE_FUNCTIONS: dict[str, Verdict] = _duckdb_table_functions()


def duckdb_table_function_verdict(name: str) -> Verdict | None:
    """The classification of a DuckDB table function, or None when nobody classified it."""
    known = DUCKDB_TABLE_FUNCTIONS.get(name.lower())
    if known is not None:
        return known
    reason = refusal_reason(name)
    return refuse(reason) if reason is not None and name.lower().startswith("duckdb_") else None


def _snowflake_table_functions() -> dict[str, Verdict]:
    metadata = allow("account metadata, governed by the warehouse role's own privileges")
    verdicts: dict[str, Verdict] = {
        "FLATTEN": allow("unpacks a semi-structured value"),
        "GENERATOR": allow("generates rows"),
        "SPLIT_TO_TABLE": allow("splits a string into rows"),
        "STRTOK_SPLIT_TO_TABLE": allow("splits a string into rows"),
        "RESULT_SCAN": allow("reads the result of an earlier query by its id (ids are unguessable)"),
        "INFER_SCHEMA": refuse(STAGE_FILES),
        "VALIDATE": refuse(STAGE_FILES),
        "VALIDATE_PIPE_LOAD": refuse(STAGE_FILES),
        "TO_QUERY": refuse(SQL_TEXT),
        "LOGIN_HISTORY": refuse(HISTORY),
        "LOGIN_HISTORY_BY_USER": refuse(HISTORY),
        "QUERY_HISTORY": refuse(HISTORY),
        "QUERY_HISTORY_BY_SESSION": refuse(HISTORY),
        "QUERY_HISTORY_BY_USER": refuse(HISTORY),
        "QUERY_HISTORY_BY_WAREHOUSE": refuse(HISTORY),
        "CORTEX_SEARCH_DATA_SCAN": refuse(FILES),
        "SYSTEM$DATA_METRIC_SCAN": refuse("a SYSTEM$ function outside the read-only list"),
    }
    for name in (
        "ALERT_HISTORY", "AUTOMATIC_CLUSTERING_HISTORY", "AUTO_REFRESH_REGISTRATION_HISTORY", "COMPLETE_TASK_GRAPHS",
        "COPY_HISTORY", "CURRENT_TASK_GRAPHS", "CUMULATIVE_PRIVACY_LOSSES", "DATABASE_REFRESH_HISTORY",
        "DATABASE_REFRESH_PROGRESS", "DATABASE_REFRESH_PROGRESS_BY_JOB", "DATABASE_REPLICATION_USAGE_HISTORY",
        "DATABASE_STORAGE_USAGE_HISTORY", "DATA_METRIC_FUNCTION_REFERENCES", "DATA_TRANSFER_HISTORY",
        "DYNAMIC_TABLES", "DYNAMIC_TABLE_GRAPH_HISTORY", "DYNAMIC_TABLE_REFRESH_HISTORY",
        "EXTERNAL_FUNCTIONS_HISTORY", "EXTERNAL_TABLE_FILES", "EXTERNAL_TABLE_FILE_REGISTRATION_HISTORY",
        "GET_OBJECT_REFERENCES", "GET_QUERY_OPERATOR_STATS", "ICEBERG_TABLE_FILES",
        "ICEBERG_TABLE_SNAPSHOT_REFRESH_HISTORY", "MATERIALIZED_VIEW_REFRESH_HISTORY", "NOTIFICATION_HISTORY",
        "PIPE_USAGE_HISTORY", "POLICY_REFERENCES", "REPLICATION_GROUP_REFRESH_HISTORY",
        "REPLICATION_GROUP_REFRESH_PROGRESS", "REPLICATION_GROUP_REFRESH_PROGRESS_BY_JOB",
        "REPLICATION_GROUP_USAGE_HISTORY", "REPLICATION_USAGE_HISTORY", "REST_EVENT_HISTORY",
        "SEARCH_OPTIMIZATION_HISTORY", "SERVERLESS_TASK_HISTORY", "STAGE_DIRECTORY_FILE_REGISTRATION_HISTORY",
        "STAGE_STORAGE_USAGE_HISTORY", "TAG_REFERENCES", "TAG_REFERENCES_ALL_COLUMNS", "TAG_REFERENCES_WITH_LINEAGE",
        "TASK_DEPENDENTS", "TASK_HISTORY", "WAREHOUSE_LOAD_HISTORY", "WAREHOUSE_METERING_HISTORY",
    ):
        verdicts[name] = metadata
    return verdicts


# Snowflake's system-defined table functions (docs.snowflake.com, "Table functions"), classified.
# Allowed ones run in account mode; in local mode only those fakesnow has (FLATTEN, GENERATOR, ...)
# are on the local allow-list.
SNOWFLAKE_TABLE_FUNCTIONS: dict[str, Verdict] = _snowflake_table_functions()
