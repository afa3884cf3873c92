-- One row per scheduled flight: the network's rates and the smoothed trailing rates of its
-- carrier, origin, route, carrier x origin, flight number and origin x departure hour on
-- its flight date, how the evening before went at its origin, named as features, and the
-- newest day whose outcomes any of them counted (for the leakage check).
with flights as (

    select * from {{ ref('stg_nycflights__flights') }}
    where {{ build_window('flight_date') }}

),

network_rates as (

    select * from {{ ref('int_network_delay_rates_trailing') }}

),

carrier_rates as (

    select * from {{ ref('int_carrier_delay_rates_smoothed') }}

),

origin_rates as (

    select * from {{ ref('int_origin_delay_rates_smoothed') }}

),

route_rates as (

    select * from {{ ref('int_route_delay_rates_smoothed') }}

),

carrier_origin_rates as (

    select * from {{ ref('int_carrier_origin_delay_rates_smoothed') }}

),

flight_number_rates as (

    select * from {{ ref('int_flight_number_delay_rates_trailing') }}

),

origin_hour_rates as (

    select * from {{ ref('int_origin_hour_delay_rates_trailing') }}

),

evening_before as (

    select * from {{ ref('int_evening_departures_counted') }}

),

rates_joined_to_flights as (

    select
        flights.flight_id,
        network_rates.delay_rate_28d as network_delay_rate_28d,
        network_rates.cancel_rate_28d as network_cancel_rate_28d,
        network_rates.dep_delay_rate_1d as network_dep_delay_rate_1d,
        carrier_rates.* exclude (carrier, flight_date, latest_outcome_date),  -- noqa: RF02
        origin_rates.* exclude (origin, flight_date, latest_outcome_date),  -- noqa: RF02
        route_rates.* exclude (origin, dest, flight_date, latest_outcome_date),  -- noqa: RF02
        carrier_origin_rates.* exclude (carrier, origin, flight_date, latest_outcome_date),  -- noqa: RF02
        flight_number_rates.* exclude (carrier, flight_number, flight_date, latest_outcome_date),  -- noqa: RF02
        origin_hour_rates.* exclude (origin, sched_dep_hour, flight_date, latest_outcome_date),  -- noqa: RF02
        evening_before.* exclude (origin, flight_date, latest_outcome_date),  -- noqa: RF02
        greatest(
            coalesce(network_rates.latest_outcome_date, date '1900-01-01'),
            coalesce(carrier_rates.latest_outcome_date, date '1900-01-01'),
            coalesce(origin_rates.latest_outcome_date, date '1900-01-01'),
            coalesce(route_rates.latest_outcome_date, date '1900-01-01'),
            coalesce(carrier_origin_rates.latest_outcome_date, date '1900-01-01'),
            coalesce(flight_number_rates.latest_outcome_date, date '1900-01-01'),
            coalesce(origin_hour_rates.latest_outcome_date, date '1900-01-01'),
            coalesce(evening_before.latest_outcome_date, date '1900-01-01')
        ) as latest_outcome_date
    from flights
    left join network_rates on flights.flight_date = network_rates.flight_date
    left join carrier_rates
        on
            flights.carrier = carrier_rates.carrier
            and flights.flight_date = carrier_rates.flight_date
    left join origin_rates
        on
            flights.origin = origin_rates.origin
            and flights.flight_date = origin_rates.flight_date
    left join route_rates
        on
            flights.origin = route_rates.origin
            and flights.dest = route_rates.dest
            and flights.flight_date = route_rates.flight_date
    left join carrier_origin_rates
        on
            flights.carrier = carrier_origin_rates.carrier
            and flights.origin = carrier_origin_rates.origin
            and flights.flight_date = carrier_origin_rates.flight_date
    left join flight_number_rates
        on
            flights.carrier = flight_number_rates.carrier
            and flights.flight_number = flight_number_rates.flight_number
            and flights.flight_date = flight_number_rates.flight_date
    left join origin_hour_rates
        on
            flights.origin = origin_hour_rates.origin
            and flights.sched_dep_hour = origin_hour_rates.sched_dep_hour
            and flights.flight_date = origin_hour_rates.flight_date
    left join evening_before
        on
            flights.origin = evening_before.origin
            and flights.flight_date = evening_before.flight_date

)

select * from rates_joined_to_flights
