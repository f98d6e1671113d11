"""``python -m orchestrator`` entry point (same as the console script)."""

from orchestrator.cli import main

raise SystemExit(main())
