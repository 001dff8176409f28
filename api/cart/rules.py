"""Pure cart rules: how many lines a cart holds, its totals per currency. No I/O."""

from __future__ import annotations

from api.cart.schemas import CartLineView, CartTotal

MAX_LINES = 50


def totals(lines: list[CartLineView]) -> list[CartTotal]:
    by_currency: dict[str, int] = {}
    for line in lines:
        by_currency[line.currency] = by_currency.get(line.currency, 0) + line.line_total
    return [CartTotal(c, a) for c, a in sorted(by_currency.items())]
