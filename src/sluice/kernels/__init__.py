"""What runs on a block of rows: aggregates (one- and two-phase), join keys, sort keys,
window functions, and user functions (their calling convention in `udf`, how they travel in
`user_code`, how their errors read in `udf_errors`, what memory they took in `udf_profiles`).

Kernels take Arrow tables or Polars frames and give them back; they know nothing of plans,
stages or backends.
"""
