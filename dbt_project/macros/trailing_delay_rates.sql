{#
    trailing_delay_rates(keys, prefix): one row per value of `keys` and flight date, with
    the group's trailing delay and departure-delay rates, each smoothed toward the
    network's 28-day rate (smoothed_rate.sql):
        <prefix>_delay_rate_7d, <prefix>_delay_rate_28d, <prefix>_dep_delay_rate_28d
    and latest_outcome_date, the newest day whose outcomes were counted.

    The point-in-time rule is the one of int_*_delay_counts_trailing: an outcome counts
    from the day after it became known (int_flight_outcomes_dated), so the windows of D
    hold D-k .. D-1 only. Every day the group has a flight scheduled gets a row, zeros if
    nothing became known, so every flight finds its rates. For groups finer than the
    carrier x origin x destination grain of int_flight_outcomes_counted_daily (a flight
    number, a departure hour): it counts int_flight_outcomes_dated directly.
#}
{% macro trailing_delay_rates(keys, prefix) -%}
{%- set key_list = keys | join(', ') -%}
with outcomes as (

    select * from {{ ref('int_flight_outcomes_dated') }}

),

network as (

    select * from {{ ref('int_network_delay_rates_trailing') }}

),

outcomes_counted_by_known_date as (

    select
        {{ key_list }},
        outcome_known_date as known_date,
        count(*) as flight_count,
        count_if(is_delayed) as delayed_count
    from outcomes
    group by all

),

departures_counted_by_known_date as (

    select
        {{ key_list }},
        departure_known_date as known_date,
        count(*) as departure_count,
        count_if(is_dep_delayed) as dep_delayed_count
    from outcomes
    group by all

),

scheduled_dates as (

    select distinct
        {{ key_list }},
        flight_date as known_date
    from outcomes

),

counts_daily as (

    select
        {{ key_list }},
        known_date,
        coalesce(sum(flight_count), 0) as flight_count,
        coalesce(sum(delayed_count), 0) as delayed_count,
        coalesce(sum(departure_count), 0) as departure_count,
        coalesce(sum(dep_delayed_count), 0) as dep_delayed_count
    from (
        select * from outcomes_counted_by_known_date
        union all by name
        select * from departures_counted_by_known_date
        union all by name
        select * from scheduled_dates
    )
    group by all

),

counts_trailing as (

    select
        {{ key_list }},
        known_date as flight_date,
        coalesce(sum(flight_count) over trailing_7d, 0) as flight_count_7d,
        coalesce(sum(delayed_count) over trailing_7d, 0) as delayed_count_7d,
        coalesce(sum(flight_count) over trailing_28d, 0) as flight_count_28d,
        coalesce(sum(delayed_count) over trailing_28d, 0) as delayed_count_28d,
        coalesce(sum(departure_count) over trailing_28d, 0) as departure_count_28d,
        coalesce(sum(dep_delayed_count) over trailing_28d, 0) as dep_delayed_count_28d,
        max(case when flight_count > 0 or departure_count > 0 then known_date end)
            over trailing_28d as latest_outcome_date
    from counts_daily
    window
        trailing_7d as (
            partition by {{ key_list }} order by known_date
            range between interval 7 days preceding and interval 1 day preceding
        ),
        trailing_28d as (
            partition by {{ key_list }} order by known_date
            range between interval 28 days preceding and interval 1 day preceding
        )

),

rates_smoothed as (

    select
        {% for key in keys %}counts.{{ key }},
        {% endfor %}counts.flight_date,
        {{ smoothed_rate('counts.delayed_count_7d', 'counts.flight_count_7d', 'network.delay_rate_28d') }}
            as {{ prefix }}_delay_rate_7d,
        {{ smoothed_rate('counts.delayed_count_28d', 'counts.flight_count_28d', 'network.delay_rate_28d') }}
            as {{ prefix }}_delay_rate_28d,
        {{ smoothed_rate('counts.dep_delayed_count_28d', 'counts.departure_count_28d', 'network.dep_delay_rate_28d') }}
            as {{ prefix }}_dep_delay_rate_28d,
        counts.latest_outcome_date
    from counts_trailing as counts
    left join network on counts.flight_date = network.flight_date

)

select * from rates_smoothed
{%- endmacro %}
