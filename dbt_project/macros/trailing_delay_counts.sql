{#
    Trailing flight and delay counts per group and flight date, over windows that end the
    day before: the counts for date D use only flights of D-1 and earlier, whose labels
    have matured by D's cutoff (00:00 local). Grain: one row per group and flight date.
#}
{% macro trailing_delay_counts(group_by, windows=[1, 7, 28]) %}
{%- set keys = group_by + ['flight_date'] %}

with daily_outcomes as (

    select * from {{ ref('int_flight_outcomes_aggregated_daily') }}

),

aggregated_to_group as (

    select
        {{ keys | join(', ') }},
        sum(flight_count) as flight_count,
        sum(delayed_count) as delayed_count,
        sum(cancelled_count) as cancelled_count
    from daily_outcomes
    group by all

),

trailing_counts as (

    select
        {{ keys | join(', ') }},
        {%- for days in windows %}
        coalesce(sum(flight_count) over trailing_{{ days }}d, 0) as flight_count_{{ days }}d,
        coalesce(sum(delayed_count) over trailing_{{ days }}d, 0) as delayed_count_{{ days }}d,
        coalesce(sum(cancelled_count) over trailing_{{ days }}d, 0) as cancelled_count_{{ days }}d
        {{- "," if not loop.last }}
        {%- endfor %}
    from aggregated_to_group
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
    A delay rate smoothed toward the prior: (delayed + m * prior) / (flights + m).
    A group without history gets the prior.
#}
{% macro smoothed_rate(numerator, denominator, prior) %}
    (coalesce({{ numerator }}, 0) + {{ var('delay_rate_prior_weight') }} * {{ prior }})
    / (coalesce({{ denominator }}, 0) + {{ var('delay_rate_prior_weight') }})
{% endmacro %}
