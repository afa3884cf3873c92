{#
    The dates a run builds. `ml` writes them before each run to build_window.json in
    dbt's folder of the data folder: {"start_date", "end_date", "lookback_days"}, the
    dates null for every landed day. They are read at run time, by two DuckDB macros the
    run creates first (on-run-start in dbt_project.yml), rather than passed as --vars: new
    --vars make dbt parse the whole project again, every day. DuckDB reads the dates once
    per query and prunes the landing zone's date partitions with them.

    In SQL, and in the tests' `where` configs:
        build_window_first(extra_days, lookback)  the window's first date, moved back by
            extra_days, and by lookback_days where lookback is true (for the models that
            feed trailing windows); 1900-01-01 for every landed day
        build_window_last()  its last date; 2999-12-31 for every landed day
#}
{% macro create_build_window_first() -%}
    create or replace macro build_window_first(extra_days, lookback) as (
        select coalesce(
            start_date - extra_days - (case when lookback then lookback_days else 0 end),
            date '1900-01-01'
        )
        from {{ build_window_file() }}
    )
{%- endmacro %}


{% macro create_build_window_last() -%}
    create or replace macro build_window_last() as (
        select coalesce(end_date, date '2999-12-31') from {{ build_window_file() }}
    )
{%- endmacro %}


{% macro build_window_file() -%}
    read_json(
        '{{ env_var('ML_DATA_DIR') }}/dbt/build_window.json',
        columns = {start_date: 'date', end_date: 'date', lookback_days: 'integer'}
    )
{%- endmacro %}


{#
    build_window(column, extra_days, lookback): `column` within the run's window. Unit
    tests set the var whole_history to build every date of their fixtures.
#}
{% macro build_window(column, extra_days=0, lookback=false) -%}
    {%- if var('whole_history', false) -%}
        true
    {%- else -%}
        {{ column }} between build_window_first({{ extra_days }}, {{ lookback }})
            and build_window_last()
    {%- endif -%}
{%- endmacro %}


{#
    Where an external mart is written: dbt/build/<model>.parquet in the data folder, the
    same place every run (a location that changed per run would be parsed again too).
    `ml` moves the run's marts into marts/_build/<window>/, validates them there and
    publishes their date partitions.
#}
{% macro build_location(model_name) -%}
    {{ env_var('ML_DATA_DIR') }}/dbt/build/{{ model_name }}.parquet
{%- endmacro %}
