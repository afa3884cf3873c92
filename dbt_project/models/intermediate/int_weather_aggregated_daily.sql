-- One row per origin and local date: the day's weather extremes and its last
-- observation. A flight on D joins the row of D-1, all of which is known at D's cutoff.
with weather as (

    select * from {{ ref('stg_nycflights__weather') }}

),

aggregated as (

    select
        origin,
        observed_date,
        max(wind_speed_mph) as max_wind_speed_mph,
        max(wind_gust_mph) as max_wind_gust_mph,
        min(visibility_miles) as min_visibility_miles,
        sum(precip_in) as total_precip_in,
        max(precip_in) as max_hourly_precip_in,
        min(temp_f) as min_temp_f,
        max(temp_f) as max_temp_f,
        arg_max(temp_f, observed_at) as last_temp_f,
        arg_max(wind_speed_mph, observed_at) as last_wind_speed_mph,
        arg_max(visibility_miles, observed_at) as last_visibility_miles,
        arg_max(pressure_mb, observed_at) as last_pressure_mb,
        arg_max(humidity_pct, observed_at) as last_humidity_pct
    from weather
    where {{ build_window('observed_date', 1) }}
    group by all

)

select * from aggregated
