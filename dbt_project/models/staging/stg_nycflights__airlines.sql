-- One row per carrier.
with source as (

    select * from {{ source('nycflights', 'airlines') }}

),

renamed as (

    select
        carrier,
        name as carrier_name
    from source

)

select * from renamed
