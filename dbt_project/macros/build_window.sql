{#
    The dates a run builds. `ml transform --start S --end E` passes start_date, end_date
    and lookback_days; a run without them builds every landed day. Models that feed
    trailing windows reach lookback_days further back, so a daily run reads about a month
    of history, not all of it.
#}
{% macro build_window(column, lookback_days=0) -%}
    {%- if var('start_date', none) -%}
        {{ column }} between date '{{ var('start_date') }}' - {{ lookback_days }}
            and date '{{ var('end_date') }}'
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#
    Where an external mart is written: <build_dir>/<model>.parquet. `ml` passes build_dir
    (marts/_build/<window>) so concurrent runs for different days never share a file.
#}
{% macro build_location(model_name) -%}
    {{ var('build_dir', env_var('ML_DATA_DIR') ~ '/marts/_build/all') }}/{{ model_name }}.parquet
{%- endmacro %}
