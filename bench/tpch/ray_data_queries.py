"""The 22 TPC-H queries with the Ray Data API (``ray.data``, Ray 2.60).

Used by ``bench/engines/ray_data.py`` (which calls ``ray.init`` first).  Each
``qNN(tables)`` builds a Dataset pipeline with Ray Data operators only: ``read_parquet``
(+ ``select_columns``, pushed into the scan), ``filter(expr=...)``, ``with_column`` /
``map_batches(batch_format="pyarrow")`` for derived columns, ``join`` (hash-shuffle
join: inner, left_outer, left_semi, left_anti), ``groupby().aggregate(Sum, Count,
Mean, Min, CountDistinct)``, and eager Dataset aggregates (``ds.sum/max/mean``) for an
uncorrelated scalar subquery.  The result, a few rows to a few thousand, is then
collected as Arrow and the final ORDER BY / LIMIT applied with pyarrow in the driver,
the same "compute, then sort the small result" as the Dask version.  Columns are named
and ordered as in ``sql/qNN.sql``.

Every query is expressible; a query Ray Data could not express would raise
``NotImplementedError("n/a: <reason>")`` and be reported as n/a.

Types: every scan is ``read_parquet`` + ``select_columns`` (pushed into the reader)
followed by one arrow-native ``map_batches`` that casts the tpchgen-cli ``string_view``
columns to ``string`` and the decimal128(15, 2) money/quantity columns to float64.
string_view must go: pyarrow 26 has no ``array_filter`` / ``equal`` kernels for it, so
a filter on (or next to) such a column fails, and Ray pushes filters into the Parquet
scan, where a schema override does not help (the filter meets the physical
string_view column).  The cast step also keeps filters out of the scan, so there is no
predicate pushdown; the filters run fused with the read task instead.  Floats, because
Ray Data's aggregations and expressions are float-based; decimal constants are
therefore written as the exact bounds they stand for (Q6: 0.05 .. 0.07).

Subquery rewrites are those of ``dask_queries.py`` (see there): EXISTS/IN -> left_semi
join, NOT EXISTS/NOT IN -> left_anti join, correlated aggregates -> groupby + join
back, Q21 via distinct-supplier counts per order.  The joined tables' right key
columns are dropped by Ray's join (they equal the left keys).
"""
from __future__ import annotations

import datetime
import glob

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data.aggregate import Count, CountDistinct, Mean, Min, Sum
from ray.data.expressions import col, lit

TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
D = datetime.date


class Tables:
    """Scans over ``<data>/<table>/`` plus the shuffle partition count for joins."""

    def __init__(self, data_dir: str, partitions: int):
        self.data = str(data_dir)
        self.partitions = partitions
        self._schemas = {}

    def schema(self, table: str, float_money: bool = True) -> pa.Schema:
        """The files' schema with string_view -> string (and decimal -> float64)."""
        key = (table, float_money)
        if key not in self._schemas:
            first = min(glob.glob(f"{self.data}/{table}/*.parquet"))
            fields = []
            for f in pq.read_schema(first):
                t = f.type
                if t == pa.string_view():
                    t = pa.string()
                elif float_money and pa.types.is_decimal(t):
                    t = pa.float64()
                fields.append(pa.field(f.name, t, f.nullable))
            self._schemas[key] = pa.schema(fields)
        return self._schemas[key]

    def scan(self, table: str, *columns: str):
        """``read_parquet`` of the columns (pushed into the scan), then one arrow-native
        ``map_batches`` casting string_view -> string and decimal -> float64."""
        ds = ray.data.read_parquet(f"{self.data}/{table}").select_columns(list(columns))
        return ds.map_batches(_normalize, batch_format="pyarrow")

    def join(self, left, right, left_on, right_on=None, how="inner"):
        left_on = (left_on,) if isinstance(left_on, str) else tuple(left_on)
        right_on = left_on if right_on is None else (
            (right_on,) if isinstance(right_on, str) else tuple(right_on))
        return left.join(right, join_type=how, num_partitions=self.partitions,
                         on=left_on, right_on=right_on)


def _normalize(batch: pa.Table) -> pa.Table:
    fields = []
    for f in batch.schema:
        t = f.type
        if t == pa.string_view():
            t = pa.string()
        elif pa.types.is_decimal(t):
            t = pa.float64()
        fields.append(pa.field(f.name, t, f.nullable))
    return batch.cast(pa.schema(fields))


def _derive(ds, **columns):
    """Add columns computed with pyarrow.compute, one function of the batch per column."""
    def add(batch: pa.Table) -> pa.Table:
        for name, fn in columns.items():
            batch = batch.append_column(name, fn(batch))
        return batch
    return ds.map_batches(add, batch_format="pyarrow")


def collect(ds) -> pa.Table:
    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_columns]
    if not tables:
        return pa.table({name: pa.array([], type=t) for name, t in
                         zip(ds.schema().names, ds.schema().types)})
    return pa.concat_tables(tables, promote_options="permissive")


def finish(table: pa.Table, columns, order=(), limit=None) -> pa.Table:
    """Final ORDER BY / LIMIT on the small result; ``columns``: names or (name, source)."""
    if order:
        table = table.sort_by([(c, "descending" if desc else "ascending") for c, desc in order])
    if limit is not None:
        table = table.slice(0, limit)
    pairs = [(c, c) if isinstance(c, str) else c for c in columns]
    return pa.table({name: table[src] for name, src in pairs})


def _scalar_table(**values) -> pa.Table:
    return pa.table({k: [v] for k, v in values.items()})


def _revenue(batch):
    return pc.multiply(batch["l_extendedprice"], pc.subtract(1.0, batch["l_discount"]))


# ------------------------------------------------------------------------------- queries


def q01(t: Tables):
    li = t.scan("lineitem", "l_returnflag", "l_linestatus", "l_quantity", "l_extendedprice",
                "l_discount", "l_tax", "l_shipdate")
    li = li.filter(expr=col("l_shipdate") <= lit(D(1998, 9, 2)))
    li = li.with_column("disc_price", col("l_extendedprice") * (1.0 - col("l_discount")))
    li = li.with_column("charge", col("disc_price") * (1.0 + col("l_tax")))
    g = li.groupby(["l_returnflag", "l_linestatus"]).aggregate(
        Sum("l_quantity", alias_name="sum_qty"),
        Sum("l_extendedprice", alias_name="sum_base_price"),
        Sum("disc_price", alias_name="sum_disc_price"),
        Sum("charge", alias_name="sum_charge"),
        Mean("l_quantity", alias_name="avg_qty"),
        Mean("l_extendedprice", alias_name="avg_price"),
        Mean("l_discount", alias_name="avg_disc"),
        Count(alias_name="count_order"),
    )
    return finish(collect(g), ["l_returnflag", "l_linestatus", "sum_qty", "sum_base_price",
                               "sum_disc_price", "sum_charge", "avg_qty", "avg_price",
                               "avg_disc", "count_order"],
                  [("l_returnflag", False), ("l_linestatus", False)])


def q02(t: Tables):
    region = t.scan("region", "r_regionkey", "r_name").filter(expr=col("r_name") == "EUROPE")
    nation = t.join(t.scan("nation", "n_nationkey", "n_name", "n_regionkey"), region,
                    "n_regionkey", "r_regionkey", "left_semi")
    supplier = t.join(t.scan("supplier", "s_suppkey", "s_name", "s_address", "s_nationkey",
                             "s_phone", "s_acctbal", "s_comment"),
                      nation.select_columns(["n_nationkey", "n_name"]),
                      "s_nationkey", "n_nationkey")
    part = t.scan("part", "p_partkey", "p_mfgr", "p_size", "p_type").filter(
        expr=(col("p_size") == 15) & col("p_type").str.ends_with("BRASS"))
    ps = t.join(t.scan("partsupp", "ps_partkey", "ps_suppkey", "ps_supplycost"),
                part.select_columns(["p_partkey", "p_mfgr"]), "ps_partkey", "p_partkey")
    # every European offer for the qualifying parts: exactly the correlated subquery's rows
    ps = t.join(ps, supplier, "ps_suppkey", "s_suppkey").materialize()
    best = ps.groupby("ps_partkey").aggregate(Min("ps_supplycost", alias_name="min_cost"))
    j = t.join(ps, best, ["ps_partkey", "ps_supplycost"], ["ps_partkey", "min_cost"], "left_semi")
    return finish(collect(j), ["s_acctbal", "s_name", "n_name", ("p_partkey", "ps_partkey"),
                               "p_mfgr", "s_address", "s_phone", "s_comment"],
                  [("s_acctbal", True), ("n_name", False), ("s_name", False),
                   ("ps_partkey", False)], 100)


def q03(t: Tables):
    c = t.scan("customer", "c_custkey", "c_mktsegment").filter(
        expr=col("c_mktsegment") == "BUILDING")
    o = t.scan("orders", "o_orderkey", "o_custkey", "o_orderdate", "o_shippriority").filter(
        expr=col("o_orderdate") < lit(D(1995, 3, 15)))
    li = t.scan("lineitem", "l_orderkey", "l_extendedprice", "l_discount", "l_shipdate").filter(
        expr=col("l_shipdate") > lit(D(1995, 3, 15)))
    li = li.with_column("revenue", col("l_extendedprice") * (1.0 - col("l_discount")))
    o = t.join(o, c, "o_custkey", "c_custkey", "left_semi")
    j = t.join(li.select_columns(["l_orderkey", "revenue"]), o, "l_orderkey", "o_orderkey")
    g = j.groupby(["l_orderkey", "o_orderdate", "o_shippriority"]).aggregate(
        Sum("revenue", alias_name="revenue"))
    return finish(collect(g), ["l_orderkey", "revenue", "o_orderdate", "o_shippriority"],
                  [("revenue", True), ("o_orderdate", False)], 10)


def q04(t: Tables):
    o = t.scan("orders", "o_orderkey", "o_orderdate", "o_orderpriority").filter(
        expr=(col("o_orderdate") >= lit(D(1993, 7, 1))) & (col("o_orderdate") < lit(D(1993, 10, 1))))
    li = t.scan("lineitem", "l_orderkey", "l_commitdate", "l_receiptdate").filter(
        expr=col("l_commitdate") < col("l_receiptdate"))
    o = t.join(o, li.select_columns(["l_orderkey"]), "o_orderkey", "l_orderkey", "left_semi")
    g = o.groupby("o_orderpriority").aggregate(Count(alias_name="order_count"))
    return finish(collect(g), ["o_orderpriority", "order_count"], [("o_orderpriority", False)])


def q05(t: Tables):
    region = t.scan("region", "r_regionkey", "r_name").filter(expr=col("r_name") == "ASIA")
    nation = t.join(t.scan("nation", "n_nationkey", "n_name", "n_regionkey"), region,
                    "n_regionkey", "r_regionkey", "left_semi")
    c = t.join(t.scan("customer", "c_custkey", "c_nationkey"),
               nation.select_columns(["n_nationkey", "n_name"]), "c_nationkey", "n_nationkey")
    o = t.scan("orders", "o_orderkey", "o_custkey", "o_orderdate").filter(
        expr=(col("o_orderdate") >= lit(D(1994, 1, 1))) & (col("o_orderdate") < lit(D(1995, 1, 1))))
    o = t.join(o.select_columns(["o_orderkey", "o_custkey"]), c, "o_custkey", "c_custkey")
    li = t.scan("lineitem", "l_orderkey", "l_suppkey", "l_extendedprice", "l_discount")
    j = t.join(li, o, "l_orderkey", "o_orderkey")
    j = t.join(j, t.scan("supplier", "s_suppkey", "s_nationkey"),
               ["l_suppkey", "c_nationkey"], ["s_suppkey", "s_nationkey"], "left_semi")
    j = j.with_column("revenue", col("l_extendedprice") * (1.0 - col("l_discount")))
    g = j.groupby("n_name").aggregate(Sum("revenue", alias_name="revenue"))
    return finish(collect(g), ["n_name", "revenue"], [("revenue", True)])


def q06(t: Tables):
    li = t.scan("lineitem", "l_shipdate", "l_discount", "l_quantity", "l_extendedprice").filter(
        expr=(col("l_shipdate") >= lit(D(1994, 1, 1))) & (col("l_shipdate") < lit(D(1995, 1, 1)))
        & (col("l_discount") >= 0.05) & (col("l_discount") <= 0.07) & (col("l_quantity") < 24.0))
    li = li.with_column("rev", col("l_extendedprice") * col("l_discount"))
    return _scalar_table(revenue=li.sum("rev"))


def q07(t: Tables):
    nations = t.scan("nation", "n_nationkey", "n_name").filter(
        expr=col("n_name").is_in(["FRANCE", "GERMANY"])).materialize()
    s = t.join(t.scan("supplier", "s_suppkey", "s_nationkey"),
               nations.rename_columns({"n_name": "supp_nation"}), "s_nationkey", "n_nationkey")
    c = t.join(t.scan("customer", "c_custkey", "c_nationkey"),
               nations.rename_columns({"n_name": "cust_nation"}), "c_nationkey", "n_nationkey")
    li = t.scan("lineitem", "l_orderkey", "l_suppkey", "l_shipdate", "l_extendedprice",
                "l_discount").filter(
        expr=(col("l_shipdate") >= lit(D(1995, 1, 1))) & (col("l_shipdate") <= lit(D(1996, 12, 31))))
    j = t.join(li, s.select_columns(["s_suppkey", "supp_nation"]), "l_suppkey", "s_suppkey")
    o = t.join(t.scan("orders", "o_orderkey", "o_custkey"),
               c.select_columns(["c_custkey", "cust_nation"]), "o_custkey", "c_custkey")
    j = t.join(j, o, "l_orderkey", "o_orderkey")
    j = j.filter(expr=col("supp_nation") != col("cust_nation"))  # FRANCE<->GERMANY either way
    j = j.with_columns({"l_year": col("l_shipdate").dt.year(),
                        "volume": col("l_extendedprice") * (1.0 - col("l_discount"))})
    g = j.groupby(["supp_nation", "cust_nation", "l_year"]).aggregate(
        Sum("volume", alias_name="revenue"))
    return finish(collect(g), ["supp_nation", "cust_nation", "l_year", "revenue"],
                  [("supp_nation", False), ("cust_nation", False), ("l_year", False)])


def q08(t: Tables):
    region = t.scan("region", "r_regionkey", "r_name").filter(expr=col("r_name") == "AMERICA")
    n1 = t.join(t.scan("nation", "n_nationkey", "n_regionkey"), region,
                "n_regionkey", "r_regionkey", "left_semi")
    c = t.join(t.scan("customer", "c_custkey", "c_nationkey"), n1, "c_nationkey", "n_nationkey",
               "left_semi")
    o = t.scan("orders", "o_orderkey", "o_custkey", "o_orderdate").filter(
        expr=(col("o_orderdate") >= lit(D(1995, 1, 1))) & (col("o_orderdate") <= lit(D(1996, 12, 31))))
    o = t.join(o, c, "o_custkey", "c_custkey", "left_semi")
    p = t.scan("part", "p_partkey", "p_type").filter(expr=col("p_type") == "ECONOMY ANODIZED STEEL")
    s = t.join(t.scan("supplier", "s_suppkey", "s_nationkey"),
               t.scan("nation", "n_nationkey", "n_name"), "s_nationkey", "n_nationkey")
    li = t.scan("lineitem", "l_orderkey", "l_partkey", "l_suppkey", "l_extendedprice", "l_discount")
    j = t.join(li, p.select_columns(["p_partkey"]), "l_partkey", "p_partkey", "left_semi")
    j = t.join(j, o.select_columns(["o_orderkey", "o_orderdate"]), "l_orderkey", "o_orderkey")
    j = t.join(j, s.select_columns(["s_suppkey", "n_name"]), "l_suppkey", "s_suppkey")
    j = _derive(j.with_column("o_year", col("o_orderdate").dt.year()),
                volume=_revenue,
                brazil=lambda b: pc.if_else(pc.equal(b["n_name"], "BRAZIL"), _revenue(b), 0.0))
    g = collect(j.groupby("o_year").aggregate(Sum("brazil", alias_name="brazil"),
                                              Sum("volume", alias_name="volume")))
    g = g.append_column("mkt_share", pc.divide(g["brazil"], g["volume"]))
    return finish(g, ["o_year", "mkt_share"], [("o_year", False)])


def q09(t: Tables):
    p = t.scan("part", "p_partkey", "p_name").filter(expr=col("p_name").str.contains("green"))
    li = t.scan("lineitem", "l_orderkey", "l_partkey", "l_suppkey", "l_quantity",
                "l_extendedprice", "l_discount")
    j = t.join(li, p.select_columns(["p_partkey"]), "l_partkey", "p_partkey", "left_semi")
    j = t.join(j, t.scan("partsupp", "ps_partkey", "ps_suppkey", "ps_supplycost"),
               ["l_partkey", "l_suppkey"], ["ps_partkey", "ps_suppkey"])
    s = t.join(t.scan("supplier", "s_suppkey", "s_nationkey"),
               t.scan("nation", "n_nationkey", "n_name"), "s_nationkey", "n_nationkey")
    j = t.join(j, s.select_columns(["s_suppkey", "n_name"]), "l_suppkey", "s_suppkey")
    j = t.join(j, t.scan("orders", "o_orderkey", "o_orderdate"), "l_orderkey", "o_orderkey")
    j = j.with_columns({
        "o_year": col("o_orderdate").dt.year(),
        "amount": col("l_extendedprice") * (1.0 - col("l_discount"))
        - col("ps_supplycost") * col("l_quantity"),
    })
    g = j.groupby(["n_name", "o_year"]).aggregate(Sum("amount", alias_name="sum_profit"))
    return finish(collect(g), [("nation", "n_name"), "o_year", "sum_profit"],
                  [("n_name", False), ("o_year", True)])


def q10(t: Tables):
    o = t.scan("orders", "o_orderkey", "o_custkey", "o_orderdate").filter(
        expr=(col("o_orderdate") >= lit(D(1993, 10, 1))) & (col("o_orderdate") < lit(D(1994, 1, 1))))
    li = t.scan("lineitem", "l_orderkey", "l_returnflag", "l_extendedprice", "l_discount").filter(
        expr=col("l_returnflag") == "R")
    j = t.join(li, o.select_columns(["o_orderkey", "o_custkey"]), "l_orderkey", "o_orderkey")
    j = j.with_column("revenue", col("l_extendedprice") * (1.0 - col("l_discount")))
    # the customer columns of the GROUP BY depend on c_custkey: group by it, join after
    g = j.groupby("o_custkey").aggregate(Sum("revenue", alias_name="revenue"))
    c = t.join(t.scan("customer", "c_custkey", "c_name", "c_address", "c_nationkey", "c_phone",
                      "c_acctbal", "c_comment"),
               t.scan("nation", "n_nationkey", "n_name"), "c_nationkey", "n_nationkey")
    j = t.join(g, c, "o_custkey", "c_custkey")
    return finish(collect(j), [("c_custkey", "o_custkey"), "c_name", "revenue", "c_acctbal",
                               "n_name", "c_address", "c_phone", "c_comment"],
                  [("revenue", True)], 20)


def q11(t: Tables):
    n = t.scan("nation", "n_nationkey", "n_name").filter(expr=col("n_name") == "GERMANY")
    s = t.join(t.scan("supplier", "s_suppkey", "s_nationkey"), n, "s_nationkey", "n_nationkey",
               "left_semi")
    ps = t.join(t.scan("partsupp", "ps_partkey", "ps_suppkey", "ps_availqty", "ps_supplycost"),
                s, "ps_suppkey", "s_suppkey", "left_semi")
    ps = ps.with_column("value", col("ps_supplycost") * col("ps_availqty")).materialize()
    threshold = (ps.sum("value") or 0.0) * 0.0001
    g = ps.groupby("ps_partkey").aggregate(Sum("value", alias_name="value"))
    g = g.filter(expr=col("value") > threshold)
    return finish(collect(g), ["ps_partkey", "value"], [("value", True)])


def q12(t: Tables):
    li = t.scan("lineitem", "l_orderkey", "l_shipmode", "l_commitdate", "l_receiptdate",
                "l_shipdate").filter(
        expr=col("l_shipmode").is_in(["MAIL", "SHIP"])
        & (col("l_commitdate") < col("l_receiptdate")) & (col("l_shipdate") < col("l_commitdate"))
        & (col("l_receiptdate") >= lit(D(1994, 1, 1))) & (col("l_receiptdate") < lit(D(1995, 1, 1))))
    j = t.join(li.select_columns(["l_orderkey", "l_shipmode"]),
               t.scan("orders", "o_orderkey", "o_orderpriority"), "l_orderkey", "o_orderkey")

    def high(b):
        return pc.is_in(b["o_orderpriority"], pa.array(["1-URGENT", "2-HIGH"]))
    j = _derive(j, high=lambda b: pc.cast(high(b), pa.int64()),
                low=lambda b: pc.cast(pc.invert(high(b)), pa.int64()))
    g = j.groupby("l_shipmode").aggregate(Sum("high", alias_name="high_line_count"),
                                          Sum("low", alias_name="low_line_count"))
    return finish(collect(g), ["l_shipmode", "high_line_count", "low_line_count"],
                  [("l_shipmode", False)])


def q13(t: Tables):
    o = t.scan("orders", "o_orderkey", "o_custkey", "o_comment").filter(
        expr=~col("o_comment").str.match_regex("special.*requests"))
    j = t.join(t.scan("customer", "c_custkey"), o.select_columns(["o_orderkey", "o_custkey"]),
               "c_custkey", "o_custkey", "left_outer")
    counts = j.groupby("c_custkey").aggregate(
        Count("o_orderkey", ignore_nulls=True, alias_name="c_count"))
    g = counts.groupby("c_count").aggregate(Count(alias_name="custdist"))
    return finish(collect(g), ["c_count", "custdist"], [("custdist", True), ("c_count", True)])


def q14(t: Tables):
    li = t.scan("lineitem", "l_partkey", "l_shipdate", "l_extendedprice", "l_discount").filter(
        expr=(col("l_shipdate") >= lit(D(1995, 9, 1))) & (col("l_shipdate") < lit(D(1995, 10, 1))))
    j = t.join(li, t.scan("part", "p_partkey", "p_type"), "l_partkey", "p_partkey")
    j = _derive(j, rev=_revenue,
                promo=lambda b: pc.if_else(pc.starts_with(b["p_type"], "PROMO"), _revenue(b), 0.0))
    sums = j.aggregate(Sum("promo", alias_name="promo"), Sum("rev", alias_name="rev"))
    return _scalar_table(promo_revenue=100.0 * sums["promo"] / sums["rev"])


def q15(t: Tables):
    li = t.scan("lineitem", "l_suppkey", "l_shipdate", "l_extendedprice", "l_discount").filter(
        expr=(col("l_shipdate") >= lit(D(1996, 1, 1))) & (col("l_shipdate") < lit(D(1996, 4, 1))))
    li = li.with_column("rev", col("l_extendedprice") * (1.0 - col("l_discount")))
    # materialized: the max and the rows compared with it must be the very same sums
    rev = li.groupby("l_suppkey").aggregate(Sum("rev", alias_name="total_revenue")).materialize()
    top = rev.filter(expr=col("total_revenue") == rev.max("total_revenue"))
    j = t.join(t.scan("supplier", "s_suppkey", "s_name", "s_address", "s_phone"), top,
               "s_suppkey", "l_suppkey")
    return finish(collect(j), ["s_suppkey", "s_name", "s_address", "s_phone", "total_revenue"],
                  [("s_suppkey", False)])


def q16(t: Tables):
    p = t.scan("part", "p_partkey", "p_brand", "p_type", "p_size").filter(
        expr=(col("p_brand") != "Brand#45") & ~col("p_type").str.starts_with("MEDIUM POLISHED")
        & col("p_size").is_in([49, 14, 23, 45, 19, 3, 36, 9]))
    bad = t.scan("supplier", "s_suppkey", "s_comment").filter(
        expr=col("s_comment").str.match_regex("Customer.*Complaints"))
    ps = t.join(t.scan("partsupp", "ps_partkey", "ps_suppkey"), bad.select_columns(["s_suppkey"]),
                "ps_suppkey", "s_suppkey", "left_anti")   # NOT IN: s_suppkey is never null
    j = t.join(ps, p, "ps_partkey", "p_partkey")
    g = j.groupby(["p_brand", "p_type", "p_size"]).aggregate(
        CountDistinct("ps_suppkey", alias_name="supplier_cnt"))
    return finish(collect(g), ["p_brand", "p_type", "p_size", "supplier_cnt"],
                  [("supplier_cnt", True), ("p_brand", False), ("p_type", False),
                   ("p_size", False)])


def q17(t: Tables):
    p = t.scan("part", "p_partkey", "p_brand", "p_container").filter(
        expr=(col("p_brand") == "Brand#23") & (col("p_container") == "MED BOX"))
    li = t.join(t.scan("lineitem", "l_partkey", "l_quantity", "l_extendedprice"),
                p.select_columns(["p_partkey"]), "l_partkey", "p_partkey", "left_semi").materialize()
    avg = li.groupby("l_partkey").aggregate(Mean("l_quantity", alias_name="avg_qty"))
    j = t.join(li, avg, "l_partkey").filter(expr=col("l_quantity") < 0.2 * col("avg_qty"))
    total = j.sum("l_extendedprice")
    return _scalar_table(avg_yearly=None if total is None else total / 7.0)


def q18(t: Tables):
    qty = t.scan("lineitem", "l_orderkey", "l_quantity").groupby("l_orderkey").aggregate(
        Sum("l_quantity", alias_name="sum_qty"))
    big = qty.filter(expr=col("sum_qty") > 300.0)
    j = t.join(t.scan("orders", "o_orderkey", "o_custkey", "o_orderdate", "o_totalprice"), big,
               "o_orderkey", "l_orderkey")
    j = t.join(j, t.scan("customer", "c_custkey", "c_name"), "o_custkey", "c_custkey")
    return finish(collect(j), ["c_name", ("c_custkey", "o_custkey"), "o_orderkey", "o_orderdate",
                               "o_totalprice", "sum_qty"],
                  [("o_totalprice", True), ("o_orderdate", False)], 100)


def q19(t: Tables):
    li = t.scan("lineitem", "l_partkey", "l_quantity", "l_extendedprice", "l_discount",
                "l_shipmode", "l_shipinstruct").filter(
        expr=col("l_shipmode").is_in(["AIR", "AIR REG"])
        & (col("l_shipinstruct") == "DELIVER IN PERSON"))
    j = t.join(li, t.scan("part", "p_partkey", "p_brand", "p_container", "p_size"),
               "l_partkey", "p_partkey")
    q, size = col("l_quantity"), col("p_size")
    j = j.filter(expr=(
        ((col("p_brand") == "Brand#12")
         & col("p_container").is_in(["SM CASE", "SM BOX", "SM PACK", "SM PKG"])
         & (q >= 1.0) & (q <= 11.0) & (size >= 1) & (size <= 5))
        | ((col("p_brand") == "Brand#23")
           & col("p_container").is_in(["MED BAG", "MED BOX", "MED PKG", "MED PACK"])
           & (q >= 10.0) & (q <= 20.0) & (size >= 1) & (size <= 10))
        | ((col("p_brand") == "Brand#34")
           & col("p_container").is_in(["LG CASE", "LG BOX", "LG PACK", "LG PKG"])
           & (q >= 20.0) & (q <= 30.0) & (size >= 1) & (size <= 15))))
    j = j.with_column("rev", col("l_extendedprice") * (1.0 - col("l_discount")))
    return _scalar_table(revenue=j.sum("rev"))


def q20(t: Tables):
    p = t.scan("part", "p_partkey", "p_name").filter(expr=col("p_name").str.starts_with("forest"))
    li = t.scan("lineitem", "l_partkey", "l_suppkey", "l_quantity", "l_shipdate").filter(
        expr=(col("l_shipdate") >= lit(D(1994, 1, 1))) & (col("l_shipdate") < lit(D(1995, 1, 1))))
    shipped = li.groupby(["l_partkey", "l_suppkey"]).aggregate(
        Sum("l_quantity", alias_name="sum_qty"))
    ps = t.join(t.scan("partsupp", "ps_partkey", "ps_suppkey", "ps_availqty"),
                p.select_columns(["p_partkey"]), "ps_partkey", "p_partkey", "left_semi")
    # inner: a (part, supplier) with no shipments makes the SQL comparison NULL, i.e. false
    ps = t.join(ps, shipped, ["ps_partkey", "ps_suppkey"], ["l_partkey", "l_suppkey"])
    ps = ps.filter(expr=col("ps_availqty") > 0.5 * col("sum_qty"))
    n = t.scan("nation", "n_nationkey", "n_name").filter(expr=col("n_name") == "CANADA")
    s = t.join(t.scan("supplier", "s_suppkey", "s_name", "s_address", "s_nationkey"), n,
               "s_nationkey", "n_nationkey", "left_semi")
    s = t.join(s, ps.select_columns(["ps_suppkey"]), "s_suppkey", "ps_suppkey", "left_semi")
    return finish(collect(s), ["s_name", "s_address"], [("s_name", False)])


def q21(t: Tables):
    li = t.scan("lineitem", "l_orderkey", "l_suppkey", "l_receiptdate", "l_commitdate")
    late = li.filter(expr=col("l_receiptdate") > col("l_commitdate")).select_columns(
        ["l_orderkey", "l_suppkey"]).materialize()
    multi = li.groupby("l_orderkey").aggregate(CountDistinct("l_suppkey", alias_name="n")) \
        .filter(expr=col("n") > 1)
    one_late = late.groupby("l_orderkey").aggregate(CountDistinct("l_suppkey", alias_name="n")) \
        .filter(expr=col("n") == 1)
    n = t.scan("nation", "n_nationkey", "n_name").filter(expr=col("n_name") == "SAUDI ARABIA")
    s = t.join(t.scan("supplier", "s_suppkey", "s_name", "s_nationkey"), n,
               "s_nationkey", "n_nationkey", "left_semi")
    o = t.scan("orders", "o_orderkey", "o_orderstatus").filter(expr=col("o_orderstatus") == "F")
    j = t.join(late, s.select_columns(["s_suppkey", "s_name"]), "l_suppkey", "s_suppkey")
    j = t.join(j, o.select_columns(["o_orderkey"]), "l_orderkey", "o_orderkey", "left_semi")
    j = t.join(j, multi.select_columns(["l_orderkey"]), "l_orderkey", how="left_semi")
    j = t.join(j, one_late.select_columns(["l_orderkey"]), "l_orderkey", how="left_semi")
    g = j.groupby("s_name").aggregate(Count(alias_name="numwait"))
    return finish(collect(g), ["s_name", "numwait"], [("numwait", True), ("s_name", False)], 100)


def q22(t: Tables):
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    c = t.scan("customer", "c_custkey", "c_phone", "c_acctbal")
    c = c.with_column("cntrycode", col("c_phone").str.slice(0, 2)).filter(
        expr=col("cntrycode").is_in(codes)).materialize()
    avg = c.filter(expr=col("c_acctbal") > 0.0).mean("c_acctbal")
    c = c.filter(expr=col("c_acctbal") > avg)
    c = t.join(c, t.scan("orders", "o_custkey"), "c_custkey", "o_custkey", "left_anti")
    g = c.groupby("cntrycode").aggregate(Count(alias_name="numcust"),
                                         Sum("c_acctbal", alias_name="totacctbal"))
    return finish(collect(g), ["cntrycode", "numcust", "totacctbal"], [("cntrycode", False)])


QUERIES = {f"q{i:02d}": globals()[f"q{i:02d}"] for i in range(1, 23)}
