"""The hardened git core: a bare mirror under the home, and files read from git objects.

Owns: :mod:`~orchestrator.git.gitsync` (URL checks, fetch with hooks/filters/fsmonitor/
submodules and every protocol but file/https off, tree reading with symlink and size limits,
per-file validation results). Knows nothing of the store: :mod:`orchestrator.control.syncing`
records what it returns.
May import: spec, model, errors. Must never import: run, store, control, api, cli.
"""
