-- One row per local date: the evening and tendency figures of int_weather_aggregated_daily
-- averaged over EWR, JFK and LGA, the weather of the New York area, which sets the flow
-- through all three airports. Averaged in a fixed order and rounded, so a rebuild gives
-- the same bits.
with weather_daily as (

    select * from {{ ref('int_weather_aggregated_daily') }}

),

weather_averaged_over_origins as (

    select
        observed_date,
        round(avg(pressure_change_12h_mb order by origin), 4) as pressure_change_12h_mb,
        round(avg(last_dewpoint_spread_f order by origin), 4) as last_dewpoint_spread_f,
        round(avg(evening_mean_dewpoint_f order by origin), 4) as evening_mean_dewpoint_f,
        round(avg(evening_mean_humidity_pct order by origin), 4) as evening_mean_humidity_pct,
        round(avg(evening_total_precip_in order by origin), 4) as evening_total_precip_in,
        round(avg(evening_min_visibility_miles order by origin), 4) as evening_min_visibility_miles,
        round(avg(evening_max_wind_gust_mph order by origin), 4) as evening_max_wind_gust_mph
    from weather_daily
    group by observed_date

)

select * from weather_averaged_over_origins
