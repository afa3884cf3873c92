-- One row per origin and flight date: flights, delays and
-- cancellations over the trailing 1, 7 and 28 days before that date.
{{ trailing_delay_counts(group_by=['origin']) }}
