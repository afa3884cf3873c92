-- One row per origin and local date: the day's weather extremes, its evening (from 18:00
-- local), its last observation and the pressure tendency over its last twelve hours.
-- A flight on D joins the row of D-1, all of which is known at D's cutoff. The evening
-- and the tendency are what a persistence forecast of D's weather starts from: falling
-- pressure, humid air and the wind direction (which sets the runway configuration).
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
        arg_max(humidity_pct, observed_at) as last_humidity_pct,
        arg_max(dewpoint_f, observed_at) as last_dewpoint_f,
        arg_max(temp_f - dewpoint_f, observed_at) as last_dewpoint_spread_f,
        arg_max(wind_dir_deg, observed_at) as last_wind_dir_deg,
        max(dewpoint_f) as max_dewpoint_f,
        arg_max(pressure_mb, observed_at) filter (where pressure_mb is not null)
        - arg_max(pressure_mb, observed_at) filter (
            where pressure_mb is not null and observed_local_hour <= 12
        ) as pressure_change_12h_mb,
        avg(dewpoint_f) filter (where observed_local_hour >= 18) as evening_mean_dewpoint_f,
        avg(humidity_pct) filter (where observed_local_hour >= 18) as evening_mean_humidity_pct,
        sum(precip_in) filter (where observed_local_hour >= 18) as evening_total_precip_in,
        min(visibility_miles) filter (where observed_local_hour >= 18) as evening_min_visibility_miles,
        max(wind_gust_mph) filter (where observed_local_hour >= 18) as evening_max_wind_gust_mph
    from weather
    where {{ build_window('observed_date', extra_days=1) }}
    group by all

)

select * from aggregated
