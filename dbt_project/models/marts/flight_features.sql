{{ config(location=build_location('flight_features')) }}

-- One row per scheduled flight: the label and every feature known at its prediction
-- cutoff (00:00 America/New_York on flight_date), one intermediate model per feature
-- group, and the lineage the leakage checks read (latest_source_date, label_known_date).
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

outcomes as (

    select * from {{ ref('int_flight_outcomes_dated') }}

),

scheduled_departures as (

    select * from {{ ref('int_scheduled_departures_counted') }}

),

planes as (

    select * from {{ ref('stg_nycflights__planes') }}

),

holidays as (

    select * from {{ ref('int_flight_dates_joined_to_holidays') }}

),

delay_rates as (

    select * from {{ ref('int_flights_joined_to_delay_rates') }}

),

weather as (

    select * from {{ ref('int_flights_joined_to_weather') }}

),

features_joined as (

    select
        flights.flight_id,
        flights.flight_date,
        flights.sched_dep_at,
        flights.carrier,
        flights.flight_number,
        flights.tailnum,
        flights.origin,
        flights.dest,
        outcomes.is_delayed,
        flights.sched_dep_hour,
        isodow(flights.flight_date) as day_of_week,
        dayofyear(flights.flight_date) as day_of_year,
        weekofyear(flights.flight_date) as week_of_year,
        flights.distance_miles,
        scheduled_departures.origin_departures_day,
        scheduled_departures.origin_departures_hour,
        scheduled_departures.origin_departures_3h,
        scheduled_departures.dest_arrivals_from_nyc_hour,
        scheduled_departures.plane_earlier_legs_day,
        year(flights.flight_date) - planes.year_built as plane_age_years,
        planes.seat_count,
        planes.engine_count,
        planes.engine_type,
        holidays.days_to_next_holiday,
        holidays.days_since_last_holiday,
        delay_rates.* exclude (flight_id, latest_outcome_date),  -- noqa: RF02
        weather.* exclude (flight_id, latest_weather_date),  -- noqa: RF02
        greatest(delay_rates.latest_outcome_date, weather.latest_weather_date) as latest_source_date,
        outcomes.outcome_known_date as label_known_date
    from flights
    inner join outcomes on flights.flight_id = outcomes.flight_id
    inner join scheduled_departures on flights.flight_id = scheduled_departures.flight_id
    left join planes on flights.tailnum = planes.tailnum
    inner join holidays on flights.flight_date = holidays.flight_date
    inner join delay_rates on flights.flight_id = delay_rates.flight_id
    inner join weather on flights.flight_id = weather.flight_id

)

select * from features_joined
