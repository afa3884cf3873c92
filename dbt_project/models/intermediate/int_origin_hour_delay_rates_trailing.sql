-- One row per origin, scheduled departure hour and flight date: the smoothed trailing 7
-- and 28-day delay rates and 28-day departure-delay rate of the origin's departures in
-- that hour (delays build up over the day, and differently at each airport).
{{ trailing_delay_rates(['origin', 'sched_dep_hour'], 'origin_hour') }}
