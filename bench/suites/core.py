"""The ``core`` suite: sluice's single-table pipeline against Polars and DuckDB.

From the issue: "scan + filter + project + an arrow-native map_batches over
TPC-H SF1 lineitem, timed side by side with Polars lazy and DuckDB in the same
run; target at most 1.5x Polars".  The parameters below are imported by every
engine module so the query cannot drift between engines.

scan_filter_project_map, in SQL terms::

    SELECT count(*) AS rows, sum(net) AS sum_net FROM (
      SELECT l_orderkey, l_extendedprice, l_discount, l_tax, l_returnflag,
             CAST(l_extendedprice AS DOUBLE) * (1 - CAST(l_discount AS DOUBLE))
                                             * (1 + CAST(l_tax AS DOUBLE)) AS net
      FROM lineitem
      WHERE l_shipdate >= DATE '1995-01-01' AND l_quantity < 25)

tpchgen-cli writes l_shipdate as date32 and the money/quantity columns as
decimal128(15, 2); ``net`` is computed in float64 in every engine (decimal
products would widen past 38 digits).  The final reduction to two scalars
keeps result transfer out of the measurement.
"""
import datetime
import math

ENGINES = ("sluice", "handwritten", "polars", "duckdb")
TABLES = ("lineitem",)
REFERENCE = "duckdb"

WORKLOADS = {
    "scan_filter_project_map":
        "lineitem: filter shipdate/quantity, project 5 cols, map_batches adds net, count+sum",
}

SHIPDATE_FROM = datetime.date(1995, 1, 1)   # l_shipdate >= this
QUANTITY_BELOW = 25                         # l_quantity < this
PROJECT = ("l_orderkey", "l_extendedprice", "l_discount", "l_tax", "l_returnflag")


def same_answer(a: dict, b: dict) -> bool:
    """Row counts must match exactly; float sums up to summation-order noise."""
    return (a.get("rows") == b.get("rows")
            and a.get("sum_net") is not None and b.get("sum_net") is not None
            and math.isclose(a["sum_net"], b["sum_net"], rel_tol=1e-9, abs_tol=1e-6))
