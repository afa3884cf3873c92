-- One row per scheduled flight: the departures scheduled at its origin that day, in its
-- hour and in the three hours around it (its hour and the ones before and after), the
-- arrivals scheduled from New York at its destination in its arrival hour (local time
-- there), and the legs its plane flies earlier that day. All of it is in the schedule,
-- which is known in advance.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

departures_counted as (

    select
        flight_id,
        count(*) over (partition by origin, flight_date) as origin_departures_day,
        count(*) over (partition by origin, flight_date, sched_dep_hour) as origin_departures_hour,
        count(*) over (
            partition by origin, flight_date order by sched_dep_hour
            range between 1 preceding and 1 following
        ) as origin_departures_3h,
        count(*) over (partition by dest, flight_date, sched_arr_hhmm // 100)
            as dest_arrivals_from_nyc_hour,
        case
            when tailnum is null then 0
            else row_number() over (
                partition by tailnum, flight_date order by sched_dep_at, flight_id
            ) - 1
        end as plane_earlier_legs_day
    from flights

)

select * from departures_counted
