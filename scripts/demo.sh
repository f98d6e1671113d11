#!/usr/bin/env bash
# End-to-end tour of the shipped workflows: validate, train three times with different
# hyperparameters, compare, register the best as `champion`, score with models:/...@champion,
# score a CSV file, fail on purpose, then deploy `champion` and score three rows with curl.
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

# The seed loop (Adobe Sensei's train -> compare -> pick the best -> score): three training runs of
# the same executable with different hyperparameters, each an execution with parameter overrides.
runs=()
for hp in "n-estimators=5 max-depth=2" "n-estimators=50 max-depth=4" "n-estimators=200 max-depth=0"; do
  set -- $hp
  step "orchestrator run workflows/sklearn-train.yaml -p $1 -p $2 --json"
  "$ORCHESTRATOR" run workflows/sklearn-train.yaml -p "$1" -p "$2" --json >"$tmp"
  # Execution id and the artifact ids of the outputs (the dataset is fed into the scoring runs).
  ids=$("$PYTHON" -c '
import json, sys
ex = json.load(open(sys.argv[1]))
ids = {a["name"]: a["id"] for a in ex["outputArtifacts"]}
print(ex["id"], ids["breast-cancer-model"], ids["prepared-data"])
' "$tmp")
  read -r EXECUTION MODEL_ID DATA_ID <<<"$ids"
  echo "execution $EXECUTION: model artifact $MODEL_ID, dataset artifact $DATA_ID"
  runs+=("$EXECUTION")
done

step "orchestrator metrics $EXECUTION"
"$ORCHESTRATOR" metrics "$EXECUTION"

step "orchestrator compare ${runs[*]} --sort f1"
"$ORCHESTRATOR" compare "${runs[@]}" --sort f1
BEST=$("$ORCHESTRATOR" compare "${runs[@]}" --sort f1 --json | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["bestExecutionId"])')

# Each run registered its model as a version of "breast-cancer" (the template's annotation
# orchestrator/register-model.breast-cancer-model); registering the best run's model again finds
# its version and points the alias `champion` at it.
step "orchestrator models register breast-cancer --execution $BEST --alias champion"
"$ORCHESTRATOR" models register breast-cancer --execution "$BEST" --alias champion

step "orchestrator models show breast-cancer"
"$ORCHESTRATOR" models show breast-cancer

# Score with whatever `champion` names now: the reference is resolved when the execution is
# created and the execution records the version it used (see "input artifacts" below).
step "orchestrator run workflows/sklearn-score.yaml --artifact model=models:/breast-cancer@champion --artifact dataset=$DATA_ID"
"$ORCHESTRATOR" run workflows/sklearn-score.yaml --artifact model=models:/breast-cancer@champion \
  --artifact "dataset=$DATA_ID" --json >"$tmp"
SCORING=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp")

step "orchestrator executions show $SCORING"
"$ORCHESTRATOR" executions show "$SCORING"

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

# A Sweep over the AI Core training template: 8 trials, 2 at a time, the best model registered as
# breast-cancer-best; then its trial table and a picture (DEMO_SWEEP=0 skips it).
if [ "${DEMO_SWEEP:-1}" != 0 ]; then
  step "orchestrator sweep workflows/sklearn-sweep.yaml"
  "$ORCHESTRATOR" sweep workflows/sklearn-sweep.yaml
  SWEEP=$("$ORCHESTRATOR" sweeps list --json | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
  step "orchestrator sweeps show $SWEEP --plot ${TMPDIR:-/tmp}/sweep.png"
  "$ORCHESTRATOR" sweeps show "$SWEEP" --plot "${TMPDIR:-/tmp}/sweep.png" || echo "(the plot needs: pip install 'orchestrator[sweeps]')"
fi

# Azure ML job files as they are (workflows/azureml): a command job, the seed-004 REST body, and a
# 20-trial sweep, 2 at a time, with median stopping (about a minute and a half more).
# DEMO_AZUREML_SWEEP=0 skips the sweep.
step "orchestrator run workflows/azureml/command-job.yml"
"$ORCHESTRATOR" run workflows/azureml/command-job.yml

step "orchestrator assets register ... && orchestrator run workflows/azureml/seed-004-command.json"
"$ORCHESTRATOR" assets register train-lightgbm workflows/azureml/src >/dev/null 2>&1 || true
"$ORCHESTRATOR" assets register iris-data workflows/azureml/data/iris.csv >/dev/null 2>&1 || true
"$ORCHESTRATOR" assets list
"$ORCHESTRATOR" run workflows/azureml/seed-004-command.json

if [ "${DEMO_AZUREML_SWEEP:-1}" != 0 ]; then
  step "orchestrator run workflows/azureml/sweep-job.yml"
  "$ORCHESTRATOR" run workflows/azureml/sweep-job.yml
fi

# Online scoring: the champion model becomes a deployment (AI Core's POST /v2/lm/deployments; here
# the built-in ServingTemplate and predictor, in a process of its own supervised by the detached
# deployment manager), answering KServe V1, Open Inference V2 and MLflow /invocations.
step "orchestrator deploy --model models:/breast-cancer@champion"
"$ORCHESTRATOR" deploy --model models:/breast-cancer@champion --json >"$tmp"
read -r DEPLOYMENT URL <<<"$("$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["id"], d["deploymentUrl"])' "$tmp")"
echo "deployment $DEPLOYMENT serving at $URL"

step "orchestrator deployments list"
"$ORCHESTRATOR" deployments list

# Three rows of the test split (its features, without the target column) as MLflow's dataframe_split.
"$PYTHON" - "$csv" >"$tmp" <<'PY'
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
t = rows[0].index("target")
drop = lambda r: [v for i, v in enumerate(r) if i != t]
print(json.dumps({"dataframe_split": {"columns": drop(rows[0]), "data": [[float(v) for v in drop(r)] for r in rows[1:4]]}}))
PY
step "curl -s -X POST $URL/invocations -H 'Content-Type: application/json' -d @rows.json"
curl -s -X POST "$URL/invocations" -H 'Content-Type: application/json' -d @"$tmp"
echo

step "orchestrator deployments stop $DEPLOYMENT"
"$ORCHESTRATOR" deployments stop "$DEPLOYMENT"
