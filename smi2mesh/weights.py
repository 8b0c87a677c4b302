"""Weight arithmetic: Kubernetes Quantities and exact normalisation.

SMI weights are relative. v1alpha1 weights are Kubernetes Quantities
(``1`` == ``1000m``), compared by milli-value; later versions are integers,
held here as milli-values too so every version shares one scale.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei))?$")
_SUFFIX: dict[str, Decimal] = {
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
# Far above any sensible weight, but keeps arithmetic and output bounded.
MAX_MILLI = 10**15


def quantity_to_milli(value: object) -> int:
    """Parse a Kubernetes Quantity (string or number) into an integer milli-value.

    Raises ValueError with a readable message. Like the API server, a value
    finer than 1m is rounded up.
    """
    if isinstance(value, bool):
        raise ValueError(f"weight must be a quantity, not a boolean ({value})")
    if isinstance(value, int):
        dec = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"weight {value} is not a finite quantity")
        dec = Decimal(repr(value))
    elif isinstance(value, str):
        m = _QUANTITY.match(value.strip())
        if not m:
            raise ValueError(f"weight {value!r} is not a Kubernetes quantity (e.g. 1, 500m, 1.5)")
        try:
            dec = Decimal(m.group(1))
        except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
            raise ValueError(f"weight {value!r} is not a number") from exc
        if m.group(2):
            exp = int(m.group(2)[1:])
            if abs(exp) > 18:
                raise ValueError(f"weight {value!r} is out of range")
            dec *= Decimal(10) ** exp
        elif m.group(3):
            dec *= _SUFFIX[m.group(3)]
    else:
        raise ValueError(f"weight must be a quantity, got {type(value).__name__}")
    milli = dec * 1000
    result = int(milli.to_integral_value(rounding="ROUND_CEILING"))
    if abs(result) > MAX_MILLI:
        raise ValueError(f"weight {value!r} is out of range")
    return result


def milli_to_quantity(milli: int) -> str:
    """Canonical Quantity string for a milli-value: ``1000`` -> ``"1"``, ``500`` -> ``"500m"``."""
    if milli % 1000 == 0:
        return str(milli // 1000)
    return f"{milli}m"


def largest_remainder(weights: Sequence[int], total: int) -> list[int]:
    """Scale non-negative *weights* to integers summing to exactly *total*.

    Each share gets the floor of its exact quota; the units left over go to
    the largest remainders, ties to the earlier entry. Three equal weights and
    total 100 give 34/33/33. The ratios are kept as closely as integers allow.
    """
    s = sum(weights)
    if s <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative with a positive sum")
    floors = [w * total // s for w in weights]
    remainders = [w * total % s for w in weights]
    left = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def relative(weights_milli: Sequence[int], limit: int = 1_000_000) -> list[int]:
    """Smallest integers with exactly the ratios of *weights_milli*.

    Whole-number inputs keep their own values (90/10 stays 90/10, which keeps
    GitOps diffs readable); fractional Quantities are reduced by their GCD.
    Only if that exceeds *limit* (Gateway API caps weights at 1,000,000) are
    they rounded to percentages.
    """
    if all(w % 1000 == 0 for w in weights_milli):
        out = [w // 1000 for w in weights_milli]
    else:
        g = 0
        for w in weights_milli:
            g = math.gcd(g, w)
        out = [w // g for w in weights_milli] if g else list(weights_milli)
    if max(out, default=0) > limit:
        return largest_remainder(weights_milli, 100)
    return out
