"""The 22 TPC-H queries written with the sluice Dataset API.

Each `qNN(tables)` takes a mapping of table name -> Dataset (see `load_tables`) and returns a
lazy Dataset whose columns, in name and order, are those of the official query text in
`sql/qNN.sql`. Substitution parameters are the spec's validation values (Q1 DELTA=90, Q3
BUILDING / 1995-03-15, Q11 GERMANY / FRACTION=0.0001, ...), and every ORDER BY and LIMIT of
the spec is kept.

sluice has no SQL and no subqueries, so every subquery is rewritten by hand:

- Comma joins become equi-joins, written from the side whose key name the query needs
  later (inner/left joins keep the left key name). Joins to a dimension whose columns are
  not needed afterwards (e.g. a region or nation filter) are semi joins.
- EXISTS / IN (subquery) -> semi join (Q4, Q18, Q20, Q21); NOT EXISTS / NOT IN -> anti join
  (Q16, Q21, Q22). NOT IN equals an anti join in Q16 because s_suppkey is never null.
- A correlated scalar aggregate becomes a group_by on the correlation keys joined back on
  them: Q2 (min supply cost per part), Q17 (mean quantity per part), Q20 (quantity shipped
  per part and supplier; an inner join is right because a missing group makes the SQL
  comparison NULL, i.e. false).
- An uncorrelated scalar subquery becomes a one-row global agg() that is cross joined (Q11
  threshold, Q22 average balance) or joined on equality (Q15 max revenue).
- Q13's outer join with the LIKE in its ON clause: filter orders first, then left join, so
  count(o_orderkey) counts only the matching orders.
- Q18: the HAVING subquery already yields sum(l_quantity) per order, which is the query's
  sum_qty, so it is joined directly instead of joining lineitem a second time.
- Q21: "exists another supplier on the order" <=> the order has more than one distinct
  supplier; "no other supplier was late" <=> the late lines of the order have exactly one
  distinct supplier (l1's). Both are group_bys over lineitem used as semi/anti join sides.
- Expressions a SQL aggregate wraps (sum(a) / sum(b), 100 * ..., sum(...) * FRACTION) are
  computed with with_columns() after agg(), since agg() outputs are single aggregations.
- LIKE: '%x' / 'x%' / '%x%' -> str.ends_with / starts_with / contains(literal=True);
  '%a%b%' -> the regex contains('a.*b'). Decimal constants of the SQL text (0.06 +- 0.01,
  0.0001, 0.5) are decimal.Decimal literals so comparisons with decimal columns are exact.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import sluice as sl
from sluice import col, when

TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")


def load_tables(data_dir) -> dict[str, sl.Dataset]:
    """Datasets over tpchgen-cli Parquet output: <dir>/<table>.parquet or <dir>/<table>/ (--parts)."""
    root = Path(data_dir)
    tables = {}
    for name in TABLES:
        path = root / name if (root / name).is_dir() else root / f"{name}.parquet"
        tables[name] = sl.read_parquet(str(path))
    return tables


def revenue():
    """l_extendedprice * (1 - l_discount), the discounted price of a line."""
    return col("l_extendedprice") * (1 - col("l_discount"))


def in_range(column: str, start: str, end: str):
    """start <= column < end (the spec's `>= date 'x' and < date 'x' + interval`)."""
    return (col(column) >= start) & (col(column) < end)


def nation_in_region(t, region: str) -> sl.Dataset:
    """The nations of one region: n_nationkey, n_name."""
    regions = t["region"].filter(col("r_name") == region)
    return (t["nation"].join(regions, left_on="n_regionkey", right_on="r_regionkey", how="semi")
            .select("n_nationkey", "n_name"))


def nation_named(t, name: str) -> sl.Dataset:
    return t["nation"].filter(col("n_name") == name).select("n_nationkey")


def q01(t):
    return (
        t["lineitem"]
        .filter(col("l_shipdate") <= "1998-09-02")  # date '1998-12-01' - interval '90' day
        .with_columns(disc_price=revenue())
        .with_columns(charge=col("disc_price") * (1 + col("l_tax")))
        .group_by("l_returnflag", "l_linestatus")
        .agg(
            sum_qty=col("l_quantity").sum(),
            sum_base_price=col("l_extendedprice").sum(),
            sum_disc_price=col("disc_price").sum(),
            sum_charge=col("charge").sum(),
            avg_qty=col("l_quantity").mean(),
            avg_price=col("l_extendedprice").mean(),
            avg_disc=col("l_discount").mean(),
            count_order=sl.count(),
        )
        .sort(["l_returnflag", "l_linestatus"])
    )


def q02(t):
    europe = t["supplier"].join(nation_in_region(t, "EUROPE"), left_on="s_nationkey", right_on="n_nationkey")
    offers = t["partsupp"].join(europe, left_on="ps_suppkey", right_on="s_suppkey")
    # correlated subquery: the cheapest European supply cost of each part
    cheapest = offers.group_by("ps_partkey").agg(min_cost=col("ps_supplycost").min())
    parts = t["part"].filter((col("p_size") == 15) & col("p_type").str.ends_with("BRASS"))
    return (
        parts.join(offers, left_on="p_partkey", right_on="ps_partkey")
        .join(cheapest, left_on=["p_partkey", "ps_supplycost"], right_on=["ps_partkey", "min_cost"])
        .select("s_acctbal", "s_name", "n_name", "p_partkey", "p_mfgr", "s_address", "s_phone", "s_comment")
        .sort(["s_acctbal", "n_name", "s_name", "p_partkey"], descending=[True, False, False, False])
        .limit(100)
    )


def q03(t):
    customers = t["customer"].filter(col("c_mktsegment") == "BUILDING")
    orders = (t["orders"].filter(col("o_orderdate") < "1995-03-15")
              .join(customers, left_on="o_custkey", right_on="c_custkey", how="semi"))
    return (
        t["lineitem"]
        .filter(col("l_shipdate") > "1995-03-15")
        .join(orders, left_on="l_orderkey", right_on="o_orderkey")
        .group_by("l_orderkey", "o_orderdate", "o_shippriority")
        .agg(revenue=revenue().sum())
        .select("l_orderkey", "revenue", "o_orderdate", "o_shippriority")
        .sort(["revenue", "o_orderdate"], descending=[True, False])
        .limit(10)
    )


def q04(t):
    late_lines = t["lineitem"].filter(col("l_commitdate") < col("l_receiptdate"))
    return (
        t["orders"]
        .filter(in_range("o_orderdate", "1993-07-01", "1993-10-01"))
        .join(late_lines, left_on="o_orderkey", right_on="l_orderkey", how="semi")  # EXISTS
        .group_by("o_orderpriority")
        .agg(order_count=sl.count())
        .sort("o_orderpriority")
    )


def q05(t):
    suppliers = t["supplier"].join(nation_in_region(t, "ASIA"), left_on="s_nationkey", right_on="n_nationkey")
    orders = (t["orders"].filter(in_range("o_orderdate", "1994-01-01", "1995-01-01"))
              .join(t["customer"], left_on="o_custkey", right_on="c_custkey"))
    return (
        t["lineitem"]
        .join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        # l_orderkey = o_orderkey and c_nationkey = s_nationkey
        .join(orders, left_on=["l_orderkey", "s_nationkey"], right_on=["o_orderkey", "c_nationkey"])
        .group_by("n_name")
        .agg(revenue=revenue().sum())
        .sort("revenue", descending=True)
    )


def q06(t):
    return (
        t["lineitem"]
        .filter(
            in_range("l_shipdate", "1994-01-01", "1995-01-01")
            & col("l_discount").between(Decimal("0.05"), Decimal("0.07"))
            & (col("l_quantity") < 24)
        )
        .agg(revenue=(col("l_extendedprice") * col("l_discount")).sum())
    )


def q07(t):
    pair = ["FRANCE", "GERMANY"]
    supp_nations = (t["nation"].filter(col("n_name").is_in(pair))
                    .select(col("n_nationkey").alias("sn_key"), col("n_name").alias("supp_nation")))
    cust_nations = (t["nation"].filter(col("n_name").is_in(pair))
                    .select(col("n_nationkey").alias("cn_key"), col("n_name").alias("cust_nation")))
    suppliers = t["supplier"].join(supp_nations, left_on="s_nationkey", right_on="sn_key")
    customers = t["customer"].join(cust_nations, left_on="c_nationkey", right_on="cn_key")
    orders = t["orders"].join(customers, left_on="o_custkey", right_on="c_custkey")
    return (
        t["lineitem"]
        .filter(col("l_shipdate").between("1995-01-01", "1996-12-31"))
        .join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(orders, left_on="l_orderkey", right_on="o_orderkey")
        .filter(((col("supp_nation") == "FRANCE") & (col("cust_nation") == "GERMANY"))
                | ((col("supp_nation") == "GERMANY") & (col("cust_nation") == "FRANCE")))
        .with_columns(l_year=col("l_shipdate").dt.year(), volume=revenue())
        .group_by("supp_nation", "cust_nation", "l_year")
        .agg(revenue=col("volume").sum())
        .sort(["supp_nation", "cust_nation", "l_year"])
    )


def q08(t):
    customers = t["customer"].join(nation_in_region(t, "AMERICA"), left_on="c_nationkey", right_on="n_nationkey",
                                   how="semi")
    orders = (t["orders"].filter(col("o_orderdate").between("1995-01-01", "1996-12-31"))
              .join(customers, left_on="o_custkey", right_on="c_custkey", how="semi"))
    parts = t["part"].filter(col("p_type") == "ECONOMY ANODIZED STEEL")
    suppliers = t["supplier"].join(t["nation"].select("n_nationkey", col("n_name").alias("nation")),
                                   left_on="s_nationkey", right_on="n_nationkey")
    return (
        t["lineitem"]
        .join(parts, left_on="l_partkey", right_on="p_partkey", how="semi")
        .join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(orders, left_on="l_orderkey", right_on="o_orderkey")
        .with_columns(o_year=col("o_orderdate").dt.year(), volume=revenue())
        .with_columns(brazil_volume=when(col("nation") == "BRAZIL").then(col("volume")).otherwise(0))
        .group_by("o_year")
        .agg(brazil=col("brazil_volume").sum(), total=col("volume").sum())
        .with_columns(mkt_share=col("brazil") / col("total"))
        .select("o_year", "mkt_share")
        .sort("o_year")
    )


def q09(t):
    green = t["part"].filter(col("p_name").str.contains("green", literal=True))
    return (
        t["lineitem"]
        .join(green, left_on="l_partkey", right_on="p_partkey", how="semi")
        .join(t["partsupp"], left_on=["l_suppkey", "l_partkey"], right_on=["ps_suppkey", "ps_partkey"])
        .join(t["supplier"], left_on="l_suppkey", right_on="s_suppkey")
        .join(t["nation"].select("n_nationkey", col("n_name").alias("nation")),
              left_on="s_nationkey", right_on="n_nationkey")
        .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
        .with_columns(o_year=col("o_orderdate").dt.year(),
                      amount=revenue() - col("ps_supplycost") * col("l_quantity"))
        .group_by("nation", "o_year")
        .agg(sum_profit=col("amount").sum())
        .sort(["nation", "o_year"], descending=[False, True])
    )


def q10(t):
    returned = (t["lineitem"].filter(col("l_returnflag") == "R")
                .join(t["orders"].filter(in_range("o_orderdate", "1993-10-01", "1994-01-01")),
                      left_on="l_orderkey", right_on="o_orderkey"))
    return (
        t["customer"]
        .join(returned, left_on="c_custkey", right_on="o_custkey")
        .join(t["nation"], left_on="c_nationkey", right_on="n_nationkey")
        .group_by("c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address", "c_comment")
        .agg(revenue=revenue().sum())
        .select("c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone", "c_comment")
        .sort("revenue", descending=True)
        .limit(20)
    )


def q11(t):
    german_suppliers = t["supplier"].join(nation_named(t, "GERMANY"), left_on="s_nationkey",
                                          right_on="n_nationkey", how="semi")
    stock = (t["partsupp"].join(german_suppliers, left_on="ps_suppkey", right_on="s_suppkey", how="semi")
             .with_columns(value=col("ps_supplycost") * col("ps_availqty")))
    # uncorrelated scalar subquery: one row, cross joined onto every part
    threshold = (stock.agg(total=col("value").sum())
                 .select((col("total") * Decimal("0.0001")).alias("threshold")))
    return (
        stock.group_by("ps_partkey")
        .agg(value=col("value").sum())
        .join(threshold, how="cross")
        .filter(col("value") > col("threshold"))  # HAVING
        .select("ps_partkey", "value")
        .sort("value", descending=True)
    )


def q12(t):
    urgent = col("o_orderpriority").is_in(["1-URGENT", "2-HIGH"])
    return (
        t["lineitem"]
        .filter(col("l_shipmode").is_in(["MAIL", "SHIP"])
                & (col("l_commitdate") < col("l_receiptdate"))
                & (col("l_shipdate") < col("l_commitdate"))
                & in_range("l_receiptdate", "1994-01-01", "1995-01-01"))
        .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
        .with_columns(high=when(urgent).then(1).otherwise(0), low=when(urgent).then(0).otherwise(1))
        .group_by("l_shipmode")
        .agg(high_line_count=col("high").sum(), low_line_count=col("low").sum())
        .sort("l_shipmode")
    )


def q13(t):
    # the LIKE of the outer join's ON clause filters the orders before the join
    orders = t["orders"].filter(~col("o_comment").str.contains("special.*requests"))
    return (
        t["customer"]
        .select("c_custkey")
        .join(orders, left_on="c_custkey", right_on="o_custkey", how="left")
        .group_by("c_custkey")
        .agg(c_count=col("o_orderkey").count())  # unmatched customers count 0
        .group_by("c_count")
        .agg(custdist=sl.count())
        .sort(["custdist", "c_count"], descending=True)
    )


def q14(t):
    return (
        t["lineitem"]
        .filter(in_range("l_shipdate", "1995-09-01", "1995-10-01"))
        .join(t["part"], left_on="l_partkey", right_on="p_partkey")
        .with_columns(volume=revenue())
        .with_columns(promo=when(col("p_type").str.starts_with("PROMO")).then(col("volume")).otherwise(0))
        .agg(promo=col("promo").sum(), total=col("volume").sum())
        .select((100.00 * col("promo") / col("total")).alias("promo_revenue"))
    )


def q15(t):
    revenue0 = (t["lineitem"].filter(in_range("l_shipdate", "1996-01-01", "1996-04-01"))
                .group_by("l_suppkey")
                .agg(total_revenue=revenue().sum()))
    top = revenue0.agg(max_revenue=col("total_revenue").max())
    best = revenue0.join(top, left_on="total_revenue", right_on="max_revenue", how="semi")
    return (
        t["supplier"]
        .join(best, left_on="s_suppkey", right_on="l_suppkey")
        .select("s_suppkey", "s_name", "s_address", "s_phone", "total_revenue")
        .sort("s_suppkey")
    )


def q16(t):
    complaints = t["supplier"].filter(col("s_comment").str.contains("Customer.*Complaints"))
    parts = t["part"].filter((col("p_brand") != "Brand#45")
                             & ~col("p_type").str.starts_with("MEDIUM POLISHED")
                             & col("p_size").is_in([49, 14, 23, 45, 19, 3, 36, 9]))
    return (
        t["partsupp"]
        .join(complaints, left_on="ps_suppkey", right_on="s_suppkey", how="anti")  # NOT IN
        .join(parts, left_on="ps_partkey", right_on="p_partkey")
        .group_by("p_brand", "p_type", "p_size")
        .agg(supplier_cnt=col("ps_suppkey").count_distinct())
        .sort(["supplier_cnt", "p_brand", "p_type", "p_size"], descending=[True, False, False, False])
    )


def q17(t):
    parts = t["part"].filter((col("p_brand") == "Brand#23") & (col("p_container") == "MED BOX"))
    lines = t["lineitem"].join(parts, left_on="l_partkey", right_on="p_partkey", how="semi")
    # correlated subquery: the mean quantity of each of those parts
    mean_qty = lines.group_by("l_partkey").agg(avg_qty=col("l_quantity").mean())
    return (
        lines.join(mean_qty, on="l_partkey")
        .filter(col("l_quantity") < 0.2 * col("avg_qty"))
        .agg(total=col("l_extendedprice").sum())
        .select((col("total") / 7.0).alias("avg_yearly"))
    )


def q18(t):
    big_orders = (t["lineitem"].group_by("l_orderkey")
                  .agg(sum_qty=col("l_quantity").sum())
                  .filter(col("sum_qty") > 300))  # HAVING
    return (
        t["customer"]
        .join(t["orders"], left_on="c_custkey", right_on="o_custkey")
        .join(big_orders, left_on="o_orderkey", right_on="l_orderkey")
        .select("c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice", "sum_qty")
        .sort(["o_totalprice", "o_orderdate"], descending=[True, False])
        .limit(100)
    )


def q19(t):
    def branch(brand, containers, quantity, max_size):
        return ((col("p_brand") == brand)
                & col("p_container").is_in(containers)
                & col("l_quantity").between(quantity, quantity + 10)
                & col("p_size").between(1, max_size))

    return (
        t["lineitem"]
        .filter(col("l_shipmode").is_in(["AIR", "AIR REG"]) & (col("l_shipinstruct") == "DELIVER IN PERSON"))
        .join(t["part"], left_on="l_partkey", right_on="p_partkey")
        .filter(branch("Brand#12", ["SM CASE", "SM BOX", "SM PACK", "SM PKG"], 1, 5)
                | branch("Brand#23", ["MED BAG", "MED BOX", "MED PKG", "MED PACK"], 10, 10)
                | branch("Brand#34", ["LG CASE", "LG BOX", "LG PACK", "LG PKG"], 20, 15))
        .agg(revenue=revenue().sum())
    )


def q20(t):
    forest = t["part"].filter(col("p_name").str.starts_with("forest"))
    shipped = (t["lineitem"].filter(in_range("l_shipdate", "1994-01-01", "1995-01-01"))
               .group_by("l_partkey", "l_suppkey")
               .agg(qty=col("l_quantity").sum()))
    excess = (t["partsupp"]
              .join(forest, left_on="ps_partkey", right_on="p_partkey", how="semi")
              .join(shipped, left_on=["ps_partkey", "ps_suppkey"], right_on=["l_partkey", "l_suppkey"])
              .filter(col("ps_availqty") > Decimal("0.5") * col("qty")))
    return (
        t["supplier"]
        .join(excess, left_on="s_suppkey", right_on="ps_suppkey", how="semi")
        .join(nation_named(t, "CANADA"), left_on="s_nationkey", right_on="n_nationkey", how="semi")
        .select("s_name", "s_address")
        .sort("s_name")
    )


def q21(t):
    lines = t["lineitem"].select("l_orderkey", "l_suppkey", "l_receiptdate", "l_commitdate")
    late = lines.filter(col("l_receiptdate") > col("l_commitdate"))
    shared = (lines.group_by("l_orderkey").agg(n=col("l_suppkey").count_distinct())
              .filter(col("n") > 1))      # EXISTS another supplier on the order
    late_others = (late.group_by("l_orderkey").agg(n=col("l_suppkey").count_distinct())
                   .filter(col("n") > 1))  # another supplier was late too: NOT EXISTS fails
    suppliers = (t["supplier"].join(nation_named(t, "SAUDI ARABIA"), left_on="s_nationkey",
                                    right_on="n_nationkey", how="semi")
                 .select("s_suppkey", "s_name"))
    failed = t["orders"].filter(col("o_orderstatus") == "F")
    return (
        late.join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(failed, left_on="l_orderkey", right_on="o_orderkey", how="semi")
        .join(shared, on="l_orderkey", how="semi")
        .join(late_others, on="l_orderkey", how="anti")
        .group_by("s_name")
        .agg(numwait=sl.count())
        .sort(["numwait", "s_name"], descending=[True, False])
        .limit(100)
    )


def q22(t):
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    customers = (t["customer"].with_columns(cntrycode=col("c_phone").str.slice(0, 2))
                 .filter(col("cntrycode").is_in(codes)))
    average = customers.filter(col("c_acctbal") > 0).agg(avg_acctbal=col("c_acctbal").mean())
    return (
        customers.join(average, how="cross")
        .filter(col("c_acctbal") > col("avg_acctbal"))
        .join(t["orders"], left_on="c_custkey", right_on="o_custkey", how="anti")  # NOT EXISTS
        .group_by("cntrycode")
        .agg(numcust=sl.count(), totacctbal=col("c_acctbal").sum())
        .sort("cntrycode")
    )


QUERIES = {f"q{i:02d}": globals()[f"q{i:02d}"] for i in range(1, 23)}
