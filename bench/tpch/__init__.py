"""TPC-H on sluice: the 22 queries (queries.py) and their reference SQL (sql/qNN.sql)."""
