{{ config(location=build_location('flight_features')) }}

-- One row per scheduled flight: the label and every feature known at the flight's
-- prediction cutoff (00:00 America/New_York on flight_date). Outcomes enter only through
-- trailing counts of outcomes known before that day, weather only from the day before;
-- latest_source_date records the newest day any feature read, and label_known_date the
-- day the label becomes known, for the leakage checks.
{% set windows = [1, 7, 28] %}
{% set rate_groups = ['carrier', 'origin', 'route', 'carrier_origin'] %}
{% set network_delay_prior -%}
    coalesce(
        network_counts.delayed_count_28d / nullif(network_counts.flight_count_28d, 0),
        {{ var('delay_rate_fallback_prior') }}
    )
{%- endset %}
{% set network_dep_delay_prior -%}
    coalesce(
        network_counts.dep_delayed_count_28d / nullif(network_counts.departure_count_28d, 0),
        {{ var('delay_rate_fallback_prior') }}
    )
{%- endset %}
{% set network_cancel_prior -%}
    coalesce(
        network_counts.cancelled_count_28d / nullif(network_counts.flight_count_28d, 0),
        {{ var('cancel_rate_fallback_prior') }}
    )
{%- endset %}

with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

planes as (

    select * from {{ ref('stg_nycflights__planes') }}

),

outcomes_dated as (

    select
        flight_id,
        is_delayed,
        outcome_known_date
    from {{ ref('int_flight_outcomes_dated') }}

),

network_counts as (

    select * from {{ ref('int_network_delay_counts_trailing') }}

),

carrier_counts as (

    select * from {{ ref('int_carrier_delay_counts_trailing') }}

),

origin_counts as (

    select * from {{ ref('int_origin_delay_counts_trailing') }}

),

route_counts as (

    select * from {{ ref('int_route_delay_counts_trailing') }}

),

carrier_origin_counts as (

    select * from {{ ref('int_carrier_origin_delay_counts_trailing') }}

),

weather_daily as (

    select * from {{ ref('int_weather_aggregated_daily') }}

),

-- The same evening and tendency features averaged over the three airports: the weather
-- of the New York area, which sets the flow through all of them. Summed in a fixed order
-- and rounded, so a rebuild gives the same bits.
nyc_weather_daily as (

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

),

holidays as (

    select * from {{ ref('us_federal_holidays') }}

),

holidays_nearest as (

    select
        flights.flight_id,
        min(case
            when holidays.holiday_date >= flights.flight_date
                then holidays.holiday_date - flights.flight_date
        end) as days_to_next_holiday,
        min(case
            when holidays.holiday_date <= flights.flight_date
                then flights.flight_date - holidays.holiday_date
        end) as days_since_last_holiday
    from flights
    cross join holidays
    group by flights.flight_id

),

schedule_counted as (

    select
        flight_id,
        count(*) over (partition by origin, flight_date) as origin_departures_day,
        count(*) over (partition by origin, flight_date, sched_dep_hour) as origin_departures_hour,
        case
            when tailnum is null then 0
            else row_number() over (
                partition by tailnum, flight_date order by sched_dep_at, flight_id
            ) - 1
        end as plane_earlier_legs_day
    from flights

),

features_joined as (

    select
        flights.flight_id,
        flights.flight_date,
        flights.sched_dep_at,
        flights.carrier,
        flights.flight_number,
        flights.tailnum,
        flights.origin,
        flights.dest,
        outcomes_dated.is_delayed,

        -- schedule
        flights.sched_dep_hour,
        isodow(flights.flight_date) as day_of_week,
        flights.distance_miles,
        schedule_counted.origin_departures_day,
        schedule_counted.origin_departures_hour,
        schedule_counted.plane_earlier_legs_day,

        -- plane
        year(flights.flight_date) - planes.year_built as plane_age_years,
        planes.seat_count,
        planes.engine_count,
        planes.engine_type,

        -- calendar
        least(holidays_nearest.days_to_next_holiday, 60) as days_to_next_holiday,
        least(holidays_nearest.days_since_last_holiday, 60) as days_since_last_holiday,

        -- trailing delay and cancellation rates, smoothed toward the network's 28-day rates
        {{ network_delay_prior }} as network_delay_rate_28d,
        {{ network_cancel_prior }} as network_cancel_rate_28d,
        {{ smoothed_rate(
            'network_counts.dep_delayed_count_1d', 'network_counts.departure_count_1d', network_dep_delay_prior
        ) }} as network_dep_delay_rate_1d,
        {%- for group in rate_groups %}
            {%- for days in windows %}
        {{ smoothed_rate(
            group ~ '_counts.delayed_count_' ~ days ~ 'd',
            group ~ '_counts.flight_count_' ~ days ~ 'd',
            network_delay_prior
        ) }} as {{ group }}_delay_rate_{{ days }}d,
        {{ smoothed_rate(
            group ~ '_counts.cancelled_count_' ~ days ~ 'd',
            group ~ '_counts.flight_count_' ~ days ~ 'd',
            network_cancel_prior
        ) }} as {{ group }}_cancel_rate_{{ days }}d,
        {{ smoothed_rate(
            group ~ '_counts.dep_delayed_count_' ~ days ~ 'd',
            group ~ '_counts.departure_count_' ~ days ~ 'd',
            network_dep_delay_prior
        ) }} as {{ group }}_dep_delay_rate_{{ days }}d,
            {%- endfor %}
        {%- endfor %}
        cast(coalesce(carrier_origin_counts.flight_count_28d, 0) as integer) as carrier_origin_flights_28d,

        -- yesterday's weather at the origin
        weather_daily.max_wind_speed_mph as origin_max_wind_speed_mph_1d,
        weather_daily.max_wind_gust_mph as origin_max_wind_gust_mph_1d,
        weather_daily.min_visibility_miles as origin_min_visibility_miles_1d,
        weather_daily.total_precip_in as origin_total_precip_in_1d,
        weather_daily.max_hourly_precip_in as origin_max_hourly_precip_in_1d,
        weather_daily.min_temp_f as origin_min_temp_f_1d,
        weather_daily.max_temp_f as origin_max_temp_f_1d,
        weather_daily.last_temp_f as origin_last_temp_f,
        weather_daily.last_wind_speed_mph as origin_last_wind_speed_mph,
        weather_daily.last_visibility_miles as origin_last_visibility_miles,
        weather_daily.last_pressure_mb as origin_last_pressure_mb,
        weather_daily.last_humidity_pct as origin_last_humidity_pct,
        weather_daily.last_dewpoint_f as origin_last_dewpoint_f,
        weather_daily.last_dewpoint_spread_f as origin_last_dewpoint_spread_f,
        weather_daily.last_wind_dir_deg as origin_last_wind_dir_deg,
        weather_daily.max_dewpoint_f as origin_max_dewpoint_f_1d,
        weather_daily.pressure_change_12h_mb as origin_pressure_change_12h_mb,
        weather_daily.evening_mean_dewpoint_f as origin_evening_mean_dewpoint_f,
        weather_daily.evening_mean_humidity_pct as origin_evening_mean_humidity_pct,
        weather_daily.evening_total_precip_in as origin_evening_total_precip_in,
        weather_daily.evening_min_visibility_miles as origin_evening_min_visibility_miles,
        weather_daily.evening_max_wind_gust_mph as origin_evening_max_wind_gust_mph,

        -- yesterday evening's weather over the New York area
        nyc_weather_daily.pressure_change_12h_mb as nyc_pressure_change_12h_mb,
        nyc_weather_daily.last_dewpoint_spread_f as nyc_last_dewpoint_spread_f,
        nyc_weather_daily.evening_mean_dewpoint_f as nyc_evening_mean_dewpoint_f,
        nyc_weather_daily.evening_mean_humidity_pct as nyc_evening_mean_humidity_pct,
        nyc_weather_daily.evening_total_precip_in as nyc_evening_total_precip_in,
        nyc_weather_daily.evening_min_visibility_miles as nyc_evening_min_visibility_miles,
        nyc_weather_daily.evening_max_wind_gust_mph as nyc_evening_max_wind_gust_mph,

        -- lineage: the newest day of outcomes or weather any feature above read
        greatest(
            {%- for group in ['network'] + rate_groups %}
                coalesce({{ group }}_counts.latest_outcome_date, date '1900-01-01'),
            {%- endfor %}
            coalesce(weather_daily.observed_date, date '1900-01-01'),
            coalesce(nyc_weather_daily.observed_date, date '1900-01-01')
        ) as latest_source_date,
        -- lineage: the New York date by whose end the label is known; training as of D
        -- learns only from labels known before D
        outcomes_dated.outcome_known_date as label_known_date

    from flights
    inner join schedule_counted on flights.flight_id = schedule_counted.flight_id
    inner join holidays_nearest on flights.flight_id = holidays_nearest.flight_id
    left join planes on flights.tailnum = planes.tailnum
    left join outcomes_dated on flights.flight_id = outcomes_dated.flight_id
    left join network_counts on flights.flight_date = network_counts.flight_date
    left join carrier_counts
        on
            flights.carrier = carrier_counts.carrier
            and flights.flight_date = carrier_counts.flight_date
    left join origin_counts
        on
            flights.origin = origin_counts.origin
            and flights.flight_date = origin_counts.flight_date
    left join route_counts
        on
            flights.origin = route_counts.origin
            and flights.dest = route_counts.dest
            and flights.flight_date = route_counts.flight_date
    left join carrier_origin_counts
        on
            flights.carrier = carrier_origin_counts.carrier
            and flights.origin = carrier_origin_counts.origin
            and flights.flight_date = carrier_origin_counts.flight_date
    left join weather_daily
        on
            flights.origin = weather_daily.origin
            and flights.flight_date - 1 = weather_daily.observed_date
    left join nyc_weather_daily
        on flights.flight_date - 1 = nyc_weather_daily.observed_date

)

select * from features_joined
