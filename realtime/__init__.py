"""Websocket hub: channels, JWT auth, Redis pub/sub fan-out across processes, history and
recovery, presence, backpressure, JSON and msgpack. (Real-time hub issue.)"""
