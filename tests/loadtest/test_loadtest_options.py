"""Bad options exit 2 with one line naming the option; configuration layers are the service's."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from ingest.cli import build_parser, main
from ingest.errors import ConfigError
from ingest.loadtest.profile import Profile
from ingest.loadtest.settings import ALL_KEYS, load_loadtest_config
from ingest.service.cli import flags_from_args


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--rate", "-5"], ["rate", "--rate", "-5"]),
        (["--profile", "ramp", "--duration", "5"], ["ramp_to", "--ramp-to"]),
        (["--profile", "zigzag"], ["profile", "--profile", "zigzag", "constant, ramp, steps"]),
        (["--profile", "steps", "--duration", "5"], ["step", "--step"]),
        (["--fleet-size", "3", "--fleet-index", "3", "--test-id", "t"],
         ["fleet_index", "--fleet-index", "3", "--fleet-size 3"]),
        (["--hold", "0", "--find-max"], ["hold_s", "--hold", "0"]),
        (["--fleet-size", "2", "--test-id", "t"], ["fleet_index", "JOB_COMPLETION_INDEX"]),
        (["--html", "/nonexistent-dir/x.html"], ["html", "--html", "/nonexistent-dir/x.html"]),
    ],
)  # fmt: skip
def test_bad_options_exit_2_naming_the_option(
    argv: list[str], names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["loadtest", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ingest loadtest: configuration error: ")
    assert err.count("\n") == 1  # one line, no traceback
    for name in names:
        assert name in err


def test_an_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["loadtest", "--rampto", "5"])
    assert exit_info.value.code == 2
    assert "--rampto" in capsys.readouterr().err


def test_unreadable_reports_make_merge_exit_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    assert main(["loadtest", "merge", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    assert main(["loadtest", "merge", str(garbage)]) == 2
    assert str(garbage) in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"runs": []}), encoding="utf-8")
    assert main(["loadtest", "merge", str(other)]) == 2
    assert str(other) in capsys.readouterr().err


def test_precedence_is_flags_then_environment_then_toml(tmp_path: Path) -> None:
    toml = tmp_path / "lt.toml"
    toml.write_text('profile = "steps"\nstep = 10.0\nrate = 50.0\nhold_s = 3.0\n', encoding="utf-8")
    env = {"INGEST_CONFIG": str(toml), "INGEST_STEP": "20", "JOB_COMPLETION_INDEX": "1"}
    flags = {"rate": "80", "fleet_size": "2", "test_id": "lt"}
    config, settings = load_loadtest_config(flags, env)
    assert settings.profile == "steps"  # TOML
    assert settings.hold_s == 3.0  # TOML
    assert settings.step == 10.0  # environment (20) shared by the fleet of 2
    assert config.rate == 40.0  # flag (80) shared by the fleet of 2
    assert settings.fleet_index == 1  # JOB_COMPLETION_INDEX
    assert config.run_id == "lt-1"
    with pytest.raises(ConfigError, match="fleet_index"):
        load_loadtest_config({**flags, "fleet_index": "2"}, env)


def test_count_is_split_across_the_fleet_without_losing_events() -> None:
    counts = []
    for index in range(3):
        flags = {"count": "10", "fleet_size": "3", "fleet_index": str(index), "test_id": "c"}
        config, _ = load_loadtest_config(flags, {})
        counts.append(config.count)
    assert counts == [4, 3, 3]


def test_profiles_integrate_their_rates() -> None:
    ramp = Profile("ramp", 100.0, ramp_to=300.0, ramp_s=10.0)
    assert ramp.rate_at(5.0) == 200.0
    assert ramp.due(10.0) == pytest.approx(2000.0)
    assert ramp.due(12.0) == pytest.approx(2600.0)
    steps = Profile("steps", 100.0, step=50.0, step_every_s=2.0, ramp_to=180.0)
    assert [steps.rate_at(t) for t in (0, 2, 4, 6)] == [100.0, 150.0, 180.0, 180.0]
    assert steps.due(5.0) == pytest.approx(100 * 2 + 150 * 2 + 180 * 1)
    assert steps.due(8.0) == pytest.approx(100 * 2 + 150 * 2 + 180 * 4)


def test_readme_loadtest_examples_are_valid_configurations() -> None:
    """Every `ingest loadtest` line of the README's "Load testing" section parses and loads."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Load testing", 1)[1].split("\n## ", 1)[0]
    lines = [
        line.split("  #", 1)[0].replace("$i", "1").strip()
        for line in section.splitlines()
        if ".venv/bin/ingest loadtest " in line and " merge " not in line
    ]
    assert len(lines) >= 5
    for line in lines:
        argv = shlex.split(line[line.index("ingest loadtest ") + len("ingest ") :].rstrip("&"))
        args, unknown = build_parser().parse_known_args(argv)
        assert not unknown, line
        load_loadtest_config(flags_from_args(args, ALL_KEYS), {})
