"""The hub's own CPU per delivery, in one process with a no-op transport (robust to a busy box:
process CPU time, no sockets). One channel, `--subscribers` connections, `--rounds` of two
publications (one of `--payload-size` bytes) through the in-memory broker twin, each round
swept to every subscriber.

    flock /tmp/souk-bench.lock .venv/bin/python -m loadtests.hub_sweep_cpu --subscribers 3000

To compare with an older hub: `git archive <commit> realtime | tar -x -C /tmp/old` and run
`PYTHONPATH=/tmp/old:. .venv/bin/python loadtests/hub_sweep_cpu.py` (the script's own folder
then comes first, not the working tree's `realtime`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from prometheus_client import CollectorRegistry

from realtime.broker import MemoryBroker, MemoryBus
from realtime.channels import ANONYMOUS, parse_channel
from realtime.client import OutFrame
from realtime.hub import Hub
from realtime.metrics import HubMetrics
from realtime.wire import Codec


class NullSink:
    def write(self, frame: OutFrame) -> None:
        return None

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        return None


async def measure(subscribers: int, rounds: int, payload_size: int) -> float:
    """Seconds of this process's CPU per delivery."""
    bus = MemoryBus()
    hub = Hub(MemoryBroker(bus), metrics=HubMetrics(CollectorRegistry()), flush_delay_s=0)
    name = f"show:{uuid.uuid4()}"
    channel = parse_channel(name)
    for _ in range(subscribers):
        client = hub.connect(NullSink(), Codec.JSON, ANONYMOUS)
        hub.release(client, channel, await hub.subscribe(client, channel, None))
    publisher = MemoryBroker(bus)

    async def swept() -> None:
        while True:
            await asyncio.sleep(0)
            if hub.idle():
                return

    await publisher.publish(name, b'{"warm":1}')
    await swept()
    big = b'{"x":"' + b"a" * payload_size + b'"}'
    t0 = time.process_time()
    for _ in range(rounds):
        await publisher.publish(name, big)
        await publisher.publish(name, b'{"x":2}')
        await swept()
    return (time.process_time() - t0) / (2 * rounds * subscribers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subscribers", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--payload-size", type=int, default=700)
    args = p.parse_args()
    per = asyncio.run(measure(args.subscribers, args.rounds, args.payload_size))
    print(f"{per * 1e6:.3f} µs of CPU per delivery ({args.subscribers} subscribers, "
          f"{2 * args.rounds} publications)")


if __name__ == "__main__":
    main()
