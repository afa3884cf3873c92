-- One row per flight date, over all flights from the three origins: flights, delays,
-- cancellations and departures over the trailing 1, 7 and 28 days before that date. The window of D holds
-- what became known on D-k .. D-1 (int_flight_outcomes_counted_daily): everything in it
-- was known at D's cutoff, 00:00 New York time.
with outcomes_counted_daily as (

    select * from {{ ref('int_flight_outcomes_counted_daily') }}

),

counts_by_network_daily as (

    select
        known_date as flight_date,
        sum(flight_count) as flight_count,
        sum(delayed_count) as delayed_count,
        sum(cancelled_count) as cancelled_count,
        sum(departure_count) as departure_count,
        sum(dep_delayed_count) as dep_delayed_count
    from outcomes_counted_daily
    group by all

),

counts_trailing as (

    select
        flight_date,
        coalesce(sum(flight_count) over trailing_1d, 0) as flight_count_1d,
        coalesce(sum(delayed_count) over trailing_1d, 0) as delayed_count_1d,
        coalesce(sum(cancelled_count) over trailing_1d, 0) as cancelled_count_1d,
        coalesce(sum(departure_count) over trailing_1d, 0) as departure_count_1d,
        coalesce(sum(dep_delayed_count) over trailing_1d, 0) as dep_delayed_count_1d,
        coalesce(sum(flight_count) over trailing_7d, 0) as flight_count_7d,
        coalesce(sum(delayed_count) over trailing_7d, 0) as delayed_count_7d,
        coalesce(sum(cancelled_count) over trailing_7d, 0) as cancelled_count_7d,
        coalesce(sum(departure_count) over trailing_7d, 0) as departure_count_7d,
        coalesce(sum(dep_delayed_count) over trailing_7d, 0) as dep_delayed_count_7d,
        coalesce(sum(flight_count) over trailing_28d, 0) as flight_count_28d,
        coalesce(sum(delayed_count) over trailing_28d, 0) as delayed_count_28d,
        coalesce(sum(cancelled_count) over trailing_28d, 0) as cancelled_count_28d,
        coalesce(sum(departure_count) over trailing_28d, 0) as departure_count_28d,
        coalesce(sum(dep_delayed_count) over trailing_28d, 0) as dep_delayed_count_28d,
        -- lineage for the leakage check: the newest day whose outcomes were counted
        max(case when flight_count > 0 or departure_count > 0 then flight_date end)
            over trailing_28d as latest_outcome_date
    from counts_by_network_daily
    window
        trailing_1d as (
            order by flight_date
            range between interval 1 day preceding and interval 1 day preceding
        ),
        trailing_7d as (
            order by flight_date
            range between interval 7 days preceding and interval 1 day preceding
        ),
        trailing_28d as (
            order by flight_date
            range between interval 28 days preceding and interval 1 day preceding
        )

)

select * from counts_trailing
