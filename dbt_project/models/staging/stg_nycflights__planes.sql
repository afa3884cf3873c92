-- One row per plane (tail number) in the FAA registry extract.
with source as (

    select * from {{ source('nycflights', 'planes') }}

),

renamed as (

    select
        tailnum,
        cast(year as integer) as year_built,
        type as aircraft_type,
        manufacturer,
        model,
        cast(engines as integer) as engine_count,
        cast(seats as integer) as seat_count,
        engine as engine_type
    from source

)

select * from renamed
