-- One row per carrier, origin, destination and New York date (known_date): the outcomes
-- that became known by the end of that day (flights, delayed, cancelled) and the
-- departures that did (departed 15+ minutes late or not at all). Every day a group has
-- flights scheduled has a row, zeros if nothing became known, so the trailing windows of
-- int_*_delay_counts_trailing have a row for every day a flight needs its features.
with outcomes as (

    select * from {{ ref('int_flight_outcomes_dated') }}

),

outcomes_counted_by_known_date as (

    select
        carrier,
        origin,
        dest,
        outcome_known_date as known_date,
        count(*) as flight_count,
        count_if(is_delayed) as delayed_count,
        count_if(is_cancelled) as cancelled_count
    from outcomes
    group by all

),

departures_counted_by_known_date as (

    select
        carrier,
        origin,
        dest,
        departure_known_date as known_date,
        count(*) as departure_count,
        count_if(is_dep_delayed) as dep_delayed_count
    from outcomes
    group by all

),

scheduled_dates as (

    select distinct
        carrier,
        origin,
        dest,
        flight_date as known_date,
        0 as flight_count,
        0 as delayed_count,
        0 as cancelled_count
    from outcomes

),

counts_unioned as (

    select * from outcomes_counted_by_known_date
    union all by name
    select * from departures_counted_by_known_date
    union all by name
    select * from scheduled_dates

),

counts_summed_daily as (

    select
        carrier,
        origin,
        dest,
        known_date,
        coalesce(sum(flight_count), 0) as flight_count,
        coalesce(sum(delayed_count), 0) as delayed_count,
        coalesce(sum(cancelled_count), 0) as cancelled_count,
        coalesce(sum(departure_count), 0) as departure_count,
        coalesce(sum(dep_delayed_count), 0) as dep_delayed_count
    from counts_unioned
    group by all

)

select * from counts_summed_daily
