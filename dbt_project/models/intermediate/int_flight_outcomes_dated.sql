-- One row per scheduled flight: its outcome (the label is_delayed, its departure delay and
-- cancellation) and the local (New York) date by whose end that outcome is known. A flight
-- is known to be on time when it lands, and known to be delayed once its scheduled arrival
-- plus 15 minutes has passed, so its label is known at sched_arr_at + 15 minutes at the
-- latest. A late-evening flight's outcome therefore counts only from the day after next,
-- never in the features of the next morning. Its departure is known sooner: departed 15+
-- minutes late (or not at all) is settled by sched_dep_at + 15 minutes, so yesterday
-- evening's departures are known at midnight.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}

),

airports as (

    select * from {{ ref('stg_nycflights__airports') }}

),

arrivals_scheduled as (

    select
        flights.flight_id,
        flights.flight_date,
        flights.carrier,
        flights.flight_number,
        flights.origin,
        flights.dest,
        flights.sched_dep_hour,
        flights.sched_dep_at,
        -- The label: arrived 15 or more minutes late, or did not arrive (cancelled, diverted).
        coalesce(flights.arr_delay_minutes >= 15, true) as is_delayed,
        flights.is_cancelled,
        -- Departed 15 or more minutes late, or not at all.
        coalesce(flights.dep_delay_minutes >= 15, true) as is_dep_delayed,
        -- Destinations missing from the airports table (Puerto Rico, the Virgin Islands)
        -- are read as New York time: never earlier than their true time zone, so the
        -- outcome is never taken as known too soon.
        timezone(
            coalesce(airports.time_zone, '{{ var("local_time_zone") }}'),
            cast(flights.flight_date as timestamp)
            + to_hours(flights.sched_arr_hhmm // 100)
            + to_minutes(flights.sched_arr_hhmm % 100)
        ) as sched_arr_same_day_at
    from flights
    left join airports on flights.dest = airports.airport_code
    where {{ build_window('flights.flight_date', lookback=true) }}

),

outcomes_dated as (

    select
        flight_id,
        flight_date,
        carrier,
        flight_number,
        origin,
        dest,
        sched_dep_hour,
        is_delayed,
        is_cancelled,
        is_dep_delayed,
        sched_dep_at,
        case
            when sched_arr_same_day_at < sched_dep_at then sched_arr_same_day_at + interval 1 day
            else sched_arr_same_day_at
        end as sched_arr_at
    from arrivals_scheduled

),

known_dated as (

    select
        *,
        cast(timezone('{{ var("local_time_zone") }}', sched_arr_at + interval 15 minutes) as date)
            as outcome_known_date,
        cast(timezone('{{ var("local_time_zone") }}', sched_dep_at + interval 15 minutes) as date)
            as departure_known_date
    from outcomes_dated

)

select * from known_dated
