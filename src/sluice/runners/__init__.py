"""Runners execute physical plans. `local` is the embedded engine; others register here."""
