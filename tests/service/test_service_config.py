"""Configuration: one precedence (flags > env > TOML > defaults), every value validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import ConfigError
from ingest.producer.config import ProducerConfig
from ingest.service.config import ServiceConfig, load_config, redact_url, unknown_env
from ingest.service.keys import KEYS

REPO = Path(__file__).resolve().parents[2]


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ingest.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_when_nothing_is_set() -> None:
    config = load_config({}, {})
    assert config == ServiceConfig()
    assert (config.stream, config.region, config.http_port) == ("aws-ml-cert", "us-east-1", 8080)
    assert config.drain_timeout_s < 30


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    file = write_toml(tmp_path, "rate = 10.0\nstream = 'from-file'\nhttp_port = 9000\n")
    env = {"INGEST_RATE": "20", "INGEST_STREAM": "from-env"}
    config = load_config({"config": file, "rate": "30"}, env)
    assert config.rate == 30.0  # flag
    assert config.stream == "from-env"  # env over file
    assert config.http_port == 9000  # file over default
    assert config.log_level == "info"  # default
    assert config.config_file == Path(file)


def test_config_file_can_come_from_ingest_config(tmp_path: Path) -> None:
    file = write_toml(tmp_path, "count = 7\n")
    assert load_config({}, {"INGEST_CONFIG": file}).count == 7


def test_standard_aws_variables_rank_below_ingest_ones() -> None:
    env = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_FIREHOSE": "http://127.0.0.1:1"}
    config = load_config({}, env)
    assert (config.region, config.endpoint_url) == ("eu-west-1", "http://127.0.0.1:1")
    assert load_config({}, {**env, "INGEST_REGION": "us-west-2"}).region == "us-west-2"
    assert load_config({}, {"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"


def test_empty_environment_variable_counts_as_unset() -> None:
    assert load_config({}, {"INGEST_COUNT": "", "INGEST_RATE": "  "}) == ServiceConfig()


@pytest.mark.parametrize(
    ("flags", "env", "key", "value"),
    [
        ({"rate": "-1"}, {}, "rate", "-1"),
        ({"rate": "fast"}, {}, "rate", "fast"),
        ({}, {"INGEST_HTTP_PORT": "70000"}, "http_port", "70000"),
        ({}, {"INGEST_LOCAL": "maybe"}, "local", "maybe"),
        ({}, {"AWS_REGION": "mars"}, "region", "mars"),
        ({"endpoint_url": "ftp://x"}, {}, "endpoint_url", "ftp://x"),
        ({"log_level": "loud"}, {}, "log_level", "loud"),
        ({"count": "0"}, {}, "count", "0"),
        ({"drain_timeout_s": "0"}, {}, "drain_timeout_s", "0"),
        ({"stream": "a b"}, {}, "stream", "a b"),
        ({"event_size": "2000000"}, {}, "event_size", "2000000"),
        ({"linger_s": "nan"}, {}, "linger_s", "nan"),
        # The producer's own rule, applied at load so the message can name the source.
        ({"request_timeout_s": "0.0005"}, {}, "request_timeout_s", "0.0005"),
        ({}, {"INGEST_MAX_INFLIGHT": "0"}, "max_inflight", "0"),
    ],
)
def test_invalid_value_names_key_value_source_and_allowed(
    flags: dict[str, object], env: dict[str, str], key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(flags, env)
    message = str(caught.value)
    assert message.startswith(f"{key}: invalid value {value!r}")
    assert "expected" in message
    assert ("flag --" in message) if flags else ("environment variable" in message)


def test_invalid_toml_value_names_the_file(tmp_path: Path) -> None:
    file = write_toml(tmp_path, "http_port = 'eighty'\n")
    with pytest.raises(ConfigError, match=r"http_port: invalid value 'eighty' \(from config file"):
        load_config({"config": file}, {})


def test_toml_types_are_strict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="local: invalid value"):
        load_config({"config": write_toml(tmp_path, "local = 'yes'\n")}, {})
    assert load_config({"config": write_toml(tmp_path, "rate = 5\n")}, {}).rate == 5.0


def test_event_size_must_fit_the_queue() -> None:
    with pytest.raises(ConfigError, match=r"^event_size: .*expected event_size <= max_queue_bytes"):
        load_config({"event_size": "5000", "max_queue_bytes": "4000"}, {})


def test_unknown_toml_key_is_refused_with_the_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^ratee: unknown key .* allowed keys: .*rate"):
        load_config({"config": write_toml(tmp_path, "ratee = 1\n")}, {})


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(flag --config\) does not exist"):
        load_config({"config": str(tmp_path / "nope.toml")}, {})
    with pytest.raises(ConfigError, match=r"\(environment variable INGEST_CONFIG\) does not"):
        load_config({}, {"INGEST_CONFIG": str(tmp_path / "nope.toml")})
    with pytest.raises(ConfigError, match=r"^config: cannot read .*expected a UTF-8 TOML file"):
        load_config({"config": str(tmp_path)}, {})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config({"config": write_toml(tmp_path, "rate = = 1\n")}, {})


@pytest.mark.parametrize("profile", ["default", "aws", "compose"])
def test_shipped_profiles_load(profile: str) -> None:
    config = load_config({"config": str(REPO / "config" / f"{profile}.toml")}, {})
    assert config.local is (profile == "default")
    assert config.drain_timeout_s < 30


def test_unknown_ingest_variables_are_reported() -> None:
    env = {"INGEST_RATEE": "1", "INGEST_RATE": "1", "INGEST_CONFIG": "x", "PATH": "/bin"}
    assert unknown_env(env) == ["INGEST_RATEE"]


def test_producer_options_carry_the_knobs_and_the_drain_deadline() -> None:
    config = load_config({"linger_s": "0.05", "max_inflight": "4"}, {})
    options = config.producer_options()
    assert (options["linger_s"], options["max_inflight"]) == (0.05, 4)
    assert options["close_timeout_s"] == config.drain_timeout_s
    # Everything else is the producer's own default, so the two stay in step.
    producer = ProducerConfig(**options)  # type: ignore[arg-type]
    assert producer.max_queue_records == ProducerConfig().max_queue_records


def test_urls_lose_credentials_when_redacted() -> None:
    url = "https://user:s3cr3t-pass@firehose.example:8443/p?X-Amz-Security-Token=tok"
    redacted = redact_url(url)
    assert "s3cr3t-pass" not in redacted
    assert "tok" not in redacted
    assert "user" not in redacted
    assert redacted.startswith("https://***@firehose.example:8443/p")
    assert redact_url("http://127.0.0.1:4573") == "http://127.0.0.1:4573"
    # Even URLs urllib cannot parse lose what could be a credential.
    assert redact_url("http://u:pw@h:99999/?t=tok") == "http://***@h:99999/?***"
    assert redact_url("http://u:pw@[::1/x") == "http://***@[::1/x"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t-pass@firehose.example/p",
        "https://firehose.example/?X-Amz-Security-Token=s3cr3t-pass",
        "https://firehose.example/#s3cr3t-pass",
        "http://user:s3cr3t-pass@127.0.0.1:99999",
        "http://127.0.0.1:99999",
        "http://[::1",
    ],
)
def test_endpoint_url_with_a_credential_or_a_bad_port_is_refused_without_echo(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^endpoint_url: invalid value") as caught:
        load_config({"endpoint_url": url}, {})
    assert "s3cr3t-pass" not in str(caught.value)


def test_empty_path_is_refused_not_taken_for_the_current_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^local_data_dir: invalid value ''"):
        load_config({"local_data_dir": ""}, {})
    with pytest.raises(ConfigError, match=r"^local_data_dir: invalid value ''"):
        load_config({"config": write_toml(tmp_path, "local_data_dir = ''\n")}, {})
    assert load_config({}, {"INGEST_LOCAL_DATA_DIR": ""}).local_data_dir is None  # env: unset


def test_every_key_has_flag_env_and_dataclass_field() -> None:
    fields = set(ServiceConfig.__dataclass_fields__)
    for key in KEYS:
        assert key.name in fields
        assert key.env == "INGEST_" + key.name.upper()
        assert key.flag.startswith("--")
        assert not key.flag.endswith("-s") or key.flag.endswith("-per-s")
        assert getattr(ServiceConfig(), key.name) == key.default


@given(st.integers(min_value=-(2**20), max_value=2**20))
def test_http_port_accepted_exactly_in_range(port: int) -> None:
    if 0 <= port <= 65535:
        assert load_config({"http_port": str(port)}, {}).http_port == port
    else:
        with pytest.raises(ConfigError, match=r"^http_port: "):
            load_config({"http_port": str(port)}, {})


def test_debug_level_turns_on_the_producers_per_request_lines() -> None:
    assert load_config({}, {}).producer_options()["log_requests"] is False
    debug = load_config({"log_level": "debug"}, {})
    assert debug.producer_options()["log_requests"] is True
