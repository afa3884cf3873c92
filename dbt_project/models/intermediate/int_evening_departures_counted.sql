-- One row per origin and flight date D: how the evening before went at that origin, as
-- far as it was known at D's cutoff (00:00 New York time). Of the flights of D-1
-- scheduled to depart at 18:00 or later: the share of those that had departed by the
-- cutoff that left 15 or more minutes late (smoothed toward the network's 28-day
-- departure-delay rate), and the mean delay so far at the cutoff, in minutes, over all of
-- them (a flight still on the ground at midnight counts the minutes it had waited, never
-- its final delay, which was known only after the cutoff). Every origin and date with
-- flights has a row: with no evening before on file (the first day of history), the rate
-- is the network's and the mean delay null.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date', extra_days=1) }}

),

network as (

    select * from {{ ref('int_network_delay_rates_trailing') }}

),

evening_flights as (

    select
        origin,
        flight_date + 1 as next_date,
        sched_dep_at,
        dep_delay_minutes,
        timezone('{{ var("local_time_zone") }}', cast(flight_date + 1 as timestamp)) as cutoff_at
    from flights
    where sched_dep_hour >= 18

),

evening_departures as (

    select
        origin,
        next_date,
        dep_delay_minutes,
        dep_delay_minutes is not null
        and sched_dep_at + to_minutes(cast(round(dep_delay_minutes) as bigint)) < cutoff_at
            as departed_by_cutoff,
        -- minutes from the scheduled departure to the cutoff: the least a flight still on
        -- the ground at the cutoff is known to be late
        date_diff('minute', sched_dep_at, cutoff_at) as minutes_to_cutoff
    from evening_flights

),

evening_departures_known as (

    select
        origin,
        next_date,
        departed_by_cutoff,
        case when departed_by_cutoff then dep_delay_minutes else minutes_to_cutoff end
            as delay_so_far_minutes
    from evening_departures

),

origin_dates as (

    select distinct
        origin,
        flight_date
    from flights
    where {{ build_window('flight_date') }}

),

counted as (

    select
        origin,
        next_date as flight_date,
        count_if(departed_by_cutoff) as departed_count,
        count_if(departed_by_cutoff and delay_so_far_minutes >= 15) as departed_late_count,
        avg(delay_so_far_minutes) as delay_so_far_minutes
    from evening_departures_known
    group by all

)

select
    origin_dates.origin,
    origin_dates.flight_date,
    {{ smoothed_rate('counted.departed_late_count', 'counted.departed_count', 'network.dep_delay_rate_28d') }}
        as origin_evening_dep_delay_rate_1d,
    counted.delay_so_far_minutes as origin_evening_dep_delay_minutes_1d,
    counted.flight_date - 1 as latest_outcome_date
from origin_dates
left join counted
    on
        origin_dates.origin = counted.origin
        and origin_dates.flight_date = counted.flight_date
left join network on origin_dates.flight_date = network.flight_date
