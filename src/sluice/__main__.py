"""`python -m sluice` is the `sluice` command."""

from .api.cli import main

raise SystemExit(main())
