-- One row per flight date: the delay, cancellation and departure-delay rates of all
-- flights from the three origins over the 28 days before (the fallback priors before any
-- history exists), which every group's rates are smoothed toward, and the network's
-- departure-delay rate of the day before, smoothed toward its 28-day rate.
with network_counts as (

    select * from {{ ref('int_network_delay_counts_trailing') }}

),

rates_28d as (

    select
        flight_date,
        coalesce(
            delayed_count_28d / nullif(flight_count_28d, 0), {{ var('delay_rate_fallback_prior') }}
        ) as delay_rate_28d,
        coalesce(
            cancelled_count_28d / nullif(flight_count_28d, 0), {{ var('cancel_rate_fallback_prior') }}
        ) as cancel_rate_28d,
        coalesce(
            dep_delayed_count_28d / nullif(departure_count_28d, 0), {{ var('delay_rate_fallback_prior') }}
        ) as dep_delay_rate_28d,
        dep_delayed_count_1d,
        departure_count_1d,
        latest_outcome_date
    from network_counts

),

rates_smoothed as (

    select
        flight_date,
        delay_rate_28d,
        cancel_rate_28d,
        dep_delay_rate_28d,
        {{ smoothed_rate('dep_delayed_count_1d', 'departure_count_1d', 'dep_delay_rate_28d') }}
            as dep_delay_rate_1d,
        latest_outcome_date
    from rates_28d

)

select * from rates_smoothed
