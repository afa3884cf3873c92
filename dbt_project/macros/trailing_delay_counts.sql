{#
    Trailing outcome counts per group, for every date the group has flights scheduled.
    The window for date D covers outcomes known on days D-k .. D-1 (see
    int_flight_outcomes_dated): everything in it was known at D's cutoff, 00:00 local.
    Grain: one row per group and flight date.
#}
{% macro trailing_delay_counts(group_by, windows=[1, 7, 28]) %}
{%- set keys = group_by + ['flight_date'] %}

with outcomes as (

    select * from {{ ref('int_flight_outcomes_dated') }}

),

outcomes_counted_by_known_date as (

    select
        {% for key in group_by %}{{ key }}, {% endfor %}
        outcome_known_date as flight_date,
        count(*) as flight_count,
        count_if(is_delayed) as delayed_count,
        count_if(is_cancelled) as cancelled_count
    from outcomes
    group by all

),

departures_counted_by_known_date as (

    select
        {% for key in group_by %}{{ key }}, {% endfor %}
        departure_known_date as flight_date,
        count(*) as departure_count,
        count_if(is_dep_delayed) as dep_delayed_count
    from outcomes
    group by all

),

scheduled_dates as (

    select distinct
        {{ keys | join(', ') }},
        0 as flight_count,
        0 as delayed_count,
        0 as cancelled_count
    from outcomes

),

daily_counts as (

    select
        {{ keys | join(', ') }},
        coalesce(sum(flight_count), 0) as flight_count,
        coalesce(sum(delayed_count), 0) as delayed_count,
        coalesce(sum(cancelled_count), 0) as cancelled_count,
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

trailing_counts as (

    select
        {{ keys | join(', ') }},
        {%- for days in windows %}
        coalesce(sum(flight_count) over trailing_{{ days }}d, 0) as flight_count_{{ days }}d,
        coalesce(sum(delayed_count) over trailing_{{ days }}d, 0) as delayed_count_{{ days }}d,
        coalesce(sum(cancelled_count) over trailing_{{ days }}d, 0) as cancelled_count_{{ days }}d,
        coalesce(sum(departure_count) over trailing_{{ days }}d, 0) as departure_count_{{ days }}d,
        coalesce(sum(dep_delayed_count) over trailing_{{ days }}d, 0) as dep_delayed_count_{{ days }}d,
        {%- endfor %}
        -- lineage for the leakage check: the newest day whose outcomes were counted
        max(case when flight_count > 0 or departure_count > 0 then flight_date end)
            over trailing_{{ windows | max }}d as latest_outcome_date
    from daily_counts
    window
        {%- for days in windows %}
        trailing_{{ days }}d as (
            {% if group_by %}partition by {{ group_by | join(', ') }}{% endif %}
            order by flight_date
            range between interval {{ days }} days preceding and interval 1 day preceding
        ){{ "," if not loop.last }}
        {%- endfor %}

)

select * from trailing_counts

{% endmacro %}


{#
    A rate smoothed toward the prior: (events + m * prior) / (flights + m).
    A group without history gets the prior.
#}
{% macro smoothed_rate(numerator, denominator, prior) %}
    (coalesce({{ numerator }}, 0) + {{ var('delay_rate_prior_weight') }} * {{ prior }})
    / (coalesce({{ denominator }}, 0) + {{ var('delay_rate_prior_weight') }})
{% endmacro %}
