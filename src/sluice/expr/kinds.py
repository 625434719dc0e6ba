"""The kinds of value the plan-time checks reason with: a column's Arrow type reduced to what it can be used for."""

NUMERIC, STRING, BOOL, TEMPORAL, NULL, OTHER = "numeric", "string", "boolean", "temporal", "null", "other"
LIST, STRUCT = "list", "struct"
