-- One row per scheduled departure. Scheduled times are local (America/New_York);
-- sched_dep_at is the same instant as a timestamptz.
with source as (

    select * from {{ source('nycflights', 'flights') }}

),

renamed as (

    select
        concat_ws('-', strftime(flight_date, '%Y%m%d'), carrier, cast(flight as varchar), origin)
            as flight_id,
        cast(flight_date as date) as flight_date,
        carrier,
        cast(flight as integer) as flight_number,
        tailnum,
        origin,
        dest,
        cast(hour as integer) as sched_dep_hour,
        cast(minute as integer) as sched_dep_minute,
        timezone(
            '{{ var("local_time_zone") }}',
            cast(flight_date as timestamp) + to_hours(hour) + to_minutes(minute)
        ) as sched_dep_at,
        cast(sched_arr_time as integer) as sched_arr_hhmm,
        cast(dep_delay as double) as dep_delay_minutes,
        cast(arr_delay as double) as arr_delay_minutes,
        cast(air_time as double) as air_time_minutes,
        cast(distance as double) as distance_miles,
        dep_time is null as is_cancelled,
        arr_delay is null as is_arrival_missing
    from source

)

select * from renamed
