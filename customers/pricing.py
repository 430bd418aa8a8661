"""Rating a usage quantity: per unit, graduated and volume pricing.

Pure: no database. The rules are BILLING_RULES.md, *Usage charges*:

- ``per_unit``: quantity x unit price;
- ``graduated``: tier ``i`` covers the quantities above the previous bound
  ``L`` (0 for the first) up to its bound ``U``; it takes
  ``u = max(0, min(Q, U) - L)`` units at its unit price, plus its flat fee
  when ``u > 0``; the amount is the sum over the tiers;
- ``volume``: a quantity of 0 costs 0; otherwise the one tier with
  ``L < Q <= U`` prices the whole quantity: ``Q x unit price + flat fee``.

The arithmetic is exact (a decimal context that raises rather than round)
and the amount is rounded once, ROUND_HALF_UP to the cent, from the exact
value. ``Rating.explanation`` is what a clerk reads on the invoice:
``12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 + 2,500 × 0.001 = 25.50``.

A pricing's tiers are validated as a whole by ``pricing_problems``; the
services write them only when it finds nothing (customers.services).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from core.money import CENT, format_plain
from customers.models import MONEY, UNIT_PRICE, USAGE_QUANTITY, PricingModel

ZERO = Decimal(0)
# Exact: any result that would need rounding raises Inexact instead. 200
# digits hold every product of a quantity and a unit price the columns allow,
# and sums of them far past any bill.
EXACT = Context(prec=200, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
# The one rounding of an item: the same precision, half away from zero.
ROUNDING = Context(prec=200, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])

# The choices' ``.values`` is rebuilt on every access; the import checks the
# pricing of every usage charge of its file.
PRICING_MODELS = tuple(PricingModel.values)

# What the columns hold (customers.models): values at or past these are refused.
QUANTITY_LIMIT = Decimal(10) ** (USAGE_QUANTITY["max_digits"] - USAGE_QUANTITY["decimal_places"])
UNIT_PRICE_LIMIT = Decimal(10) ** (UNIT_PRICE["max_digits"] - UNIT_PRICE["decimal_places"])
# A flat fee is an amount of money: below 10^13, as imported amounts are.
FLAT_FEE_LIMIT = Decimal(10) ** 13


@dataclass(frozen=True)
class Tier:
    """One tier as the import and the pages give it: its inclusive upper
    bound (``None``: unbounded, the last tier), unit price and flat fee."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO


@dataclass(frozen=True)
class Term:
    """What one tier adds: ``units x unit_price``, plus ``flat_fee`` (None
    when the tier has none or takes no units)."""

    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal | None


@dataclass(frozen=True)
class Rating:
    quantity: Decimal
    amount: Decimal
    terms: tuple[Term, ...]
    explanation: str


def rate(*, model: str, tiers: Sequence[Tier], quantity: Decimal, unit: str = "") -> Rating:
    """``quantity`` rated by a pricing of ``model`` over ``tiers`` (valid, as
    ``pricing_problems`` says: ordered, the last unbounded; per unit: one).

    Raises ValueError for a negative quantity."""
    if quantity < 0:
        raise ValueError(f"a quantity is not negative, not {quantity}")
    with localcontext(EXACT):
        terms = tuple(_terms(model, tiers, quantity))
        exact = sum(
            (term.units * term.unit_price + (term.flat_fee or ZERO) for term in terms), ZERO
        )
    amount = exact.quantize(CENT, context=ROUNDING)
    return Rating(
        quantity=quantity,
        amount=amount,
        terms=terms,
        explanation=explain(quantity=quantity, unit=unit, terms=terms, amount=amount),
    )


def _terms(model: str, tiers: Sequence[Tier], quantity: Decimal):
    if model == PricingModel.PER_UNIT:
        (tier,) = tiers
        yield Term(quantity, tier.unit_price, None)
        return
    lower = ZERO
    for tier in tiers:
        if model == PricingModel.GRADUATED:
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = max(ZERO, top - lower)
            if units > 0:
                yield Term(units, tier.unit_price, tier.flat_fee or None)
        elif model == PricingModel.VOLUME:
            if quantity > lower and (tier.up_to is None or quantity <= tier.up_to):
                yield Term(quantity, tier.unit_price, tier.flat_fee or None)
                return
        else:
            raise ValueError(f"unknown pricing model {model!r}")
        if tier.up_to is None:
            return
        lower = tier.up_to


def plain(value: Decimal) -> str:
    """A quantity or unit price as people read it: thousands separated, no
    trailing zeros, no exponent (``12,500``, ``150.5``, ``0.002``, ``0``);
    the pages' ``plain`` filter (core.money)."""
    return format_plain(value)


def describe(*, model: str, tiers: Sequence[Tier]) -> str:
    """A pricing as a clerk reads it beside its charge:
    ``Graduated: up to 1,000 at 0; up to 10,000 at 0.002 + 5.00; above 10,000 at 0.001``;
    ``Per unit: 0.002``. A tier's flat fee follows its unit price."""
    label = PricingModel(model).label if model in PricingModel.values else model
    if model == PricingModel.PER_UNIT and len(tiers) == 1:
        return f"{label}: {plain(tiers[0].unit_price)}"
    parts = []
    for (lower, upper), tier in zip(tier_bounds(tiers), tiers, strict=True):
        if upper is not None:
            where = f"up to {plain(upper)}"
        elif lower:
            where = f"above {plain(lower)}"
        else:
            where = "any quantity"
        fee = f" + {tier.flat_fee:,.2f}" if tier.flat_fee else ""
        parts.append(f"{where} at {plain(tier.unit_price)}{fee}")
    return f"{label}: {'; '.join(parts) or 'no tiers'}"


def pricing_description(pricing) -> str:
    """``describe`` for a Pricing row, from its tiers (prefetch
    ``pricing__tiers`` for a list of charges: no query per row). The tiers
    come in the model's order, by lower bound."""
    tiers = [Tier(t.up_to, t.unit_price, t.flat_fee) for t in pricing.tiers.all()]
    return describe(model=pricing.model, tiers=tiers)


def explain(*, quantity: Decimal, unit: str, terms: Sequence[Term], amount: Decimal) -> str:
    """``12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 + 2,500 × 0.001 = 25.50``;
    a quantity no tier prices (0 under graduated or volume): ``0 calls = 0.00``."""
    what = f"{plain(quantity)} {unit}".rstrip()
    parts = []
    for term in terms:
        parts.append(f"{plain(term.units)} × {plain(term.unit_price)}")
        if term.flat_fee:
            parts.append(f"{term.flat_fee:,.2f}")
    if not parts:
        return f"{what} = {amount:,.2f}"
    return f"{what}: {' + '.join(parts)} = {amount:,.2f}"


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _decimal_problem(value, *, places: int, limit: Decimal, what: str) -> str | None:
    if not isinstance(value, Decimal) or not value.is_finite():
        return f"must be a decimal number, not {value!r}"
    # As written, never in exponent notation: 0.0000001, not 1E-7.
    if value < 0:
        return f"must be 0 or more, not {value:f}"
    if _places(value) > places:
        return f"{what} has at most {places} decimal places, not {value:f}"
    if value >= limit:
        return f"must be below {limit:,}, not {value:f}"
    return None


def pricing_problems(*, model: str, tiers: Sequence[Tier]) -> list[tuple[str, str]]:
    """Why ``tiers`` cannot make a pricing of ``model``, as (where, message)
    pairs (``tiers[1].up_to``, ``must be above the previous tier's 1000``);
    empty when they can. The whole set is checked: the database can only
    check one tier at a time."""
    if model not in PRICING_MODELS:
        names = ", ".join(f'"{value}"' for value in PRICING_MODELS)
        return [("model", f"must be one of {names}, not {model!r}")]
    problems: list[tuple[str, str]] = []
    if model == PricingModel.PER_UNIT and len(tiers) != 1:
        return [("tiers", f"a per-unit pricing has one unit price, not {len(tiers)} tiers")]
    if not tiers:
        return [("tiers", "must have at least one tier")]
    previous = ZERO
    for index, tier in enumerate(tiers):
        where = f"tiers[{index}]"
        problem = _decimal_problem(
            tier.unit_price,
            places=UNIT_PRICE["decimal_places"],
            limit=UNIT_PRICE_LIMIT,
            what="a unit price",
        )
        if problem:
            problems.append((f"{where}.unit_price", problem))
        problem = _decimal_problem(
            tier.flat_fee, places=MONEY["decimal_places"], limit=FLAT_FEE_LIMIT, what="a flat fee"
        )
        if problem:
            problems.append((f"{where}.flat_fee", problem))
        elif model == PricingModel.PER_UNIT and tier.flat_fee:
            problems.append((f"{where}.flat_fee", "a per-unit pricing has no flat fee"))
        last = index == len(tiers) - 1
        if tier.up_to is None:
            if not last:
                problems.append((f"{where}.up_to", "only the last tier is unbounded (null)"))
            continue
        if last:
            problems.append(
                (f"{where}.up_to", f"the last tier is unbounded (null), not {tier.up_to}")
            )
        problem = _decimal_problem(
            tier.up_to,
            places=USAGE_QUANTITY["decimal_places"],
            limit=QUANTITY_LIMIT,
            what="a bound",
        )
        if problem:
            problems.append((f"{where}.up_to", problem))
        elif tier.up_to <= previous:
            shown = "0" if index == 0 else f"the previous tier's {plain(previous)}"
            problems.append((f"{where}.up_to", f"must be above {shown}, not {plain(tier.up_to)}"))
        else:
            previous = tier.up_to
    return problems


def tier_bounds(tiers: Sequence[Tier]) -> list[tuple[Decimal, Decimal | None]]:
    """Each tier's (lower, upper) bounds: the lower is the previous tier's upper."""
    bounds = []
    lower = ZERO
    for tier in tiers:
        bounds.append((lower, tier.up_to))
        lower = tier.up_to if tier.up_to is not None else lower
    return bounds
