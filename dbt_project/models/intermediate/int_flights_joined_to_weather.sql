-- One row per scheduled flight: the weather of the day before its flight date, all of it
-- known at the cutoff, named as features: at its origin (int_weather_aggregated_daily) and
-- over the New York area (int_nyc_weather_averaged_daily); and the newest day of weather
-- read (for the leakage check).
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

origin_weather as (

    select * from {{ ref('int_weather_aggregated_daily') }}

),

nyc_weather as (

    select * from {{ ref('int_nyc_weather_averaged_daily') }}

),

weather_of_the_day_before_joined_to_flights as (

    select
        flights.flight_id,
        -- yesterday's weather at the origin
        origin_weather.max_wind_speed_mph as origin_max_wind_speed_mph_1d,
        origin_weather.max_wind_gust_mph as origin_max_wind_gust_mph_1d,
        origin_weather.min_visibility_miles as origin_min_visibility_miles_1d,
        origin_weather.total_precip_in as origin_total_precip_in_1d,
        origin_weather.max_hourly_precip_in as origin_max_hourly_precip_in_1d,
        origin_weather.min_temp_f as origin_min_temp_f_1d,
        origin_weather.max_temp_f as origin_max_temp_f_1d,
        origin_weather.last_temp_f as origin_last_temp_f,
        origin_weather.last_wind_speed_mph as origin_last_wind_speed_mph,
        origin_weather.last_visibility_miles as origin_last_visibility_miles,
        origin_weather.last_pressure_mb as origin_last_pressure_mb,
        origin_weather.last_humidity_pct as origin_last_humidity_pct,
        origin_weather.last_dewpoint_f as origin_last_dewpoint_f,
        origin_weather.last_dewpoint_spread_f as origin_last_dewpoint_spread_f,
        origin_weather.last_wind_dir_deg as origin_last_wind_dir_deg,
        origin_weather.max_dewpoint_f as origin_max_dewpoint_f_1d,
        origin_weather.pressure_change_12h_mb as origin_pressure_change_12h_mb,
        origin_weather.evening_mean_dewpoint_f as origin_evening_mean_dewpoint_f,
        origin_weather.evening_mean_humidity_pct as origin_evening_mean_humidity_pct,
        origin_weather.evening_total_precip_in as origin_evening_total_precip_in,
        origin_weather.evening_min_visibility_miles as origin_evening_min_visibility_miles,
        origin_weather.evening_max_wind_gust_mph as origin_evening_max_wind_gust_mph,
        -- yesterday evening's weather over the New York area
        nyc_weather.last_dewpoint_spread_f as nyc_last_dewpoint_spread_f,
        nyc_weather.pressure_change_12h_mb as nyc_pressure_change_12h_mb,
        nyc_weather.evening_mean_dewpoint_f as nyc_evening_mean_dewpoint_f,
        nyc_weather.evening_mean_humidity_pct as nyc_evening_mean_humidity_pct,
        nyc_weather.evening_total_precip_in as nyc_evening_total_precip_in,
        nyc_weather.evening_min_visibility_miles as nyc_evening_min_visibility_miles,
        nyc_weather.evening_max_wind_gust_mph as nyc_evening_max_wind_gust_mph,
        greatest(
            coalesce(origin_weather.observed_date, date '1900-01-01'),
            coalesce(nyc_weather.observed_date, date '1900-01-01')
        ) as latest_weather_date
    from flights
    left join origin_weather
        on
            flights.origin = origin_weather.origin
            and flights.flight_date - 1 = origin_weather.observed_date
    left join nyc_weather
        on flights.flight_date - 1 = nyc_weather.observed_date

)

select * from weather_of_the_day_before_joined_to_flights
