-- One row per flight date, carrier, origin and destination: how many flights were
-- scheduled, delayed (the label) and cancelled. The shared base of every trailing rate.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}

),

aggregated as (

    select
        flight_date,
        carrier,
        origin,
        dest,
        count(*) as flight_count,
        count_if(is_delayed) as delayed_count,
        count_if(is_cancelled) as cancelled_count
    from flights
    group by all

)

select * from aggregated
