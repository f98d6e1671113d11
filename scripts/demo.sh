#!/usr/bin/env bash
# End-to-end tour of the shipped workflows: validate, train, inspect, score, fail on purpose.
#
#   bash scripts/demo.sh
#   ORCHESTRATOR=/tmp/venv/bin/orchestrator PYTHON=/tmp/venv/bin/python \
#       ORCHESTRATOR_HOME=$(mktemp -d) bash scripts/demo.sh
#
# State goes to $ORCHESTRATOR_HOME (default ./.orchestrator). Progress lines of the runs go to
# stderr and are shown as they happen.
set -euo pipefail

cd "$(dirname "$0")/.."

ORCHESTRATOR=${ORCHESTRATOR:-orchestrator}
PYTHON=${PYTHON:-python3}

step() {
  printf '\n==> %s\n' "$*"
}

tmp=$(mktemp)
csv=$(mktemp --suffix=.csv)
trap 'rm -f "$tmp" "$csv"' EXIT

step "orchestrator validate workflows/"
"$ORCHESTRATOR" validate workflows/

step "orchestrator run workflows/sklearn-train.yaml -p n-estimators=200 --json"
"$ORCHESTRATOR" run workflows/sklearn-train.yaml -p n-estimators=200 --json >"$tmp"

# Execution id and the artifact ids of the outputs we feed into the scoring run.
ids=$("$PYTHON" -c '
import json, sys
ex = json.load(open(sys.argv[1]))
ids = {a["name"]: a["id"] for a in ex["outputArtifacts"]}
print(ex["id"], ids["breast-cancer-model"], ids["prepared-data"])
' "$tmp")
read -r EXECUTION MODEL_ID DATA_ID <<<"$ids"
echo "execution $EXECUTION: model artifact $MODEL_ID, dataset artifact $DATA_ID"

step "orchestrator metrics $EXECUTION"
"$ORCHESTRATOR" metrics "$EXECUTION"

step "orchestrator executions show $EXECUTION"
"$ORCHESTRATOR" executions show "$EXECUTION"

step "orchestrator run workflows/sklearn-score.yaml --artifact model=$MODEL_ID --artifact dataset=$DATA_ID"
"$ORCHESTRATOR" run workflows/sklearn-score.yaml --artifact "model=$MODEL_ID" --artifact "dataset=$DATA_ID"

# Any CSV file (or folder of CSV files) with the feature columns can be scored by path; ids may be
# shortened to a unique prefix.
"$ORCHESTRATOR" artifacts show "$DATA_ID" --json >"$tmp"
cp "$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["localPath"])' "$tmp")/test.csv" "$csv"
step "orchestrator run workflows/sklearn-score.yaml --artifact model=${MODEL_ID:0:8} --artifact dataset=$csv"
"$ORCHESTRATOR" run workflows/sklearn-score.yaml --artifact "model=${MODEL_ID:0:8}" --artifact "dataset=$csv"

step "orchestrator run workflows/failing-step.yaml   (fails on purpose: the execution ends DEAD)"
"$ORCHESTRATOR" run workflows/failing-step.yaml || echo "(exit code $? as expected)"

step "orchestrator executions"
"$ORCHESTRATOR" executions
