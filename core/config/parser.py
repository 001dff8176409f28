"""Reading the environment: one variable at a time, every problem collected, none raised here.

`Var` describes one variable (the table of them is `tables.py`); `Parser.read` returns its value
(or its default when it is malformed, recording why); `problems_between` checks the rules that
tie fields together once every field is read. Messages name variables, never secret values.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from core.config.settings import Settings

ItemCheck = Callable[[str], str | None]  # a problem ("must ..."), or None when the item is fine


@dataclass(frozen=True, slots=True)
class Var:
    """One environment variable: the `Settings` field it fills and how it is read.

    `kind` is one of `Parser`'s readers; `low`/`high` bound numbers; `accept` is what a reader
    compares against (choices, a pattern, an item check); `then` converts the value read.
    """

    name: str
    field: str
    kind: Callable[[Parser, Var], Any]
    default: Any = None
    low: float = 0
    high: float = 0
    accept: Any = None
    then: Callable[[Any], Any] | None = None


class Parser:
    """Collects every problem so one start-up failure names them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ
        self.problems: list[str] = []

    def read(self, var: Var) -> Any:
        value = var.kind(self, var)
        return value if var.then is None else var.then(value)

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def required(self, var: Var) -> str:
        """A value that must be set, checked by `accept` (an item check)."""
        value = self._raw(var.name)
        if value is None:
            self.problems.append(f"{var.name} is required")
            return ""
        problem = var.accept(value)
        if problem:
            self.problems.append(f"{var.name} {problem}")
        return value

    def optional(self, var: Var) -> str | None:
        return self._raw(var.name)

    def string(self, var: Var) -> str:
        return self._raw(var.name) or var.default

    def matching(self, var: Var) -> str:
        """A value (taken as is, not stripped) matching the pattern `accept`."""
        default: str = var.default
        pattern: re.Pattern[str] = var.accept
        value = self._env.get(var.name)
        if value is None:
            return default
        if not pattern.match(value):
            self.problems.append(f"{var.name} must match {pattern.pattern}")
            return default
        return value

    def integer(self, var: Var) -> int:
        default: int = var.default
        raw = self._raw(var.name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{var.name} must be an integer, got {raw!r}")
            return default
        return value if self._within(var, value) else default

    def number(self, var: Var) -> float:
        default: float = var.default
        raw = self._raw(var.name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{var.name} must be a number, got {raw!r}")
            return default
        return value if self._within(var, value) else default

    def _within(self, var: Var, value: float) -> bool:
        if var.low <= value <= var.high:
            return True
        self.problems.append(f"{var.name} must be between {var.low} and {var.high}, got {value}")
        return False

    def boolean(self, var: Var) -> bool:
        default: bool = var.default
        raw = self._raw(var.name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{var.name} must be a boolean (true/false), got {raw!r}")
        return default

    def choice(self, var: Var) -> str:
        """One of the lower-case words `accept` (upper-case ones: the value is upper-cased)."""
        default: str = var.default
        options: tuple[str, ...] = var.accept
        raw = self._raw(var.name)
        if raw is None:
            return default
        value = raw.upper() if options[0].isupper() else raw.lower()
        if value not in options:
            self.problems.append(f"{var.name} must be one of {', '.join(options)}, got {raw!r}")
            return default
        return value

    def addresses(self, var: Var) -> tuple[str, ...]:
        """A comma-separated list of IP addresses (empty: none)."""
        raw = self._raw(var.name)
        if raw is None:
            return ()
        out: list[str] = []
        for item in raw.split(","):
            try:
                out.append(str(ipaddress.ip_address(item.strip())))
            except ValueError:
                self.problems.append(
                    f"{var.name} must be comma-separated IP addresses, got {raw!r}"
                )
                return ()
        return tuple(out)

    def items(self, var: Var) -> tuple[str, ...]:
        """A comma-separated list, each item checked by `accept` (an item check)."""
        check: ItemCheck = var.accept
        raw = self._raw(var.name)
        if raw is None:
            return ()
        out = tuple(item.strip() for item in raw.split(",") if item.strip())
        for item in out:
            problem = check(item)
            if problem:
                self.problems.append(f"{var.name} {problem}, got {item!r}")
                return ()
        return out

    def key_map(self, var: Var) -> dict[str, str]:
        """Parse `kid1:base64key,kid2:base64key`; values stay opaque strings here."""
        raw = self._raw(var.name)
        if raw is None:
            return {}
        out: dict[str, str] = {}
        for item in raw.split(","):
            kid, sep, key = item.strip().partition(":")
            if not sep or not kid or not key:
                self.problems.append(f"{var.name} must be a comma-separated list of kid:key")
                return {}
            out[kid] = key
        return out


# Item checks (`accept` of `required` and `items`).


def check_network(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "must list IP addresses or CIDR networks"
    return None


def check_origin(value: str) -> str | None:
    if value == "*":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        return "must list origins like https://shop.example (scheme://host[:port]) or *"
    return None


def check_currency(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Z]{3}", value) else "must list ISO 4217 codes (USD,EUR)"


def check_url(schemes: tuple[str, ...]) -> ItemCheck:
    def check(value: str) -> str | None:
        scheme = urlsplit(value).scheme
        if scheme not in schemes:
            return f"must be a URL with scheme {' or '.join(schemes)}"
        return None

    return check


# The rules between fields, checked once every field is read: (broken?, problem).


def problems_between(s: Settings) -> list[str]:
    rules = (
        (s.database_pool_min > s.database_pool_max,
         "DATABASE_POOL_MIN must not exceed DATABASE_POOL_MAX"),
        (s.auction_writer_connections >= s.database_pool_max,
         "AUCTION_WRITER_CONNECTIONS must leave connections for requests "
         "(below DATABASE_POOL_MAX)"),
        (s.ws_command_burst < s.ws_command_rate,
         "WS_COMMAND_BURST must be at least WS_COMMAND_RATE"),
        (s.env == "prod" and s.payment_provider == "demo",
         "PAYMENT_PROVIDER=demo is refused when SOUK_ENV=prod"),
        (s.redis_cluster and s.auction_routing,
         "AUCTION_ROUTING is not supported with REDIS_CLUSTER (it finds a gone owner by the "
         "subscriber count PUBLISH returns, which a cluster counts on one node only)"),
        (s.env == "prod" and s.auction_ack_before_commit,
         "AUCTION_ACK_BEFORE_COMMIT is a benchmark switch, refused when SOUK_ENV=prod"),
        (s.env == "prod" and not s.metrics_token and not s.metrics_port,
         "SOUK_ENV=prod needs METRICS_TOKEN or METRICS_PORT (/metrics shows balances)"),
        (s.metrics_token is not None and len(s.metrics_token) < 16,
         "METRICS_TOKEN must be at least 16 characters"),
    )
    return [problem for broken, problem in rules if broken]
