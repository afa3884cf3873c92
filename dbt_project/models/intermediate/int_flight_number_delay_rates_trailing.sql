-- One row per carrier, flight number and flight date: the smoothed trailing 7 and 28-day
-- delay rates and 28-day departure-delay rate of that flight number (the same service,
-- flown most days at the same time), known at the date's cutoff.
{{ trailing_delay_rates(['carrier', 'flight_number'], 'flight_number') }}
