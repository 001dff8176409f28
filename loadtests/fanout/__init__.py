"""Websocket fan-out benchmark: load generator (run.py, suite.py), publishers, the websockets,
Socket.IO and blaster comparison servers. Loopback only, bounded, stops by itself; see the
"Fan-out" section of BENCHMARKS.md."""
