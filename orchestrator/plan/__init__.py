"""From a validated template to what runs: pure functions, no I/O, no store.

Owns: the graph compiler (:mod:`~orchestrator.plan.graph`: steps/dag/nested templates/withItems
into one node graph), parameter and artifact binding (:mod:`~orchestrator.plan.binding`),
placeholder resolution and ``when:`` evaluation (:mod:`~orchestrator.plan.resolve`), and the
pure cron core (:mod:`~orchestrator.plan.cron`: slots, catch-up, DST, overlap policy).
May import: spec, model, errors. Must never import: store, run, git, control, api, cli.
"""
