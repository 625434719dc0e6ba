"""Optimizer rules, one per file. Each is a pure function from a logical plan to a logical plan."""
