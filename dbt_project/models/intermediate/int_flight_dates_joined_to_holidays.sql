-- One row per flight date: the days to the next and since the last US federal holiday
-- (observed dates), capped at 60.
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

holidays as (

    select * from {{ ref('us_federal_holidays') }}

),

flight_dates as (

    select distinct flight_date from flights

),

holidays_nearest as (

    select
        flight_dates.flight_date,
        least(
            min(case
                when holidays.holiday_date >= flight_dates.flight_date
                    then holidays.holiday_date - flight_dates.flight_date
            end),
            60
        ) as days_to_next_holiday,
        least(
            min(case
                when holidays.holiday_date <= flight_dates.flight_date
                    then flight_dates.flight_date - holidays.holiday_date
            end),
            60
        ) as days_since_last_holiday
    from flight_dates
    cross join holidays
    group by flight_dates.flight_date

)

select * from holidays_nearest
