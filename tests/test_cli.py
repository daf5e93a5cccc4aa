"""The `ingest` dispatcher: subcommands, usage errors with exit code 2 and no traceback."""

from __future__ import annotations

import pytest

from ingest import __version__
from ingest.cli import main


@pytest.mark.parametrize(
    "command",
    ["run", "emulator", "verify", "loadtest", "loadtest merge x.json", "replay", "spool check d"],
)
def test_unknown_flag_shows_the_subcommands_usage_and_exits_2(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--no-such-flag"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: ingest {command.split()[0]}" in err
    assert "error: unrecognized arguments: --no-such-flag" in err
    assert "Traceback" not in err


def test_missing_or_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["no-such-command"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"ingest {__version__}"
