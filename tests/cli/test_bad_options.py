"""Bad option values and awkward file names through the real CLI: one clear error line and exit
2 before any work starts, and output that never crashes on a file name that is not UTF-8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.cli.test_cli import _model_cached, run_cli  # noqa: F401  (the model is prebuilt)
from tests.datasets import write_digits_dataset

NOT_UTF8_NAME = b"caf\xe9.png"  # Latin-1 "café.png": not valid UTF-8


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    write_digits_dataset(folder, per_class=6, classes=range(2), size=28)
    return folder


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--seed", "-1", "at least 0"),
        ("--seed", str(2**32), "at most 4294967295"),
        ("--lr", "nan", "finite"),
        ("--lr", "inf", "finite"),
        ("--lr", "0", "above 0"),
        ("--lr", "-0.01", "above 0"),
        ("--lr", "fast", "not a number"),
        ("--epochs", "0", "at least 1"),
        ("--batch-size", "0", "at least 1"),
        ("--batch-size", "1000000", "at most 4096"),
        ("--val-split", "0", "between 0 and 1"),
        ("--val-split", "1", "between 0 and 1"),
        ("--val-split", "nan", "finite"),
        ("--img-size", "4", "at least 8"),
        ("--img-size", "100000", "at most 1024"),
    ],
)
def test_bad_train_option_is_one_error_line_and_nothing_is_trained(
    tiny_digits: Path, tmp_path: Path, option: str, value: str, says: str
) -> None:
    out = tmp_path / "model"
    result = run_cli(
        "train", tiny_digits, "--out", out, "--mode", "scratch", "--arch", "lenet5",
        "--epochs", "1", "--quiet", f"{option}={value}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert option in errors[0] and says in errors[0], errors[0]
    assert not any(tmp_path.iterdir()), "nothing may be written for a bad option"


@pytest.mark.parametrize(
    ("option", "value"), [("--batch-size", "0"), ("--batch-size", "99999"), ("--top-k", "-3")]
)
def test_bad_classify_option_is_a_usage_error(photos, option: str, value: str) -> None:
    result = run_cli("classify", photos["chelsea"], f"{option}={value}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"argument {option}:" in result.stderr
    assert result.stdout == ""


# --------------------------------------------------------------------------- non-UTF-8 names


@pytest.fixture
def latin1_named_image(tmp_path: Path) -> Path:
    """A real PNG whose file name is not valid UTF-8 (possible on Linux)."""
    folder = tmp_path / "tabby"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/" + NOT_UTF8_NAME
    Image.new("RGB", (96, 64), (180, 120, 60)).save(raw, format="PNG")
    (path,) = folder.iterdir()
    assert os.fsencode(path) == raw
    return path


def _strict_utf8_env() -> dict[str, str]:
    """Output encoded strictly, as in an en_US.UTF-8 terminal (not surrogateescape)."""
    return {"PYTHONIOENCODING": "utf-8"}


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_file_name_that_is_not_utf8_is_printed_in_every_format(
    latin1_named_image: Path, fmt: str
) -> None:
    for env in ({}, _strict_utf8_env()):
        result = run_cli(
            "classify", latin1_named_image, "--format", fmt, "--top-k", "2", env=env, raw=True
        )
        assert result.returncode == 0, result.stderr
        assert b"Traceback" not in result.stderr
        text = result.stdout.decode("utf-8")  # the output is valid UTF-8 whatever the name
        assert "caf\\udce9.png" in text
        if fmt == "json":
            (record,) = [json.loads(line) for line in text.splitlines()]
            assert os.fsencode(record["path"]) == os.fsencode(latin1_named_image)
            assert len(record["predictions"]) == 2


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_evaluate_lists_a_file_name_that_is_not_utf8(latin1_named_image: Path, fmt: str) -> None:
    from cnn_desktop.core.models.pretrained import cached_bundle_path

    data = latin1_named_image.parent.parent
    result = run_cli(
        "evaluate", cached_bundle_path(), data, "--format", fmt, env=_strict_utf8_env(), raw=True
    )
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    text = result.stdout.decode("utf-8")
    if fmt == "json":
        report = json.loads(text)
        assert [os.fsencode(m["path"]) for m in report["misclassified"]] == [
            os.fsencode(latin1_named_image)
        ]
    else:
        assert "caf\\udce9.png: tabby predicted as" in text


def test_onnx_runtime_telemetry_is_off_and_silent_with_a_read_only_home(photos) -> None:
    # ONNX Runtime 1.29+ sends usage telemetry unless told not to, and warns on stderr when it
    # cannot save a device ID; cnn-desktop runs locally and keeps stderr for its own lines.
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    probe = (
        "import os, sys; from cnn_desktop.cli import main; "
        "code = main(sys.argv[1:]); print('TELEMETRY', os.environ.get('ORT_DISABLE_TELEMETRY'));"
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "classify", str(photos["chelsea"]), "--format", "json"],
        env={**env, "HOME": "/proc/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "TELEMETRY 1" in done.stdout
    assert "telemetry" not in done.stderr.lower()
