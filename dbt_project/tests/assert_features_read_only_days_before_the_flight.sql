-- Leakage check: every feature of a flight on D read outcomes and weather of days before D
-- only. Returns the offending rows (none when the mart is point-in-time correct).
select
    flight_id,
    flight_date,
    latest_source_date
from {{ ref('flight_features') }}
where latest_source_date >= flight_date
