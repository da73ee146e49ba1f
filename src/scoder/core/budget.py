"""The budget cap of a paid model role (`max_budget_usd` in its params).

A stage's cost is every answer it uses: answers from the response cache count at the price
they were billed at (an earlier, killed attempt of the same stage paid for them), answers
paid now count at their billed usage, and requests in flight count at an upper bound (prompt
bytes, `max_tokens` of answer) until their usage is known. A request or batch is sent only if
that total stays within the cap, so the endpoint never bills the stage more than the cap,
across reruns included. When the next request does not fit, the backend raises
`BudgetExceeded`, which the stage runner turns into a clean stop that says how far it got;
everything paid so far is cached, so raising the cap and rerunning pays only for the rest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from scoder.core.prices import Price


class BudgetExceeded(RuntimeError):
    """The next request would take the stage past its `max_budget_usd`. Not a crash: the
    stage runner reports it and exits with status 3."""

    exit_code = 3


@dataclass
class Budget:
    cap_usd: float | None  # None: no cap
    price: Price
    who: str = "model"  # named in messages (e.g. "teacher gpt-4o")
    cached_usd: float = 0.0
    paid_usd: float = 0.0
    reserved_usd: float = 0.0
    answered: int = 0  # requests answered (cached or paid)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def committed_usd(self) -> float:
        return self.cached_usd + self.paid_usd + self.reserved_usd

    def add_cached(self, cost_usd: float) -> None:
        with self._lock:
            self.cached_usd += cost_usd
            self.answered += 1

    def reserve(self, upper_bound_usd: float, remaining_requests: int | None = None) -> float:
        """Reserve the worst case of one request (or batch) before sending it; raises
        BudgetExceeded if it does not fit."""
        with self._lock:
            if self.cap_usd is not None and self.committed_usd + upper_bound_usd > self.cap_usd + 1e-12:
                left = f", {remaining_requests} request(s) not sent" if remaining_requests is not None else ""
                raise BudgetExceeded(
                    f"{self.who}: budget cap ${self.cap_usd:.4f} reached after {self.answered} answered request(s) "
                    f"(${self.cached_usd:.4f} from the response cache, ${self.paid_usd:.4f} paid now, "
                    f"${self.reserved_usd:.4f} in flight){left}; the next one may cost up to ${upper_bound_usd:.4f}. "
                    "Every answer so far is cached: raise max_budget_usd and rerun to pay only for the rest")
            self.reserved_usd += upper_bound_usd
            return upper_bound_usd

    def hold(self, amount_usd: float) -> float:
        """Count spending that is committed already (a batch submitted before a restart),
        without checking the cap."""
        with self._lock:
            self.reserved_usd += amount_usd
            return amount_usd

    def settle(self, reserved_usd: float, billed_usd: float, answered: int = 1) -> None:
        """A reserved request came back (billed_usd: its real cost; 0 for a failed one)."""
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
            self.paid_usd += billed_usd
            self.answered += answered

    def summary(self) -> dict:
        return {"cap_usd": self.cap_usd, "price_row": self.price.row, "tier": self.price.tier,
                "cached_usd": round(self.cached_usd, 6), "paid_usd": round(self.paid_usd, 6),
                "answered": self.answered}
