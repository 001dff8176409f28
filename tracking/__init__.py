"""Rider tracking: GPS ingest (websocket op and OsmAnd), validation filters, live positions and
nearest-rider dispatch. (Tracking issue.)"""
