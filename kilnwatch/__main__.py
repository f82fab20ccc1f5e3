"""``python -m kilnwatch`` is the ``kilnwatch`` command."""

from .cli import main

raise SystemExit(main())
