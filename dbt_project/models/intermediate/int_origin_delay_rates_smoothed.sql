-- One row per origin and flight date: the trailing 1, 7 and 28-day delay,
-- cancellation and departure-delay rates, each smoothed toward the network's 28-day rate
-- (macros/smoothed_rate.sql), so a group with few flights gets about the network's rate.
with counts as (

    select * from {{ ref('int_origin_delay_counts_trailing') }}

),

network as (

    select * from {{ ref('int_network_delay_rates_trailing') }}

),

rates_smoothed as (

    select
        counts.origin,
        counts.flight_date,
        {{ smoothed_rate('counts.delayed_count_1d', 'counts.flight_count_1d', 'network.delay_rate_28d') }}
            as origin_delay_rate_1d,
        {{ smoothed_rate('counts.cancelled_count_1d', 'counts.flight_count_1d', 'network.cancel_rate_28d') }}
            as origin_cancel_rate_1d,
        {{ smoothed_rate('counts.dep_delayed_count_1d', 'counts.departure_count_1d', 'network.dep_delay_rate_28d') }}
            as origin_dep_delay_rate_1d,
        {{ smoothed_rate('counts.delayed_count_7d', 'counts.flight_count_7d', 'network.delay_rate_28d') }}
            as origin_delay_rate_7d,
        {{ smoothed_rate('counts.cancelled_count_7d', 'counts.flight_count_7d', 'network.cancel_rate_28d') }}
            as origin_cancel_rate_7d,
        {{ smoothed_rate('counts.dep_delayed_count_7d', 'counts.departure_count_7d', 'network.dep_delay_rate_28d') }}
            as origin_dep_delay_rate_7d,
        {{ smoothed_rate('counts.delayed_count_28d', 'counts.flight_count_28d', 'network.delay_rate_28d') }}
            as origin_delay_rate_28d,
        {{ smoothed_rate('counts.cancelled_count_28d', 'counts.flight_count_28d', 'network.cancel_rate_28d') }}
            as origin_cancel_rate_28d,
        {{ smoothed_rate('counts.dep_delayed_count_28d', 'counts.departure_count_28d', 'network.dep_delay_rate_28d') }}
            as origin_dep_delay_rate_28d,
        counts.latest_outcome_date
    from counts
    left join network on counts.flight_date = network.flight_date

)

select * from rates_smoothed
