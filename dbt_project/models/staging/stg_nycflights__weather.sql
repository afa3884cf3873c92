-- One row per origin and hourly observation. observed_at is UTC (the source's time_hour);
-- observed_date is the local calendar day the observation belongs to.
with source as (

    select * from {{ source('nycflights', 'weather') }}

),

renamed as (

    select
        origin,
        cast(flight_date as date) as observed_date,
        cast(hour as integer) as observed_local_hour,
        cast(time_hour as timestamptz) as observed_at,
        temp as temp_f,
        dewp as dewpoint_f,
        humid as humidity_pct,
        wind_dir as wind_dir_deg,
        -- beyond any wind ever measured: a faulty reading (one in the 2013 record)
        case
            when wind_speed between 0 and {{ var('max_wind_mph') }} then wind_speed
        end as wind_speed_mph,
        wind_gust as wind_gust_mph,
        precip as precip_in,
        pressure as pressure_mb,
        visib as visibility_miles
    from source

)

select * from renamed
