{#
    A rate smoothed toward the prior: (events + m * prior) / (flights + m), with m the
    var delay_rate_prior_weight. A group without history gets the prior.
#}
{% macro smoothed_rate(numerator, denominator, prior) %}
    (coalesce({{ numerator }}, 0) + {{ var('delay_rate_prior_weight') }} * {{ prior }})
    / (coalesce({{ denominator }}, 0) + {{ var('delay_rate_prior_weight') }})
{% endmacro %}
