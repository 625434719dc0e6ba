"""The 22 TPC-H queries in the Polars lazy API, for the ``tpch`` benchmark suite.

Each ``qNN(t)`` takes a mapping of table name -> ``pl.LazyFrame`` (``load_tables``:
``pl.scan_parquet`` over ``bench/data/sf{N}/<table>/*.parquet``) and returns a
LazyFrame whose columns, in order, are those of the official query text in
``sql/qNN.sql``, with the spec's validation parameters, ORDER BY and LIMIT.

Subqueries are rewritten the way ``queries.py`` rewrites them for sluice (see its
docstring): EXISTS / IN -> semi join, NOT EXISTS / NOT IN -> anti join (Q16's NOT IN is
an anti join because s_suppkey is never null), correlated scalar aggregates -> group_by
on the correlation keys joined back (Q2, Q17, Q20), uncorrelated scalar subqueries ->
a one-row frame cross joined (Q11, Q22) or a whole-frame window (Q15's max).  Q13's
LIKE in the outer join's ON clause filters orders before the left join; Q21's EXISTS /
NOT EXISTS become distinct-supplier counts per order.

Types: tpchgen-cli writes money and quantities as decimal(15, 2), so sums are exact
decimals as in DuckDB; constants compared with decimal columns are ``Decimal``
literals, never binary floats (0.06 - 0.01 as a float is not 0.05).  Where the SQL
divides or multiplies by a non-decimal (avg, 0.2 * avg, sum / 7.0, the market-share
quotients) the operands are Float64, as DuckDB's results are DOUBLE there.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl

TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
F64 = pl.Float64


def load_tables(data_dir) -> dict:
    root = Path(data_dir)
    return {t: pl.scan_parquet(str(root / t / "*.parquet")) for t in TABLES}


def c(name: str) -> pl.Expr:
    return pl.col(name)


def dec(value: str) -> pl.Expr:
    """An exact decimal constant (scale taken from the text)."""
    scale = len(value.split(".")[1]) if "." in value else 0
    return pl.lit(Decimal(value), dtype=pl.Decimal(15, scale))


def revenue() -> pl.Expr:
    return c("l_extendedprice") * (1 - c("l_discount"))


def in_range(column: str, start: date, end: date) -> pl.Expr:
    return (c(column) >= start) & (c(column) < end)


def nations_in_region(t, region: str) -> pl.LazyFrame:
    regions = t["region"].filter(c("r_name") == region)
    return (t["nation"].join(regions, left_on="n_regionkey", right_on="r_regionkey", how="semi")
            .select("n_nationkey", "n_name"))


def nation_named(t, name: str) -> pl.LazyFrame:
    return t["nation"].filter(c("n_name") == name).select("n_nationkey")


def q01(t):
    return (
        t["lineitem"]
        .filter(c("l_shipdate") <= date(1998, 9, 2))   # 1998-12-01 - 90 days
        .group_by("l_returnflag", "l_linestatus")
        .agg(sum_qty=c("l_quantity").sum(),
             sum_base_price=c("l_extendedprice").sum(),
             sum_disc_price=revenue().sum(),
             sum_charge=(revenue() * (1 + c("l_tax"))).sum(),
             avg_qty=c("l_quantity").cast(F64).mean(),
             avg_price=c("l_extendedprice").cast(F64).mean(),
             avg_disc=c("l_discount").cast(F64).mean(),
             count_order=pl.len())
        .sort("l_returnflag", "l_linestatus")
    )


def q02(t):
    europe = t["supplier"].join(nations_in_region(t, "EUROPE"), left_on="s_nationkey",
                                right_on="n_nationkey")
    offers = t["partsupp"].join(europe, left_on="ps_suppkey", right_on="s_suppkey")
    cheapest = offers.group_by("ps_partkey").agg(min_cost=c("ps_supplycost").min())
    parts = t["part"].filter((c("p_size") == 15) & c("p_type").str.ends_with("BRASS"))
    return (
        parts.join(offers, left_on="p_partkey", right_on="ps_partkey")
        .join(cheapest, left_on=["p_partkey", "ps_supplycost"], right_on=["ps_partkey", "min_cost"])
        .select("s_acctbal", "s_name", "n_name", "p_partkey", "p_mfgr", "s_address", "s_phone",
                "s_comment")
        .sort(["s_acctbal", "n_name", "s_name", "p_partkey"],
              descending=[True, False, False, False])
        .head(100)
    )


def q03(t):
    customers = t["customer"].filter(c("c_mktsegment") == "BUILDING")
    orders = (t["orders"].filter(c("o_orderdate") < date(1995, 3, 15))
              .join(customers, left_on="o_custkey", right_on="c_custkey", how="semi"))
    return (
        t["lineitem"].filter(c("l_shipdate") > date(1995, 3, 15))
        .join(orders, left_on="l_orderkey", right_on="o_orderkey")
        .group_by("l_orderkey", "o_orderdate", "o_shippriority")
        .agg(revenue=revenue().sum())
        .select("l_orderkey", "revenue", "o_orderdate", "o_shippriority")
        .sort(["revenue", "o_orderdate"], descending=[True, False])
        .head(10)
    )


def q04(t):
    late = t["lineitem"].filter(c("l_commitdate") < c("l_receiptdate"))
    return (
        t["orders"].filter(in_range("o_orderdate", date(1993, 7, 1), date(1993, 10, 1)))
        .join(late, left_on="o_orderkey", right_on="l_orderkey", how="semi")
        .group_by("o_orderpriority")
        .agg(order_count=pl.len())
        .sort("o_orderpriority")
    )


def q05(t):
    suppliers = t["supplier"].join(nations_in_region(t, "ASIA"), left_on="s_nationkey",
                                   right_on="n_nationkey")
    orders = (t["orders"].filter(in_range("o_orderdate", date(1994, 1, 1), date(1995, 1, 1)))
              .join(t["customer"], left_on="o_custkey", right_on="c_custkey"))
    return (
        t["lineitem"]
        .join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(orders, left_on=["l_orderkey", "s_nationkey"], right_on=["o_orderkey", "c_nationkey"])
        .group_by("n_name")
        .agg(revenue=revenue().sum())
        .sort("revenue", descending=True)
    )


def q06(t):
    return (
        t["lineitem"]
        .filter(in_range("l_shipdate", date(1994, 1, 1), date(1995, 1, 1))
                & (c("l_discount") >= dec("0.05")) & (c("l_discount") <= dec("0.07"))
                & (c("l_quantity") < 24))
        .select(revenue=(c("l_extendedprice") * c("l_discount")).sum())
    )


def q07(t):
    pair = ["FRANCE", "GERMANY"]
    nations = t["nation"].filter(c("n_name").is_in(pair))
    suppliers = t["supplier"].join(
        nations.select(sn_key=c("n_nationkey"), supp_nation=c("n_name")),
        left_on="s_nationkey", right_on="sn_key")
    customers = t["customer"].join(
        nations.select(cn_key=c("n_nationkey"), cust_nation=c("n_name")),
        left_on="c_nationkey", right_on="cn_key")
    orders = t["orders"].join(customers, left_on="o_custkey", right_on="c_custkey")
    return (
        t["lineitem"]
        .filter(c("l_shipdate").is_between(date(1995, 1, 1), date(1996, 12, 31)))
        .join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(orders, left_on="l_orderkey", right_on="o_orderkey")
        .filter(((c("supp_nation") == "FRANCE") & (c("cust_nation") == "GERMANY"))
                | ((c("supp_nation") == "GERMANY") & (c("cust_nation") == "FRANCE")))
        .with_columns(l_year=c("l_shipdate").dt.year(), volume=revenue())
        .group_by("supp_nation", "cust_nation", "l_year")
        .agg(revenue=c("volume").sum())
        .sort("supp_nation", "cust_nation", "l_year")
    )


def q08(t):
    customers = t["customer"].join(nations_in_region(t, "AMERICA"), left_on="c_nationkey",
                                   right_on="n_nationkey", how="semi")
    orders = (t["orders"].filter(c("o_orderdate").is_between(date(1995, 1, 1), date(1996, 12, 31)))
              .join(customers, left_on="o_custkey", right_on="c_custkey", how="semi"))
    parts = t["part"].filter(c("p_type") == "ECONOMY ANODIZED STEEL")
    suppliers = t["supplier"].join(t["nation"].select("n_nationkey", nation=c("n_name")),
                                   left_on="s_nationkey", right_on="n_nationkey")
    return (
        t["lineitem"]
        .join(parts, left_on="l_partkey", right_on="p_partkey", how="semi")
        .join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(orders, left_on="l_orderkey", right_on="o_orderkey")
        .with_columns(o_year=c("o_orderdate").dt.year(), volume=revenue())
        .group_by("o_year")
        .agg(brazil=pl.when(c("nation") == "BRAZIL").then(c("volume")).otherwise(0).sum(),
             total=c("volume").sum())
        .select("o_year", mkt_share=c("brazil").cast(F64) / c("total").cast(F64))
        .sort("o_year")
    )


def q09(t):
    green = t["part"].filter(c("p_name").str.contains("green", literal=True))
    return (
        t["lineitem"]
        .join(green, left_on="l_partkey", right_on="p_partkey", how="semi")
        .join(t["partsupp"], left_on=["l_suppkey", "l_partkey"], right_on=["ps_suppkey", "ps_partkey"])
        .join(t["supplier"], left_on="l_suppkey", right_on="s_suppkey")
        .join(t["nation"].select("n_nationkey", nation=c("n_name")),
              left_on="s_nationkey", right_on="n_nationkey")
        .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
        .with_columns(o_year=c("o_orderdate").dt.year(),
                      amount=revenue() - c("ps_supplycost") * c("l_quantity"))
        .group_by("nation", "o_year")
        .agg(sum_profit=c("amount").sum())
        .sort(["nation", "o_year"], descending=[False, True])
    )


def q10(t):
    returned = (t["lineitem"].filter(c("l_returnflag") == "R")
                .join(t["orders"].filter(in_range("o_orderdate", date(1993, 10, 1), date(1994, 1, 1))),
                      left_on="l_orderkey", right_on="o_orderkey"))
    return (
        t["customer"]
        .join(returned, left_on="c_custkey", right_on="o_custkey")
        .join(t["nation"], left_on="c_nationkey", right_on="n_nationkey")
        .group_by("c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address", "c_comment")
        .agg(revenue=revenue().sum())
        .select("c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone",
                "c_comment")
        .sort("revenue", descending=True)
        .head(20)
    )


def q11(t):
    german = t["supplier"].join(nation_named(t, "GERMANY"), left_on="s_nationkey",
                                right_on="n_nationkey", how="semi")
    stock = (t["partsupp"].join(german, left_on="ps_suppkey", right_on="s_suppkey", how="semi")
             .with_columns(value=c("ps_supplycost") * c("ps_availqty")))
    threshold = stock.select(threshold=c("value").sum() * dec("0.0001"))
    return (
        stock.group_by("ps_partkey").agg(value=c("value").sum())
        .join(threshold, how="cross")
        .filter(c("value") > c("threshold"))
        .select("ps_partkey", "value")
        .sort("value", descending=True)
    )


def q12(t):
    urgent = c("o_orderpriority").is_in(["1-URGENT", "2-HIGH"])
    return (
        t["lineitem"]
        .filter(c("l_shipmode").is_in(["MAIL", "SHIP"])
                & (c("l_commitdate") < c("l_receiptdate"))
                & (c("l_shipdate") < c("l_commitdate"))
                & in_range("l_receiptdate", date(1994, 1, 1), date(1995, 1, 1)))
        .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
        .group_by("l_shipmode")
        .agg(high_line_count=pl.when(urgent).then(1).otherwise(0).sum(),
             low_line_count=pl.when(urgent).then(0).otherwise(1).sum())
        .sort("l_shipmode")
    )


def q13(t):
    orders = t["orders"].filter(~c("o_comment").str.contains("special.*requests"))
    return (
        t["customer"].select("c_custkey")
        .join(orders, left_on="c_custkey", right_on="o_custkey", how="left")
        .group_by("c_custkey")
        .agg(c_count=c("o_orderkey").count())     # non-null: unmatched customers count 0
        .group_by("c_count")
        .agg(custdist=pl.len())
        .sort(["custdist", "c_count"], descending=[True, True])
    )


def q14(t):
    return (
        t["lineitem"]
        .filter(in_range("l_shipdate", date(1995, 9, 1), date(1995, 10, 1)))
        .join(t["part"], left_on="l_partkey", right_on="p_partkey")
        .with_columns(volume=revenue())
        .select(promo=pl.when(c("p_type").str.starts_with("PROMO")).then(c("volume"))
                .otherwise(0).sum(),
                total=c("volume").sum())
        .select(promo_revenue=100.0 * c("promo").cast(F64) / c("total").cast(F64))
    )


def q15(t):
    revenue0 = (t["lineitem"].filter(in_range("l_shipdate", date(1996, 1, 1), date(1996, 4, 1)))
                .group_by("l_suppkey")
                .agg(total_revenue=revenue().sum()))
    best = revenue0.filter(c("total_revenue") == c("total_revenue").max())
    return (
        t["supplier"]
        .join(best, left_on="s_suppkey", right_on="l_suppkey")
        .select("s_suppkey", "s_name", "s_address", "s_phone", "total_revenue")
        .sort("s_suppkey")
    )


def q16(t):
    complaints = t["supplier"].filter(c("s_comment").str.contains("Customer.*Complaints"))
    parts = t["part"].filter((c("p_brand") != "Brand#45")
                             & ~c("p_type").str.starts_with("MEDIUM POLISHED")
                             & c("p_size").is_in([49, 14, 23, 45, 19, 3, 36, 9]))
    return (
        t["partsupp"]
        .join(complaints, left_on="ps_suppkey", right_on="s_suppkey", how="anti")
        .join(parts, left_on="ps_partkey", right_on="p_partkey")
        .group_by("p_brand", "p_type", "p_size")
        .agg(supplier_cnt=c("ps_suppkey").n_unique())
        .sort(["supplier_cnt", "p_brand", "p_type", "p_size"],
              descending=[True, False, False, False])
    )


def q17(t):
    parts = t["part"].filter((c("p_brand") == "Brand#23") & (c("p_container") == "MED BOX"))
    lines = t["lineitem"].join(parts, left_on="l_partkey", right_on="p_partkey", how="semi")
    mean_qty = lines.group_by("l_partkey").agg(avg_qty=c("l_quantity").cast(F64).mean())
    return (
        lines.join(mean_qty, on="l_partkey")
        .filter(c("l_quantity").cast(F64) < 0.2 * c("avg_qty"))
        .select(avg_yearly=c("l_extendedprice").sum().cast(F64) / 7.0)
    )


def q18(t):
    big_orders = (t["lineitem"].group_by("l_orderkey")
                  .agg(sum_qty=c("l_quantity").sum())
                  .filter(c("sum_qty") > 300))
    return (
        t["customer"]
        .join(t["orders"], left_on="c_custkey", right_on="o_custkey")
        .join(big_orders, left_on="o_orderkey", right_on="l_orderkey")
        .select("c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice", "sum_qty")
        .sort(["o_totalprice", "o_orderdate"], descending=[True, False])
        .head(100)
    )


def q19(t):
    def branch(brand, containers, quantity, max_size):
        return ((c("p_brand") == brand)
                & c("p_container").is_in(containers)
                & (c("l_quantity") >= quantity) & (c("l_quantity") <= quantity + 10)
                & c("p_size").is_between(1, max_size))

    return (
        t["lineitem"]
        .filter(c("l_shipmode").is_in(["AIR", "AIR REG"])
                & (c("l_shipinstruct") == "DELIVER IN PERSON"))
        .join(t["part"], left_on="l_partkey", right_on="p_partkey")
        .filter(branch("Brand#12", ["SM CASE", "SM BOX", "SM PACK", "SM PKG"], 1, 5)
                | branch("Brand#23", ["MED BAG", "MED BOX", "MED PKG", "MED PACK"], 10, 10)
                | branch("Brand#34", ["LG CASE", "LG BOX", "LG PACK", "LG PKG"], 20, 15))
        .select(revenue=revenue().sum())
    )


def q20(t):
    forest = t["part"].filter(c("p_name").str.starts_with("forest"))
    shipped = (t["lineitem"].filter(in_range("l_shipdate", date(1994, 1, 1), date(1995, 1, 1)))
               .group_by("l_partkey", "l_suppkey")
               .agg(qty=c("l_quantity").sum()))
    excess = (t["partsupp"]
              .join(forest, left_on="ps_partkey", right_on="p_partkey", how="semi")
              .join(shipped, left_on=["ps_partkey", "ps_suppkey"], right_on=["l_partkey", "l_suppkey"])
              .filter(c("ps_availqty") > dec("0.5") * c("qty")))
    return (
        t["supplier"]
        .join(excess, left_on="s_suppkey", right_on="ps_suppkey", how="semi")
        .join(nation_named(t, "CANADA"), left_on="s_nationkey", right_on="n_nationkey", how="semi")
        .select("s_name", "s_address")
        .sort("s_name")
    )


def q21(t):
    lines = t["lineitem"].select("l_orderkey", "l_suppkey", "l_receiptdate", "l_commitdate")
    late = lines.filter(c("l_receiptdate") > c("l_commitdate"))
    shared = (lines.group_by("l_orderkey").agg(n=c("l_suppkey").n_unique())
              .filter(c("n") > 1))          # EXISTS another supplier on the order
    late_others = (late.group_by("l_orderkey").agg(n=c("l_suppkey").n_unique())
                   .filter(c("n") > 1))     # another supplier was late too
    suppliers = (t["supplier"].join(nation_named(t, "SAUDI ARABIA"), left_on="s_nationkey",
                                    right_on="n_nationkey", how="semi")
                 .select("s_suppkey", "s_name"))
    failed = t["orders"].filter(c("o_orderstatus") == "F")
    return (
        late.join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(failed, left_on="l_orderkey", right_on="o_orderkey", how="semi")
        .join(shared, on="l_orderkey", how="semi")
        .join(late_others, on="l_orderkey", how="anti")
        .group_by("s_name")
        .agg(numwait=pl.len())
        .sort(["numwait", "s_name"], descending=[True, False])
        .head(100)
    )


def q22(t):
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    customers = (t["customer"].with_columns(cntrycode=c("c_phone").str.slice(0, 2))
                 .filter(c("cntrycode").is_in(codes)))
    average = (customers.filter(c("c_acctbal") > 0)
               .select(avg_acctbal=c("c_acctbal").cast(F64).mean()))
    return (
        customers.join(average, how="cross")
        .filter(c("c_acctbal").cast(F64) > c("avg_acctbal"))
        .join(t["orders"], left_on="c_custkey", right_on="o_custkey", how="anti")
        .group_by("cntrycode")
        .agg(numcust=pl.len(), totacctbal=c("c_acctbal").sum())
        .sort("cntrycode")
    )


QUERIES = {f"q{i:02d}": globals()[f"q{i:02d}"] for i in range(1, 23)}
