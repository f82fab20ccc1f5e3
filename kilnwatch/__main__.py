"""``python -m kilnwatch`` is the ``kilnwatch`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
