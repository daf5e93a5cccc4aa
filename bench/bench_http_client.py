"""CPU per PutRecordBatch request: aiohttp (the old data path) vs `ingest.firehose.http1`.

Both clients post the same signed 500-record body (~106 KB: base64 of 150-byte events) to an
emulator in another process, 8 requests in flight, over plain HTTP and over TLS; rounds
alternate between the two clients (A/B interleaved in one run) and the best round of each is
reported. The CPU is this process's (``time.process_time``: user + system), divided by the
requests; "encode+sign" is the part both share (body built and SigV4-signed, no I/O).

    taskset -c 0 .venv/bin/python bench/bench_http_client.py [--requests 2000] [--rounds 3]
        [--loop uvloop|asyncio] [--url http://127.0.0.1:4599 --url https://127.0.0.1:4598
         --ca /path/ca.pem]

Without ``--url`` it starts its own emulators (plain and TLS, a trustme CA) pinned to
``--emulator-core``. One JSON line per URL and client, then a summary line per URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
import botocore.credentials

from ingest.firehose.http1 import Http1Pool
from ingest.firehose.signing import RequestSigner
from ingest.firehose.wire import encode_put_record_batch, target_header

EVENT = (
    b'{"id":"b0a7e428-6ca9-4662-95c9-21ab8614ccc3","ts":"2026-12-02T08:28:13.082Z",'
    b'"seq":2003520,"producer":"bench-c-12345","pad":"xxxxxxxxxxxxxxxxxxxxxx"}\n'
)
RECORDS = [EVENT] * 500
STREAM = b'"aws-ml-cert"'
TARGET = target_header("PutRecordBatch")
INFLIGHT = 8

Post = Callable[[dict[str, str], bytes], Awaitable[int]]


async def measure(url: str, signer: RequestSigner, post: Post | None, requests: int) -> float:
    """CPU microseconds per request: encode, sign and (unless `post` is None) post."""
    slots = asyncio.Semaphore(INFLIGHT)

    async def one() -> None:
        async with slots:
            body = encode_put_record_batch(STREAM, RECORDS)
            headers = await signer.sign(url, body, TARGET)
            if post is not None:
                status = await post(headers, body)
                assert status == 200, status

    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    return (time.process_time() - started) / requests * 1e6


async def compare(url: str, context: ssl.SSLContext | None, args: argparse.Namespace) -> None:
    signer = RequestSigner(botocore.credentials.Credentials("x", "x"), "us-east-1")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=INFLIGHT, ssl=context if context else False)
    )
    pool = Http1Pool(url, ssl_context=context, max_connections=INFLIGHT)

    async def with_aiohttp(headers: dict[str, str], body: bytes) -> int:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def with_http1(headers: dict[str, str], body: bytes) -> int:
        return (await pool.post(headers, body)).status

    cases: dict[str, Post | None] = {
        "encode+sign": None,
        "aiohttp": with_aiohttp,
        "http1": with_http1,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for post in cases.values():  # warm-up: connections open, caches filled
            await measure(url, signer, post, INFLIGHT * 4)
        for _ in range(args.rounds):
            for name, post in cases.items():
                results[name].append(await measure(url, signer, post, args.requests))
    finally:
        await session.close()
        await pool.close()
    for name, rounds in results.items():
        line = {"url": url, "client": name, "loop": args.loop, "requests": args.requests}
        line |= {"us_per_request_best": round(min(rounds)), "rounds": [round(r) for r in rounds]}
        print(json.dumps(line), flush=True)
    shared = min(results["encode+sign"])
    old, new = min(results["aiohttp"]) - shared, min(results["http1"]) - shared
    print(
        f"{url}: HTTP part per request (best, encode+sign {shared:.0f} us subtracted): "
        f"aiohttp {old:.0f} us, http1 {new:.0f} us ({new / old:.2f}x)",
        flush=True,
    )


@contextmanager
def emulators(core: int) -> Iterator[tuple[list[str], str]]:
    """A plain and a TLS emulator in other processes; their URLs and the CA file."""
    import trustme  # a dev dependency: only when the bench makes its own certificate

    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1")
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        server.private_key_pem.write_to_path(str(directory / "key.pem"))
        server.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
        urls = []
        for tls in (False, True):
            command = ["taskset", "-c", str(core), sys.executable, "-m", "ingest", "emulator",
                       "--port", "0", "--data-dir", str(directory / f"data-{tls}"),
                       "--create-stream", "aws-ml-cert"]  # fmt: skip
            command += ["--buffer-size-bytes", str(64 * 1024 * 1024)]
            if tls:
                command += ["--tls-cert", str(directory / "cert.pem")]
                command += ["--tls-key", str(directory / "key.pem")]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            stack.callback(process.wait, 20)
            stack.callback(process.terminate)
            assert process.stdout is not None
            ready = process.stdout.readline().strip()
            if not ready.startswith("emulator listening on "):
                raise SystemExit(f"the emulator did not start: {ready!r}")
            urls.append(ready.removeprefix("emulator listening on "))
        yield urls, str(directory / "ca.pem")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client (best shown)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--url", action="append", help="an emulator URL (repeatable)")
    parser.add_argument("--ca", help="CA bundle for https:// URLs")
    parser.add_argument("--emulator-core", type=int, default=1, help="core for own emulators")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "x")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")

    async def run(urls: list[str], ca: str | None) -> None:
        for url in urls:
            context = ssl.create_default_context(cafile=ca) if url.startswith("https") else None
            await compare(url.rstrip("/") + "/", context, args)

    def start(urls: list[str], ca: str | None) -> None:
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(run(urls, ca))
        else:
            asyncio.run(run(urls, ca))

    if args.url:
        start(args.url, args.ca)
    else:
        with emulators(args.emulator_core) as (urls, ca):
            start(urls, ca)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
