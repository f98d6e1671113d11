"""``python -m orchestrator`` entry point (same as the console script)."""

from orchestrator.cli.main import main

raise SystemExit(main())
