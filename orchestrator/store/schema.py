"""SQL schema of the sqlite store, as an append-only list of migrations (``PRAGMA user_version``).

Owns: table definitions only. Never edit a shipped migration; append a new one.
"""

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE resource_groups(id TEXT PRIMARY KEY, created_at TEXT NOT NULL, labels TEXT)""",
        """CREATE TABLE scenarios(rg TEXT NOT NULL REFERENCES resource_groups(id), id TEXT NOT NULL,
           name TEXT NOT NULL, description TEXT, labels TEXT, created_at TEXT NOT NULL, modified_at TEXT NOT NULL,
           PRIMARY KEY(rg, id))""",
        """CREATE TABLE versions(rg TEXT NOT NULL, scenario_id TEXT NOT NULL, id TEXT NOT NULL, description TEXT,
           created_at TEXT NOT NULL, modified_at TEXT NOT NULL, PRIMARY KEY(rg, scenario_id, id),
           FOREIGN KEY(rg, scenario_id) REFERENCES scenarios(rg, id))""",
        """CREATE TABLE executables(rg TEXT NOT NULL, id TEXT NOT NULL, scenario_id TEXT NOT NULL,
           version_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT, deployable INTEGER NOT NULL,
           parameters TEXT NOT NULL, input_artifacts TEXT NOT NULL, output_artifacts TEXT NOT NULL,
           digest TEXT NOT NULL, source TEXT, document TEXT NOT NULL, created_at TEXT NOT NULL,
           modified_at TEXT NOT NULL, PRIMARY KEY(rg, id), FOREIGN KEY(rg, scenario_id) REFERENCES scenarios(rg, id))""",
        """CREATE TABLE configurations(rg TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
           scenario_id TEXT NOT NULL, executable_id TEXT NOT NULL, parameter_bindings TEXT NOT NULL,
           input_artifact_bindings TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY(rg, id))""",
        """CREATE TABLE executions(id TEXT PRIMARY KEY, rg TEXT NOT NULL, configuration_id TEXT NOT NULL,
           configuration_name TEXT, scenario_id TEXT NOT NULL, executable_id TEXT NOT NULL, status TEXT NOT NULL,
           target_status TEXT NOT NULL, status_message TEXT, status_details TEXT, created_at TEXT NOT NULL,
           modified_at TEXT NOT NULL, submission_time TEXT, start_time TEXT, completion_time TEXT,
           execution_schedule_id TEXT, workdir TEXT, runner_pid INTEGER, heartbeat_at REAL,
           parent_execution_id TEXT, FOREIGN KEY(rg, configuration_id) REFERENCES configurations(rg, id))""",
        "CREATE INDEX executions_rg ON executions(rg, created_at)",
        "CREATE INDEX executions_status ON executions(status)",
        """CREATE TABLE steps(execution_id TEXT NOT NULL REFERENCES executions(id), node_id TEXT NOT NULL,
           kind TEXT NOT NULL, template TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
           exit_code INTEGER, started_at REAL, finished_at REAL, message TEXT, log_path TEXT, outputs TEXT,
           cache_key TEXT, cache_inputs TEXT, cache_note TEXT, PRIMARY KEY(execution_id, node_id))""",
        """CREATE TABLE step_attempts(execution_id TEXT NOT NULL REFERENCES executions(id), node_id TEXT NOT NULL,
           attempt INTEGER NOT NULL, exit_code INTEGER, started_at REAL, finished_at REAL, log_path TEXT,
           message TEXT, PRIMARY KEY(execution_id, node_id, attempt))""",
        """CREATE TABLE step_cache(rg TEXT NOT NULL, cache_key TEXT NOT NULL, execution_id TEXT NOT NULL,
           node_id TEXT NOT NULL, outputs TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY(rg, cache_key))""",
        """CREATE TABLE artifacts(id TEXT PRIMARY KEY, rg TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
           url TEXT NOT NULL, scenario_id TEXT NOT NULL, description TEXT, labels TEXT, created_at TEXT NOT NULL,
           modified_at TEXT NOT NULL, execution_id TEXT REFERENCES executions(id), configuration_id TEXT,
           digest TEXT, size INTEGER)""",
        "CREATE INDEX artifacts_rg ON artifacts(rg, created_at)",
        "CREATE INDEX artifacts_execution ON artifacts(execution_id)",
        """CREATE TABLE metrics(seq INTEGER PRIMARY KEY AUTOINCREMENT, execution_id TEXT NOT NULL
           REFERENCES executions(id), name TEXT NOT NULL, value REAL NOT NULL, timestamp TEXT NOT NULL,
           step INTEGER, labels TEXT, node_id TEXT)""",
        "CREATE INDEX metrics_execution ON metrics(execution_id, name, step)",
        """CREATE TABLE metric_batches(execution_id TEXT NOT NULL, batch_id TEXT NOT NULL, upto INTEGER,
           PRIMARY KEY(execution_id, batch_id))""",
        """CREATE TABLE tags(execution_id TEXT NOT NULL REFERENCES executions(id), name TEXT NOT NULL,
           value TEXT NOT NULL, PRIMARY KEY(execution_id, name))""",
        """CREATE TABLE custom_info(execution_id TEXT NOT NULL REFERENCES executions(id), name TEXT NOT NULL,
           value TEXT NOT NULL, PRIMARY KEY(execution_id, name))""",
        """CREATE TABLE validated_files(rg TEXT NOT NULL, digest TEXT NOT NULL, checked_at TEXT NOT NULL,
           PRIMARY KEY(rg, digest))""",
    ],
    # v2: the API (tokens, secrets, object stores, schedules, soft delete) and git sync.
    [
        """CREATE TABLE tokens(id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE,
           kind TEXT NOT NULL DEFAULT 'api', created_at TEXT NOT NULL, expires_at REAL, revoked_at TEXT,
           rg TEXT, execution_id TEXT, parent_id TEXT)""",
        "CREATE UNIQUE INDEX tokens_name ON tokens(name) WHERE kind='api'",
        """CREATE TABLE secrets(rg TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, created_at TEXT NOT NULL,
           modified_at TEXT NOT NULL, PRIMARY KEY(rg, name))""",
        """CREATE TABLE object_stores(rg TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, path TEXT NOT NULL,
           metadata TEXT NOT NULL, data TEXT NOT NULL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL,
           PRIMARY KEY(rg, name))""",
        """CREATE TABLE execution_schedules(rg TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, cron TEXT NOT NULL,
           configuration_id TEXT NOT NULL, start TEXT, end TEXT, status TEXT NOT NULL DEFAULT 'ACTIVE',
           timezone TEXT NOT NULL DEFAULT 'UTC', catchup TEXT NOT NULL DEFAULT 'latest',
           max_catchup INTEGER NOT NULL DEFAULT 1, concurrency TEXT NOT NULL DEFAULT 'Allow',
           slot_parameter TEXT, last_slot TEXT, source TEXT, deleted_at TEXT,
           created_at TEXT NOT NULL, modified_at TEXT NOT NULL, PRIMARY KEY(rg, id))""",
        "ALTER TABLE executions ADD COLUMN schedule_slot TEXT",
        "ALTER TABLE executions ADD COLUMN deleted_at TEXT",
        "ALTER TABLE executions ADD COLUMN commit_sha TEXT",
        "ALTER TABLE executions ADD COLUMN extra_parameters TEXT",
        """CREATE UNIQUE INDEX executions_slot ON executions(execution_schedule_id, schedule_slot)
           WHERE execution_schedule_id IS NOT NULL AND schedule_slot IS NOT NULL""",
        "CREATE INDEX executions_schedule ON executions(rg, execution_schedule_id)",
        "ALTER TABLE executables ADD COLUMN gone_at TEXT",
        "ALTER TABLE executables ADD COLUMN commit_sha TEXT",
        "ALTER TABLE configurations ADD COLUMN source TEXT",
    ],
    # v3: git sync (repositories, applications, per-file results, what each application owns) and
    # the scheduler's record of every slot it decided not to run (no silent miss).
    [
        """CREATE TABLE repositories(name TEXT PRIMARY KEY, url TEXT NOT NULL, username TEXT,
           secret_name TEXT, status TEXT NOT NULL DEFAULT 'IN_PROGRESS', message TEXT,
           created_at TEXT NOT NULL, modified_at TEXT NOT NULL)""",
        """CREATE TABLE applications(name TEXT PRIMARY KEY, repository TEXT NOT NULL REFERENCES repositories(name),
           path TEXT NOT NULL, revision TEXT NOT NULL, rg TEXT NOT NULL, last_commit TEXT, checker TEXT,
           sync_status TEXT NOT NULL DEFAULT 'NEVER', message TEXT, last_sync_at TEXT, sync_started_at TEXT,
           sync_duration REAL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL)""",
        """CREATE TABLE application_files(application TEXT NOT NULL REFERENCES applications(name) ON DELETE CASCADE,
           path TEXT NOT NULL, status TEXT NOT NULL, errors TEXT NOT NULL, warnings TEXT NOT NULL,
           objects TEXT NOT NULL, note TEXT, commit_sha TEXT NOT NULL, PRIMARY KEY(application, path))""",
        """CREATE TABLE application_objects(application TEXT NOT NULL REFERENCES applications(name) ON DELETE CASCADE,
           kind TEXT NOT NULL, name TEXT NOT NULL, rg TEXT NOT NULL, object_id TEXT NOT NULL, path TEXT NOT NULL,
           digest TEXT NOT NULL, commit_sha TEXT NOT NULL, gone_at TEXT, PRIMARY KEY(application, kind, name))""",
        """CREATE TABLE schedule_slots(rg TEXT NOT NULL, schedule_id TEXT NOT NULL, slot TEXT NOT NULL,
           outcome TEXT NOT NULL, reason TEXT, execution_id TEXT, decided_at TEXT NOT NULL,
           PRIMARY KEY(schedule_id, slot))""",
        "CREATE INDEX executions_schedule_open ON executions(execution_schedule_id, status)",
    ],
    # v4: the scheduler's check for claims left behind by a scheduler that died
    [
        "CREATE INDEX schedule_slots_claimed ON schedule_slots(rg, decided_at) WHERE outcome='claimed'",
    ],
    # v5: experiments and models (issue 14). Per-(execution, metric) summaries kept at ingest so that
    # compare never scans a series (backfilled here from the points already stored; a delete of an
    # execution's points drops its summaries by trigger), indexes for compare's selections, and the
    # model registry: named models, numbered versions (a model artifact, its sha256, its execution),
    # aliases (one version per alias and model).
    [
        """CREATE TABLE metric_summaries(execution_id TEXT NOT NULL, name TEXT NOT NULL,
           last REAL NOT NULL, last_step INTEGER, min REAL NOT NULL, min_step INTEGER,
           max REAL NOT NULL, max_step INTEGER, count INTEGER NOT NULL, PRIMARY KEY(execution_id, name))""",
        """INSERT INTO metric_summaries(execution_id, name, last, last_step, min, min_step, max, max_step, count)
           SELECT g.execution_id, g.name,
             (SELECT value FROM metrics WHERE seq=g.last_seq), (SELECT step FROM metrics WHERE seq=g.last_seq),
             g.mn, (SELECT step FROM metrics m WHERE m.execution_id=g.execution_id AND m.name=g.name
                    AND m.value=g.mn ORDER BY m.seq LIMIT 1),
             g.mx, (SELECT step FROM metrics m WHERE m.execution_id=g.execution_id AND m.name=g.name
                    AND m.value=g.mx ORDER BY m.seq LIMIT 1),
             g.cnt
           FROM (SELECT execution_id, name, MIN(seq) AS first_seq, MAX(seq) AS last_seq, MIN(value) AS mn,
                 MAX(value) AS mx, COUNT(*) AS cnt FROM metrics GROUP BY execution_id, name) g
           ORDER BY g.first_seq""",
        """CREATE TRIGGER metric_summaries_drop AFTER DELETE ON metrics
           BEGIN DELETE FROM metric_summaries WHERE execution_id=OLD.execution_id; END""",
        "CREATE INDEX executions_compare_scenario ON executions(rg, scenario_id, created_at)",
        "CREATE INDEX executions_compare_executable ON executions(rg, executable_id, created_at)",
        """CREATE TABLE registered_models(rg TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
           created_at TEXT NOT NULL, modified_at TEXT NOT NULL, PRIMARY KEY(rg, name))""",
        """CREATE TABLE model_versions(rg TEXT NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
           artifact_id TEXT NOT NULL, sha256 TEXT NOT NULL, execution_id TEXT NOT NULL,
           description TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,
           modified_at TEXT NOT NULL, PRIMARY KEY(rg, model, version),
           FOREIGN KEY(rg, model) REFERENCES registered_models(rg, name))""",
        "CREATE UNIQUE INDEX model_versions_artifact ON model_versions(rg, model, artifact_id)",
        "CREATE INDEX model_versions_execution ON model_versions(rg, execution_id)",
        """CREATE TABLE model_aliases(rg TEXT NOT NULL, model TEXT NOT NULL, alias TEXT NOT NULL,
           version INTEGER NOT NULL, modified_at TEXT NOT NULL, PRIMARY KEY(rg, model, alias),
           FOREIGN KEY(rg, model, version) REFERENCES model_versions(rg, model, version))""",
    ],
    # v6: the input artifacts each execution was actually bound to (issue 14, models:/ references):
    # a JSON list of {key, artifactId} plus, for a `models:/NAME@ALIAS` or `models:/NAME/VERSION`
    # binding, the reference, model, version and sha256 it resolved to when the execution was created.
    # NULL for executions created before: their configuration's bindings are what they used.
    [
        "ALTER TABLE executions ADD COLUMN input_artifacts TEXT",
    ],
    # The step that logged each tag (a tracking file's or an MLflow run's), so that a cache hit or a
    # resumed step brings its tags and MLflow params along with its metric points (issue 14).
    # NULL for tags set through the REST API or by the orchestrator itself.
    [
        "ALTER TABLE tags ADD COLUMN node_id TEXT",
    ],
    # sweeps (issue 15): a sweep's document, seed, status and owner; its trials are executions
    # (sweep_trials links each execution to its trial index, parameters and primary-metric reports).
    [
        """CREATE TABLE sweeps(id TEXT PRIMARY KEY, rg TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL,
           seed INTEGER NOT NULL, configuration_id TEXT NOT NULL, status TEXT NOT NULL,
           status_message TEXT NOT NULL DEFAULT '', target_status TEXT NOT NULL DEFAULT 'COMPLETED',
           created_at TEXT NOT NULL, modified_at TEXT NOT NULL, start_time TEXT, completion_time TEXT,
           owner_pid INTEGER, heartbeat_at REAL, best_execution_id TEXT, best_value REAL,
           model_version TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX sweeps_rg ON sweeps(rg, created_at)",
        """CREATE TABLE sweep_trials(sweep_id TEXT NOT NULL REFERENCES sweeps(id), trial INTEGER NOT NULL,
           execution_id TEXT NOT NULL, parameters TEXT NOT NULL,
           objective REAL, reports TEXT NOT NULL DEFAULT '[]', message TEXT NOT NULL DEFAULT '',
           started_at REAL, finished_at REAL, PRIMARY KEY(sweep_id, execution_id))""",
        "CREATE INDEX sweep_trials_trial ON sweep_trials(sweep_id, trial)",
        "CREATE UNIQUE INDEX sweep_trials_execution ON sweep_trials(execution_id)",
    ],
    # deployments (issue 16): AI Core deployments of ServingTemplates, their supervised predictor
    # (the port the proxy forwards to, the configuration it serves while a swap is under way) and
    # the one deployment manager per store that supervises every predictor (pid + heartbeat).
    [
        """CREATE TABLE deployments(id TEXT PRIMARY KEY, rg TEXT NOT NULL, configuration_id TEXT NOT NULL,
           configuration_name TEXT, scenario_id TEXT NOT NULL, executable_id TEXT NOT NULL, status TEXT NOT NULL,
           target_status TEXT NOT NULL, status_message TEXT, status_details TEXT, details TEXT,
           last_operation TEXT, latest_running_configuration_id TEXT, ttl TEXT, expires_at REAL,
           created_at TEXT NOT NULL, modified_at TEXT NOT NULL, submission_time TEXT, start_time TEXT,
           completion_time TEXT, deleted_at TEXT, serving_configuration_id TEXT, port INTEGER, pid INTEGER,
           log_path TEXT, FOREIGN KEY(rg, configuration_id) REFERENCES configurations(rg, id))""",
        "CREATE INDEX deployments_rg ON deployments(rg, created_at)",
        "CREATE INDEX deployments_open ON deployments(status) WHERE deleted_at IS NULL",
        """CREATE TABLE deployment_manager(id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER, token TEXT,
           heartbeat_at REAL, started_at TEXT)""",
    ],
    # docker registry secrets (issue 13): the container executor's imagePullSecrets; tenant-wide as
    # in AI Core (no resource group); data = {".dockerconfigjson": base64}, never returned by the API.
    [
        """CREATE TABLE docker_registry_secrets(name TEXT PRIMARY KEY, data TEXT NOT NULL, created_at TEXT NOT NULL,
           modified_at TEXT NOT NULL)""",
    ],
    # synced sweeps (issue 15): the application file a git-synced Sweep came from ("app:path"; '' otherwise)
    [
        "ALTER TABLE sweeps ADD COLUMN source TEXT NOT NULL DEFAULT ''",
    ],
    # Argo synchronization mutexes held across the executions of one store (issue 12):
    # an execution (node_id '') or one of its steps holds a lock until it ends.
    [
        """CREATE TABLE sync_holders(rg TEXT NOT NULL, lock TEXT NOT NULL, execution_id TEXT NOT NULL,
           node_id TEXT NOT NULL DEFAULT '', acquired_at TEXT NOT NULL, PRIMARY KEY(rg, lock, execution_id, node_id))""",
        "CREATE INDEX sync_holders_execution ON sync_holders(rg, execution_id)",
    ],
    # requests to resume suspended steps (issue 12: Argo's `argo resume`, supplied output parameters)
    [
        """CREATE TABLE resume_requests(seq INTEGER PRIMARY KEY AUTOINCREMENT, rg TEXT NOT NULL,
           execution_id TEXT NOT NULL, node_id TEXT NOT NULL DEFAULT '', outputs TEXT NOT NULL DEFAULT '{}',
           created_at TEXT NOT NULL)""",
        "CREATE INDEX resume_requests_execution ON resume_requests(rg, execution_id)",
    ],
]
