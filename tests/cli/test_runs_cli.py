"""Every ``train`` recorded, and ``cnn-desktop runs list|show|compare|rerun|delete`` on the
records, through the real CLI in a subprocess with a run store in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.processes import run_python


def cli(env: dict[str, str], *args: str | Path):
    return run_python("-m", "cnn_desktop", *args, env=env)


def train(env: dict[str, str], data: Path, out: Path, *options: str) -> str:
    """Train a head model; the id of the run it recorded."""
    done = cli(env, "train", data, "--out", out, "--quiet", *options)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("Recorded as run "))
    return line.split()[3]


def runs(env: dict[str, str], *args: str) -> list | dict:
    done = cli(env, "runs", *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_train_is_recorded_with_what_it_needs_to_be_repeated(runs_env, digits, tmp_path):
    run_id = train(runs_env, digits, tmp_path / "model", "--epochs", "3", "--seed", "7")
    [row] = runs(runs_env, "list")
    assert row["id"] == run_id and row["status"] == "finished" and row["mode"] == "head"
    assert row["data"] == str(digits.resolve()) and row["bundle"].endswith("model.cnnmodel")
    assert row["params"]["epochs"] == 3 and row["params"]["seed"] == 7
    record = runs(runs_env, "show", run_id[:12])  # a unique start of the id will do
    assert record["config"]["lr"] == 0.003 and record["config"]["augment"] == []
    assert record["data"]["images"] == 60 and record["data"]["classes"] == {"0": 0, "1": 1, "2": 2}
    assert record["data"]["split"]["train"] + record["data"]["split"]["val"] == 60
    assert {"cnn_desktop", "python", "torch", "onnxruntime", "numpy"} <= set(record["versions"])
    assert record["device"] and record["world_size"] == 1
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3]
    metrics = json.loads((tmp_path / "model.cnnmodel" / "metrics.json").read_text())
    assert record["metrics"]["val_accuracy"] == metrics["training"]["best_val_accuracy"]
    assert record["started_at"] <= record["ended_at"] and record["duration_s"] > 0


def test_compare_shows_what_differs_and_the_results_side_by_side(runs_env, digits, tmp_path):
    first = train(runs_env, digits, tmp_path / "a", "--epochs", "2")
    second = train(runs_env, digits, tmp_path / "b", "--epochs", "3", "--lr", "0.01")
    comparison = runs(runs_env, "compare", first, second)
    assert comparison["runs"] == [first, second]
    assert comparison["config"] == {"epochs": [2, 3], "lr": [0.003, 0.01]}
    assert comparison["data"] == {}  # the same data
    assert comparison["results"]["epochs_run"] == [2, 3]
    table = cli(runs_env, "runs", "compare", first, second)
    assert table.returncode == 0
    assert "Identical: data" in table.stdout and "lr" in table.stdout


@pytest.mark.parametrize(
    "mode", [["--mode", "head"], ["--mode", "scratch", "--arch", "lenet5"]], ids=["head", "scratch"]
)
def test_a_rerun_repeats_the_run_exactly_on_the_cpu(runs_env, digits, tmp_path, mode):
    original = train(
        runs_env, digits, tmp_path / "model", "--epochs", "3", "--device", "cpu", *mode
    )
    done = cli(runs_env, "runs", "rerun", original, "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "model-rerun.cnnmodel").is_dir()  # beside, never over, the original
    rerun = next(r for r in runs(runs_env, "list") if r["id"] != original)
    first, second = runs(runs_env, "show", original), runs(runs_env, "show", rerun["id"])
    assert second["tags"] == {"rerun_of": original}
    assert second["config"] == first["config"]
    assert second["data"]["fingerprint"] == first["data"]["fingerprint"]
    assert second["history"] == first["history"]
    drop = ("train_seconds",)
    assert {k: v for k, v in second["metrics"].items() if k not in drop} == {
        k: v for k, v in first["metrics"].items() if k not in drop
    }


def test_a_rerun_refuses_changed_data_and_says_what_changed(runs_env, digits, tmp_path):
    original = train(runs_env, digits, tmp_path / "model", "--epochs", "2")
    Image.new("L", (28, 28), 200).save(digits / "1" / "new_one.png")
    (digits / "2" / "2_000.png").unlink()
    done = cli(runs_env, "runs", "rerun", original)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"cnn-desktop: error: the data in {digits.resolve()} has changed ")
    assert "1 file added (1/new_one.png)" in error and "1 file removed (2/2_000.png)" in error
    assert not (tmp_path / "model-rerun.cnnmodel").exists()
    assert [r["id"] for r in runs(runs_env, "list")] == [original]  # a refused re-run is no run


def test_delete_removes_the_record_and_the_model_only_when_asked(runs_env, digits, tmp_path):
    first = train(runs_env, digits, tmp_path / "a", "--epochs", "1")
    second = train(runs_env, digits, tmp_path / "b", "--epochs", "1")
    assert runs(runs_env, "delete", first) == {"deleted": first, "bundle_deleted": None}
    assert (tmp_path / "a.cnnmodel").is_dir()
    deleted = runs(runs_env, "delete", second[:15], "--with-bundle")
    assert deleted["bundle_deleted"] == str(tmp_path / "b.cnnmodel")
    assert not (tmp_path / "b.cnnmodel").exists() and runs(runs_env, "list") == []
    missing = cli(runs_env, "runs", "show", first)
    assert missing.returncode == 2 and f"no run '{first}'" in missing.stderr


def test_a_corrupt_record_is_reported_and_set_aside_never_dropped(runs_env, digits, tmp_path):
    good = train(runs_env, digits, tmp_path / "a", "--epochs", "1")
    broken = Path(runs_env["CNN_DESKTOP_RUNS_DIR"]) / "20250101-000000-abcdef"
    broken.mkdir()
    (broken / "run.json").write_text('{"id": "20250101-000000-abcdef", "status": "fini')
    done = cli(runs_env, "runs", "list", "--format", "json")
    assert done.returncode == 0
    assert [r["id"] for r in json.loads(done.stdout)] == [good]
    assert "run record 20250101-000000-abcdef is unreadable" in done.stderr
    [aside] = (Path(runs_env["CNN_DESKTOP_RUNS_DIR"]) / ".set-aside").iterdir()
    assert (aside / "run.json").read_text().endswith('"fini')  # kept as it was
    assert not broken.exists()


def test_a_store_that_cannot_be_written_does_not_stop_training(digits, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    done = cli({"CNN_DESKTOP_RUNS_DIR": str(blocker)}, "train", digits, "--out", tmp_path / "m")
    assert done.returncode == 0, done.stderr
    assert "warning: this run is not recorded: the run store" in done.stderr
    assert (tmp_path / "m.cnnmodel").is_dir()


def test_an_unreachable_tracking_server_does_not_stop_training(runs_env, digits, tmp_path):
    done = cli(
        {**runs_env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
        "train", digits, "--out", tmp_path / "m", "--epochs", "2", "--quiet",
        "--tracking-uri", "http://127.0.0.1:9",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the tracking store cannot be reached" in done.stderr
    assert "this run is recorded locally only (tracking store http://127.0.0.1:9)" in done.stderr
    [row] = runs(runs_env, "list")
    record = runs(runs_env, "show", row["id"])
    assert record["status"] == "finished" and record["tracking"]["run_id"] is None
    assert record["tracking"]["error"].startswith("the tracking store cannot be reached")


def test_mlflow_sees_the_run_with_params_metrics_tags_and_the_model(runs_env, digits, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = train(runs_env, digits, tmp_path / "m", "--epochs", "3", "--tracking-uri", uri)
    record = runs(runs_env, "show", run_id)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cnn-desktop")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == record["tracking"]["run_id"] and run.info.status == "FINISHED"
    assert run.data.params["mode"] == "head" and run.data.params["epochs"] == "3"
    assert run.data.tags["data_fingerprint"] == record["data"]["fingerprint"]
    assert run.data.tags["cnn_desktop.run_id"] == run_id
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == [row["val_accuracy"] for row in record["history"]]
    files = {f.path for f in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.onnx", "model/model.json", "model/metrics.json"} <= files
    assert (tmp_path / "mlartifacts").is_dir()  # beside the database, not in the working folder


def test_a_bad_run_id_is_one_clear_line(runs_env):
    for args in (("show", "nope"), ("rerun", "../x"), ("compare", "a")):
        done = cli(runs_env, "runs", *args)
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("cnn-desktop: error: ")
