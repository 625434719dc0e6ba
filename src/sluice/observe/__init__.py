"""Observability: what a run did, as it runs and after it ends."""
