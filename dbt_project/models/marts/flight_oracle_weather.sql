{{ config(location=build_location('flight_oracle_weather')) }}

-- ORACLE, NOT POINT-IN-TIME. One row per scheduled flight: the weather observed at the
-- origin in the hour of its scheduled departure, standing in for a perfect weather
-- forecast. It is known only after the cutoff, so it never enters flight_features: `ml`
-- joins it only when ML_USE_ORACLE_FORECAST is on, and every model that uses it is
-- labelled as an upper bound on what a forecast feed could add, not a deployable model.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

weather as (

    select * from {{ ref('stg_nycflights__weather') }}
    where {{ build_window('observed_date', extra_days=1) }}

),

weather_at_departure as (

    select
        flights.flight_id,
        flights.flight_date,
        weather.temp_f as oracle_temp_f,
        weather.wind_speed_mph as oracle_wind_speed_mph,
        weather.wind_gust_mph as oracle_wind_gust_mph,
        weather.visibility_miles as oracle_visibility_miles,
        weather.precip_in as oracle_precip_in,
        weather.humidity_pct as oracle_humidity_pct,
        weather.pressure_mb as oracle_pressure_mb
    from flights
    left join weather
        on
            flights.origin = weather.origin
            and date_trunc('hour', flights.sched_dep_at) = weather.observed_at

)

select * from weather_at_departure
