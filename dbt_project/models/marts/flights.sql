{{ config(location=build_location('flights')) }}

-- One row per scheduled flight: schedule, carrier name and outcome, for analysts.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

airlines as (

    select * from {{ ref('stg_nycflights__airlines') }}

),

outcomes as (

    select * from {{ ref('int_flight_outcomes_dated') }}

),

flights_joined_to_airlines_and_outcomes as (

    select
        flights.flight_id,
        flights.flight_date,
        flights.sched_dep_at,
        flights.carrier,
        airlines.carrier_name,
        flights.flight_number,
        flights.tailnum,
        flights.origin,
        flights.dest,
        flights.distance_miles,
        flights.dep_delay_minutes,
        flights.arr_delay_minutes,
        flights.is_cancelled,
        flights.is_arrival_missing,
        outcomes.is_delayed
    from flights
    left join airlines on flights.carrier = airlines.carrier
    inner join outcomes on flights.flight_id = outcomes.flight_id

)

select * from flights_joined_to_airlines_and_outcomes
