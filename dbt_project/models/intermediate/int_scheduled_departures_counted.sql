-- One row per scheduled flight: the departures scheduled at its origin that day, in its
-- hour and in the three hours around it (its hour and the ones before and after), the
-- arrivals scheduled from New York at its destination on its arrival date and in its
-- arrival hour (local time there), and the legs its plane flies earlier that day. All of
-- it is in the schedule, which is known in advance.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

-- the day before too: a flight of D-1 that lands after midnight arrives on D
flights_arriving as (

    select
        flight_id,
        dest,
        sched_arr_hhmm // 100 as sched_arr_hour,
        -- an arrival time (local) earlier than the departure time (New York) is the next
        -- day's, as in int_flight_outcomes_dated
        flight_date
        + cast(sched_arr_hhmm < sched_dep_hour * 100 + sched_dep_minute as integer)
            as sched_arr_date
    from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date', extra_days=1) }}

),

arrivals_counted as (

    select
        flight_id,
        count(*) over (partition by dest, sched_arr_date, sched_arr_hour)
            as dest_arrivals_from_nyc_hour
    from flights_arriving

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
        case
            when tailnum is null then 0
            else row_number() over (
                partition by tailnum, flight_date order by sched_dep_at, flight_id
            ) - 1
        end as plane_earlier_legs_day
    from flights

)

select
    departures_counted.*,  -- noqa: RF02
    arrivals_counted.dest_arrivals_from_nyc_hour
from departures_counted
inner join arrivals_counted on departures_counted.flight_id = arrivals_counted.flight_id
