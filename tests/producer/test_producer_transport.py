"""TLS and proxies on the data path, as botocore applies them to the Describe call.

For real: trustme makes a CA and a certificate for 127.0.0.1, the emulator serves HTTPS with it
(`ingest emulator --tls-cert/--tls-key` in its own process, or in-process), and proxy.py, an
HTTP CONNECT proxy from PyPI, runs on 127.0.0.1 in another process. Its access log (one line per
tunnel, written when the tunnel closes) shows which connections went through it. The producer's
network path is not patched anywhere: only the environment botocore reads is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from ingest import (
    ConfigError,
    EventGenerator,
    FirehoseConnectionError,
    Producer,
    RecordFailedError,
    TlsError,
)
from ingest.emulator import Emulator
from ingest.firehose.client import FirehoseClient
from tests.conftest import free_port

STREAM = "aws-ml-cert"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that signed the emulator's certificate
    wrong_ca: Path  # another CA: trusting only it must fail
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    out = tmp_path_factory.mktemp("pki")
    ca, wrong = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(out / "ca.pem"))
    wrong.cert_pem.write_to_path(str(out / "wrong-ca.pem"))
    server.private_key_pem.write_to_path(str(out / "key.pem"))
    server.cert_chain_pems[0].write_to_path(str(out / "cert.pem"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(out / "cert.pem"), append=True)
    return Pki(out / "ca.pem", out / "wrong-ca.pem", out / "cert.pem", out / "key.pem")


PROXY_USER, PROXY_PASSWORD = "ingest", "s3cret-pw"


@dataclass(frozen=True)
class Proxy:
    url: str  # with user info: the proxy wants Basic authentication
    log: Path

    @property
    def bare_url(self) -> str:
        return self.url.replace(f"{PROXY_USER}:{PROXY_PASSWORD}@", "")

    def forwarded_posts_to(self, port: int) -> int:
        """Plain-HTTP requests the proxy forwarded to 127.0.0.1:`port` (logged on close)."""
        text = self.log.read_text("utf-8", "replace")
        return len(re.findall(rf" - POST 127\.0\.0\.1:{port}/ - 200 ", text))

    def tunnels_to(self, port: int) -> list[int]:
        """Bytes carried by each closed CONNECT tunnel to 127.0.0.1:`port`, in log order."""
        text = self.log.read_text("utf-8", "replace")
        pattern = rf" - CONNECT 127\.0\.0\.1:{port} - (\d+) bytes"
        return [int(n) for n in re.findall(pattern, text)]

    async def wait_tunnels(self, port: int, count: int, timeout_s: float = 10.0) -> list[int]:
        """The tunnels to `port` once at least `count` were logged (tunnels log on close)."""
        deadline = time.monotonic() + timeout_s
        found = self.tunnels_to(port)
        for _ in range(int(timeout_s / 0.05)):  # a log file gives nothing to wait on but time
            if len(found) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
            found = self.tunnels_to(port)
        return found


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """proxy.py on 127.0.0.1 in its own process, asking for Basic authentication and logging
    every tunnel."""
    port = free_port()
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", str(port),
             "--num-workers", "1", "--num-acceptors", "1", "--log-level", "INFO",
             "--basic-auth", f"{PROXY_USER}:{PROXY_PASSWORD}"],
            stdout=sink, stderr=subprocess.STDOUT, env=_without_proxies(os.environ),
        )  # fmt: skip
    try:
        _wait_listening(port, process)
        yield Proxy(f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _without_proxies(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in PROXY_VARIABLES}


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy.py exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("proxy.py did not start listening")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variables from the machine; each test sets what it tries."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def tls_emulator(pki: Pki, tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(data_dir=tmp_path / "data", tls_cert=pki.cert, tls_key=pki.key) as running:
        yield running


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


async def describe_and_put(client: FirehoseClient, records: list[bytes]) -> None:
    """One DescribeDeliveryStream (botocore's pool), then one PutRecordBatch (ours)."""
    async with client:
        described = await client.describe_stream()
        assert described.name == STREAM
        result = await client.put_record_batch(records)
        assert result.failed_put_count == 0


@dataclass
class EmulatorProcess:
    port: int
    data_dir: Path
    process: subprocess.Popen[str]

    def stop(self) -> int:
        """SIGTERM (flushes buffered records to files); the exit code."""
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=20)
        return self.process.returncode


@pytest.fixture
def emulator_process(pki: Pki, tmp_path: Path) -> Iterator[EmulatorProcess]:
    """`ingest emulator --tls-cert/--tls-key` in its own process, once it said it listens."""
    port = free_port()
    data = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest", "emulator", "--port", str(port), "--data-dir",
         str(data), "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=_without_proxies(os.environ),
    )  # fmt: skip
    running = EmulatorProcess(port, data, process)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().strip()
        assert ready == f"emulator listening on https://127.0.0.1:{port}", ready
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


async def test_describe_and_put_go_through_the_https_proxy_and_trust_aws_ca_bundle(
    pki: Pki, proxy: Proxy, env: pytest.MonkeyPatch, emulator_process: EmulatorProcess
) -> None:
    """HTTPS_PROXY and AWS_CA_BUNDLE from the environment, the emulator in its own process. The
    machine's REQUESTS_CA_BUNDLE (if any) does not trust our CA: AWS_CA_BUNDLE outranks it, for
    both calls."""
    env.setenv("AWS_CA_BUNDLE", str(pki.ca))
    env.setenv("HTTPS_PROXY", proxy.url)
    port = emulator_process.port
    events = EventGenerator().batch(50)
    async with Producer(STREAM, endpoint_url=f"https://127.0.0.1:{port}") as producer:
        await producer.check_target()  # DescribeDeliveryStream
        failed = await (await producer.put_many(events)).wait()
    assert failed == []
    assert producer.stats().records_delivered == 50
    assert emulator_process.stop() == 0
    files = [p for p in emulator_process.data_dir.rglob("*") if p.is_file()]
    assert b"".join(p.read_bytes() for p in files).count(b"\n") == 50
    # Two pools, two tunnels: botocore's (Describe) and the data path's (PutRecordBatch).
    tunnels = await proxy.wait_tunnels(port, 2)
    assert len(tunnels) == 2, tunnels
    assert all(carried > 0 for carried in tunnels), tunnels


async def test_botocore_proxies_config_is_used_by_both_calls(
    pki: Pki, proxy: Proxy, env: pytest.MonkeyPatch, tls_emulator: Emulator
) -> None:
    env.setenv("AWS_CA_BUNDLE", str(pki.ca))
    client = FirehoseClient(
        STREAM,
        region="us-east-1",
        endpoint_url=tls_emulator.endpoint_url,
        proxies={"https": proxy.url},
    )
    await describe_and_put(client, [b'{"a":1}\n'])
    # The password travels in botocore's Proxy-Authorization header, never in a logged URL.
    assert client.transport.proxy == proxy.bare_url
    assert client.transport.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    assert PROXY_PASSWORD not in client.transport.describe()
    assert client.transport.ca_bundle == str(pki.ca)
    assert len(await proxy.wait_tunnels(port_of(tls_emulator.endpoint_url), 2)) == 2
    assert len(tls_emulator.stored_records(STREAM)) == 1


async def test_no_proxy_sends_both_calls_direct(
    pki: Pki, proxy: Proxy, env: pytest.MonkeyPatch, tls_emulator: Emulator
) -> None:
    env.setenv("AWS_CA_BUNDLE", str(pki.ca))
    env.setenv("HTTPS_PROXY", proxy.url)
    env.setenv("NO_PROXY", "localhost,127.0.0.1")
    client = FirehoseClient(STREAM, region="us-east-1", endpoint_url=tls_emulator.endpoint_url)
    await describe_and_put(client, [b'{"a":1}\n', b'{"a":2}\n'])
    assert client.transport.proxy is None
    assert len(tls_emulator.stored_records(STREAM)) == 2
    await asyncio.sleep(0.3)  # a tunnel would have been logged when the client closed it
    assert proxy.tunnels_to(port_of(tls_emulator.endpoint_url)) == []


@pytest.mark.parametrize("via_proxy", [False, True])
async def test_an_untrusted_certificate_is_a_fatal_tls_error_for_both_calls(
    pki: Pki, proxy: Proxy, env: pytest.MonkeyPatch, tls_emulator: Emulator, via_proxy: bool
) -> None:
    env.setenv("AWS_CA_BUNDLE", str(pki.wrong_ca))
    if via_proxy:
        env.setenv("HTTPS_PROXY", proxy.url)
    async with FirehoseClient(
        STREAM, region="us-east-1", endpoint_url=tls_emulator.endpoint_url
    ) as client:
        with pytest.raises(TlsError) as described:
            await client.describe_stream()
        with pytest.raises(TlsError) as put:
            await client.put_record_batch([b'{"a":1}\n'])
    for error in (described.value, put.value):
        assert error.fatal
        assert not error.retriable
        assert error.reason == "tls"
        assert "certificate verify failed" in str(error)
        assert f"CA bundle {pki.wrong_ca}" in str(error)  # says what was trusted
    assert tls_emulator.stored_records(STREAM) == []


async def test_the_producer_stops_at_once_on_an_untrusted_certificate(
    pki: Pki, env: pytest.MonkeyPatch, tls_emulator: Emulator
) -> None:
    """Not retried until the record deadline: the receipt fails with reason tls at once."""
    env.setenv("AWS_CA_BUNDLE", str(pki.wrong_ca))
    started = time.monotonic()
    async with Producer(STREAM, endpoint_url=tls_emulator.endpoint_url) as producer:
        receipt = await producer.put(b'{"a":1}\n')
        with pytest.raises(RecordFailedError) as failure:
            await receipt
    assert failure.value.reason == "tls"
    assert "certificate verify failed" in str(failure.value)
    assert failure.value.attempts == 1
    assert producer.stats().records_failed.get("tls") == 1
    assert time.monotonic() - started < 10  # the default record deadline is 120 s


async def test_verify_false_skips_the_certificate_check(
    pki: Pki, env: pytest.MonkeyPatch, tls_emulator: Emulator
) -> None:
    env.setenv("AWS_CA_BUNDLE", str(pki.wrong_ca))
    client = FirehoseClient(
        STREAM, region="us-east-1", endpoint_url=tls_emulator.endpoint_url, verify=False
    )
    await describe_and_put(client, [b'{"a":1}\n'])
    assert client.transport.verify is False
    async with Producer(STREAM, endpoint_url=tls_emulator.endpoint_url, verify=False) as producer:
        await producer.check_target()
        assert await (await producer.put_many([b'{"a":2}\n'])).wait() == []
    assert len(tls_emulator.stored_records(STREAM)) == 2


async def test_a_missing_ca_bundle_is_a_configuration_error(
    env: pytest.MonkeyPatch, tls_emulator: Emulator, tmp_path: Path
) -> None:
    env.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    client = FirehoseClient(STREAM, region="us-east-1", endpoint_url=tls_emulator.endpoint_url)
    with pytest.raises(ConfigError, match=r"ca_bundle: cannot use '.*missing\.pem': No such file"):
        await client.start()


def ingest_run(endpoint: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest", "run", "--endpoint-url", endpoint, "--count", "200",
         "--rate", "0", "--http-port", "0", "--log-format", "json", "--spool-dir",
         env["SPOOL"], *flags],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


async def test_ingest_run_follows_the_same_settings_and_says_what_to_fix(
    pki: Pki, proxy: Proxy, emulator_process: EmulatorProcess, tmp_path: Path
) -> None:
    """The service as a process: through the proxy with the right CA, every event delivered;
    with a CA that did not sign the endpoint's certificate, exit 1 at once with a hint."""
    endpoint = f"https://127.0.0.1:{emulator_process.port}"
    env = {
        **_without_proxies(os.environ),
        "AWS_CA_BUNDLE": str(pki.ca),
        "HTTPS_PROXY": proxy.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SPOOL": str(tmp_path / "spool"),
    }
    ok = await asyncio.to_thread(ingest_run, endpoint, env)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["delivered"] == 200, summary
    assert len(await proxy.wait_tunnels(emulator_process.port, 2)) >= 2

    bad = await asyncio.to_thread(ingest_run, endpoint, {**env, "AWS_CA_BUNDLE": str(pki.wrong_ca)})
    assert bad.returncode == 1
    unusable = [json.loads(line) for line in bad.stderr.splitlines() if "target_unusable" in line]
    assert unusable, bad.stderr
    assert unusable[0]["reason"] == "tls"
    assert "certificate verify failed" in unusable[0]["error"]
    assert "AWS_CA_BUNDLE" in unusable[0]["hint"]
    assert "Traceback" not in bad.stderr


async def test_http_proxy_forwards_plain_http_for_both_calls(
    proxy: Proxy, env: pytest.MonkeyPatch, emulator: Emulator
) -> None:
    """An http:// endpoint goes through HTTP_PROXY as forwarded requests (no tunnel)."""
    env.setenv("HTTP_PROXY", proxy.url)
    client = FirehoseClient(STREAM, region="us-east-1", endpoint_url=emulator.endpoint_url)
    await describe_and_put(client, [b'{"a":1}\n'])
    port = port_of(emulator.endpoint_url)
    for _ in range(100):  # the proxy logs a request when its connection closes
        if proxy.forwarded_posts_to(port) >= 2:
            break
        await asyncio.sleep(0.05)
    assert proxy.forwarded_posts_to(port) == 2  # DescribeDeliveryStream and PutRecordBatch
    assert len(emulator.stored_records(STREAM)) == 1


async def test_a_refused_proxy_is_a_connection_error_naming_it(
    pki: Pki, proxy: Proxy, env: pytest.MonkeyPatch, tls_emulator: Emulator
) -> None:
    """Wrong proxy password: 407 to CONNECT; nothing reached the endpoint, no secret shown."""
    env.setenv("AWS_CA_BUNDLE", str(pki.ca))
    env.setenv("HTTPS_PROXY", proxy.url.replace(PROXY_PASSWORD, "wrong"))
    async with FirehoseClient(
        STREAM, region="us-east-1", endpoint_url=tls_emulator.endpoint_url
    ) as client:
        with pytest.raises(FirehoseConnectionError) as refused:
            await client.put_record_batch([b'{"a":1}\n'])
    assert refused.value.code == "ProxyRefused"
    assert refused.value.status == 407
    assert not refused.value.ambiguous  # the endpoint was never reached
    assert proxy.bare_url in str(refused.value)
    assert "wrong" not in str(refused.value)
    assert tls_emulator.stored_records(STREAM) == []


async def test_the_profile_ca_bundle_is_used_by_both_calls(
    pki: Pki, env: pytest.MonkeyPatch, tls_emulator: Emulator, tmp_path: Path
) -> None:
    """No AWS_CA_BUNDLE: the profile's ca_bundle (AWS_CONFIG_FILE) outranks REQUESTS_CA_BUNDLE."""
    env.delenv("AWS_CA_BUNDLE", raising=False)
    env.setenv("REQUESTS_CA_BUNDLE", str(pki.wrong_ca))
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nca_bundle = {pki.ca}\n", encoding="utf-8")
    env.setenv("AWS_CONFIG_FILE", str(config))
    client = FirehoseClient(STREAM, region="us-east-1", endpoint_url=tls_emulator.endpoint_url)
    await describe_and_put(client, [b'{"a":1}\n'])
    assert client.transport.ca_bundle == str(pki.ca)
    assert len(tls_emulator.stored_records(STREAM)) == 1


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("AWS_USE_FIPS_ENDPOINT", "https://firehose-fips.us-east-1.amazonaws.com"),
        ("AWS_USE_DUALSTACK_ENDPOINT", "https://firehose.us-east-1.api.aws"),
    ],
)
async def test_fips_and_dual_stack_endpoints_come_from_botocore_for_both_calls(
    env: pytest.MonkeyPatch, variable: str, expected: str
) -> None:
    """No request is sent: starting the client resolves the endpoint, and PutRecordBatch is
    posted to the URL botocore resolved for DescribeDeliveryStream."""
    env.delenv("AWS_ENDPOINT_URL", raising=False)
    env.delenv("AWS_ENDPOINT_URL_FIREHOSE", raising=False)
    env.setenv(variable, "true")
    async with FirehoseClient(STREAM, region="us-east-1") as client:
        assert client.endpoint_url == expected
        assert client._url == expected + "/"  # where put_record_batch posts


@pytest.mark.parametrize("how", ["--no-verify-ssl", "INGEST_VERIFY_SSL=false"])
async def test_ingest_run_with_no_verify_ssl_sends_despite_an_untrusted_certificate(
    pki: Pki, emulator_process: EmulatorProcess, tmp_path: Path, how: str
) -> None:
    """As the AWS CLI's flag: both calls skip the certificate check, and the log says so."""
    env = {
        **_without_proxies(os.environ),
        "AWS_CA_BUNDLE": str(pki.wrong_ca),  # would fail the run (see the test above)
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SPOOL": str(tmp_path / "spool"),
    }
    flags: tuple[str, ...] = ()
    if how.startswith("--"):
        flags = (how,)
    else:
        name, value = how.split("=")
        env[name] = value
    endpoint = f"https://127.0.0.1:{emulator_process.port}"
    done = await asyncio.to_thread(ingest_run, endpoint, env, *flags)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["delivered"] == 200
    lines = done.stderr.splitlines()
    warned = [json.loads(line) for line in lines if "tls_verification_off" in line]
    assert len(warned) == 1
    assert warned[0]["endpoint"] == endpoint
