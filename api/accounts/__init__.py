"""Accounts and authentication: registration, login, refresh-token rotation, logout, /v1/me."""
