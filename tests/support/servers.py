"""Moved to testkit/servers.py (shared with loadtests/, which must not import tests/); this name
stays for tests written before the move. New code imports testkit.servers."""

from testkit.servers import ROOT, ServerProcess, free_port, settings_env

__all__ = ["ROOT", "ServerProcess", "free_port", "settings_env"]
