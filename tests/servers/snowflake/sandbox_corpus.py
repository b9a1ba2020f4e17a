"""The SQL guard's file, engine and session attacks (issue 14), shared by the guard and the tool tests."""

from __future__ import annotations

# Each of these must be refused by snowflake_query with `forbidden` in local and in account mode.
# The last column is the rule the guard names (or None where sqlglot cannot parse the text at all
# in Snowflake's dialect, which is refused as invalid_argument before anything runs).
FILE_AND_ENGINE_ATTACKS: list[tuple[str, str | None]] = [
    # the review's findings
    ("SELECT content FROM read_text('/proc/self/environ')", "file_access"),
    ("SELECT * FROM read_csv('/etc/shadow', header=false)", "file_access"),
    ("SELECT * FROM read_blob('/root/.sophia/memory/memory.db')", "file_access"),
    ("select * from read_parquet('/tmp/x.parquet')", "file_access"),
    ("select * from read_json('/etc/hosts')", "file_access"),
    ("select * from read_json_auto('/etc/hosts')", "file_access"),
    ("select * from read_ndjson_objects('/etc/hosts')", "file_access"),
    ("select * from read_csv_auto('/etc/passwd')", "file_access"),
    ("select * from read_duckdb('/tmp/x.db')", "file_access"),
    ("select * from sniff_csv('/etc/passwd')", "file_access"),
    ("select * from parquet_metadata('/tmp/x.parquet')", "file_access"),
    ("select * from parquet_schema('/tmp/x.parquet')", "file_access"),
    ('select * from "glob"(\'/etc/*\')', None),
    ("select * from glob('/root/*')", None),
    ("with f as (select * from parquet_scan('/tmp/x.parquet')) select * from f", "file_access"),
    ("with f as (select * from seq_scan()) select * from f", "file_access"),
    ("with a as (select 1 x), b as (select * from read_text('/etc/passwd')) select * from a, b", "file_access"),
    ("select setseed(0.5)", "forbidden_function"),
    ("select current_setting('enable_external_access')", "forbidden_function"),
    ("select * from duckdb_settings()", "forbidden_function"),
    ("select * from duckdb_secrets()", "forbidden_function"),
    ("select * from duckdb_databases()", "forbidden_function"),
    ("select * from duckdb_extensions()", "forbidden_function"),
    ("select * from duckdb_functions()", "forbidden_function"),
    ("select * from pragma_table_info('orders')", "forbidden_function"),
    ("select * from pragma_database_size()", "forbidden_function"),
    ("select getvariable('x')", "forbidden_function"),
    ("select * from which_secret('s3://b/x', 's3')", "forbidden_function"),
    ("select * from query('select * from read_text(''/etc/passwd'')')", "forbidden_function"),
    ("select * from query_table('orders')", "forbidden_function"),
    ("select * from table(to_query('select 1'))", "forbidden_function"),
    ("select json_execute_serialized_sql('{}')", "forbidden_function"),
    ("select * from checkpoint()", "forbidden_function"),
    ("select * from enable_profiling()", "forbidden_function"),
    ("select write_log('x')", "forbidden_function"),
    ("select sleep_ms(100000)", "forbidden_function"),
    # quoted, case-varied, qualified names
    ("select * from \"READ_TEXT\"('/etc/passwd')", "file_access"),
    ("select * from \"read_text\"('/etc/passwd')", "file_access"),
    ("select * from ReAd_TeXt('/etc/passwd')", "file_access"),
    ("select * from system.main.read_text('/etc/passwd')", "file_access"),
    ("select main.read_text('/etc/passwd')", "file_access"),
    ("select \"CURRENT_SETTING\"('threads')", "forbidden_function"),
    ("select * from \"Duckdb_Settings\"()", "forbidden_function"),
    # everywhere a table function can hide
    ("select * from (select * from read_text('/etc/passwd'))", "file_access"),
    ("select (select content from read_text('/etc/passwd'))", "file_access"),
    ("select * from orders where exists (select 1 from read_text('/etc/passwd'))", "file_access"),
    ("select * from orders where id in (select size from read_blob('/etc/passwd'))", "file_access"),
    ("select * from orders, lateral read_text('/etc/passwd')", "file_access"),
    ("select * from orders o join lateral (select * from read_text('/etc/passwd')) f on true", "file_access"),
    ("select * from table(read_text('/etc/passwd'))", "file_access"),
    ("from read_text('/etc/passwd')", "file_access"),
    ("select * from orders union all select * from read_csv('/etc/passwd')", "file_access"),
    ("select content from read_text('/etc/passwd') qualify row_number() over (order by 1) = 1", "file_access"),
    ("describe select * from read_text('/etc/passwd')", "file_access"),
    ("explain select * from read_text('/etc/passwd')", "file_access"),
    ("show tables in read_text('x')", "file_access"),
    # DuckDB replacement scans: a file named as a table
    ("select * from 'file.csv'", "file_access"),
    ("from '/etc/passwd'", "file_access"),
    ("select * from '/root/.sophia/memory/memory.db'", "file_access"),
    ('select * from "/etc/passwd"', "file_access"),
    ('select * from "data.csv"', "file_access"),
    ('select * from "x.parquet"', "file_access"),
    ('select * from demo.public."/etc/shadow"', "file_access"),
    ("select * from identifier('/etc/passwd')", "file_access"),
    ("select * from identifier('x.csv')", "file_access"),
    ("with x as (select * from 'y.csv') select * from x", "file_access"),
    # stages and Snowflake's file functions
    ("select * from table(infer_schema(location => '@s', file_format => 'f'))", "file_access"),
    ("select * from table(validate(orders, job_id => '_last'))", "file_access"),
    ("select get_presigned_url(@s, 'x.csv')", "file_access"),
    ("select build_scoped_file_url(@s, 'x.csv')", "file_access"),
    ("select to_file('@s/x.csv')", "file_access"),
    ("select fl_get_content_type(to_file('@s/x'))", "file_access"),
    ("select * from table(information_schema.query_history())", "forbidden_function"),
    ("select * from table(information_schema.login_history())", "forbidden_function"),
    ("select * from table(cortex_search_data_scan(service_name => 's'))", "file_access"),
    ("select system$data_metric_scan(ref_entity_name => 't', metric_name => 'm')", "side_effect_function"),
]

# Statements (not functions) that reach files or engine state: refused by kind, any rule.
FILE_AND_ENGINE_STATEMENTS: list[str] = [
    "COPY orders TO '/tmp/orders.csv'",
    "COPY (select 1) TO '/tmp/x.csv'",
    "COPY orders FROM '/etc/passwd'",
    "copy into orders from 'file:///etc/passwd'",
    "ATTACH '/root/.sophia/memory/memory.db' AS m",
    "ATTACH DATABASE ':memory:' AS y",
    "DETACH m",
    "INSTALL httpfs",
    "FORCE INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA database_list",
    "PRAGMA enable_profiling",
    "EXPORT DATABASE '/tmp/export'",
    "IMPORT DATABASE '/tmp/export'",
    "CHECKPOINT",
    "SUMMARIZE orders",
    "SET enable_external_access = true",
    "SET GLOBAL lock_configuration = false",
    "RESET enable_external_access",
    "CALL pragma_table_info('orders')",
    "create secret s (type s3, key_id 'a', secret 'b')",
    "create macro m() as table select * from read_text('/etc/passwd')",
    "create table stolen as select * from read_text('/etc/passwd')",
    "create view v as select * from read_text('/etc/passwd')",
    "insert into orders select * from read_csv('/etc/passwd')",
    "USE memory",
    "VACUUM",
]

# Everyday analytics on the demo data that must run (not merely pass the guard) in local mode and
# on a fakesnow account: the local allow-list must not cost a user these.
DEMO_ANALYTICS: list[str] = [
    "select date_trunc('month', ordered_at) m, sum(total) from orders group by 1 order by 1",
    'select median(total), percentile_cont(0.5) within group (order by total) from orders',
    "select listagg(name, ', ') within group (order by name) from products",
    "select object_construct('id', id, 'name', name) from customers limit 3",
    'select array_agg(id) within group (order by id) from products',
    'select details:channel::string as channel, count(*) from orders group by 1',
    (
        'select id, lag(total) over (order by id), lead(total) over (order by id), ntile(4) over (order by '
        'total) from orders limit 5'
    ),
    'select datediff(day, min(ordered_at), max(ordered_at)) from orders',
    "select to_char(ordered_at, 'YYYY-MM') ym, count(*) from orders group by 1",
    'select year(ordered_at), month(ordered_at), count(*) from orders group by 1, 2',
    'select round(avg(total), 2), count(distinct customer_id), approx_count_distinct(customer_id) from orders',
    "select greatest(1, 2), least(1, 2), coalesce(null, 1), nvl2(null, 1, 2), decode(1, 1, 'a', 'b')",
    'select hash(id) from customers limit 1',
    (
        "select regexp_replace(name, '[aeiou]', ''), split_part(name, ' ', 1), initcap(lower(name)), "
        "concat(name, '!'), name || '?', left(name, 3) from customers limit 2"
    ),
    (
        'select dayname(ordered_at), monthname(ordered_at), last_day(ordered_at), dateadd(month, 1, '
        'ordered_at) from orders limit 2'
    ),
    'select current_date(), current_timestamp(), current_user(), current_database(), current_schema()',
    (
        "select case when total > 100 then 'big' else 'small' end, cast(total as int), total::varchar, "
        "try_cast('1' as int) from orders limit 2"
    ),
    (
        'select iff(total > 100, 1, 0), zeroifnull(null), div0(1, 0), abs(-1), sqrt(4), power(2, 3), mod(7, '
        '3), floor(1.5), ceil(1.5), ln(2), exp(1) from orders limit 1'
    ),
    (
        "select upper(name), length(name), trim(name), replace(name, 'a', 'b'), substr(name, 1, 2), "
        "position('a' in name), contains(name, 'a'), startswith(name, 'A') from customers limit 2"
    ),
    (
        'select c.country, p.category, sum(i.quantity * i.unit_price) rev, rank() over (partition by '
        'c.country order by sum(i.quantity * i.unit_price) desc) r from orders o join order_items i on '
        'i.order_id = o.id join products p on p.id = i.product_id join customers c on c.id = o.customer_id '
        'group by 1, 2 qualify r <= 2'
    ),
    "select f.value from orders o, lateral flatten(input => parse_json('[1,2]')) f limit 3",
    'select seq4(), uniform(1, 10, random()) from table(generator(rowcount => 3))',
    'select stddev(total), variance(total), corr(total, id), min(total), max(total), any_value(status) from orders',
    "select count_if(status = 'shipped'), sum(iff(status = 'cancelled', 1, 0)) from orders",
    (
        "select to_date('2025-01-01'), to_timestamp('2025-01-01 00:00:00'), date_part(year, "
        "to_date('2025-01-01')), extract(month from to_date('2025-01-01'))"
    ),
    (
        "select array_size(parse_json('[1,2,3]')), array_contains(1::variant, array_construct(1, 2)), "
        "get(parse_json('[1,2]'), 0)"
    ),
    'select md5(name), sha2(name), uuid_string() from customers limit 1',
    (
        'select row_number() over (order by id), dense_rank() over (order by total), first_value(id) over '
        '(order by id), percent_rank() over (order by total) from orders limit 3'
    ),
    "select typeof(details), is_null_value(details:x), try_parse_json('{}') from orders limit 1",
]
