{#
    The model's grain: no two rows share the values of these columns.
    (What dbt_utils.unique_combination_of_columns does, without the package download.)
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as row_count
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
