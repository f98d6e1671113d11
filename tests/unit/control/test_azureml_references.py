"""Running an Azure ML job whose references cannot be resolved names every one of them at once,
each with its fix (it stopped at the first: one fix-and-retry per reference), and runs nothing;
an unregistered code asset is called a code asset and its hint does not offer an ``--artifact``
binding that ``run`` refuses for code. Through the real CLI."""

from __future__ import annotations

import json
import shutil

from tests.conftest import REPO, Cli

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: ls ${{inputs.d}} ${{inputs.e}}
code: azureml:my-code:3
inputs:
  d: {type: uri_folder, path: "azureml:my-data@latest"}
  e: {type: uri_file, path: "https://example.com/x.csv"}
"""


def test_every_unresolved_reference_is_named_at_once(cli: Cli) -> None:
    cli.write("job.yml", JOB)
    (cli.tmp / "src").mkdir()
    (cli.tmp / "src" / "x.csv").write_text("a\n")
    p = cli("run", "job.yml", check=2)
    assert "3 references of job.yml cannot be resolved" in p.stderr, p.stderr
    assert "'azureml:my-data@latest'" in p.stderr and "https://example.com/x.csv" in p.stderr
    assert "code asset 'azureml:my-code:3'" in p.stderr and "--artifact code=" not in p.stderr
    assert cli.json("executions") == []  # nothing ran
    cli("assets", "register", "my-data", "src", check=0)
    cli("assets", "register", "my-code", "src", "--version", "3", check=0)
    p = cli("run", "job.yml", check=2)  # one left: reported as itself
    assert p.stderr.startswith("error: input 'e'") and "references" not in p.stderr, p.stderr
    ex = cli.run_json("job.yml", "--artifact", "e=src/x.csv")
    assert ex["status"] == "COMPLETED", json.dumps(ex)[:500]


def test_the_seed_004_body_names_its_code_and_data_assets_together(cli: Cli) -> None:
    shutil.copy(REPO / "workflows" / "azureml" / "seed-004-command.json", cli.tmp / "job.json")
    p = cli("run", "job.json", check=2)
    assert "2 references of job.json cannot be resolved" in p.stderr, p.stderr
    assert "iris-data" in p.stderr and "train-lightgbm" in p.stderr
