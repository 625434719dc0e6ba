"""What users touch: the `Dataset` API, the `sluice` command line and the demo.

The readers (`read_parquet`, `from_arrow`, ...) and the expression builders are re-exported
by the package's `__init__`, so `import sluice` is all a pipeline needs.
"""
