"""Column expressions: the tree users build with `col()`, `lit()` and `when()` (`tree`), their
types (`types`, `typecheck`) and their compilation to Polars and to pyarrow filters (`compile`).
"""

from .tree import Expr, coalesce, col, count, dense_rank, lit, rank, row_number, when

__all__ = ["Expr", "coalesce", "col", "count", "dense_rank", "lit", "rank", "row_number", "when"]
