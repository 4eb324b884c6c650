"""``trt_perf`` budgets judged against a measurement: met, missed, or too close to tell.

Bounds are inclusive. A latency budget reads the percentile it names over the budget samples
(``PerfResult.budget_samples_ms``); messages print measured and budget latencies at a precision
that tells them apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_trt import backends
from pytest_trt.backends import DeviceKind
from pytest_trt.specs import PerfBudget
from pytest_trt.timing.measure import PerfResult
from pytest_trt.timing.stats import percentile, percentile_label

# A latency budget is in doubt when the percentile it names, taken over each of this many
# consecutive stretches of the measurement, falls on both sides of it.
DOUBT_STRETCHES = 10


def applies(budget: PerfBudget, running: str) -> bool:
    """Whether ``running`` enforces the budget: its own, or a GPU budget (no backend named) on a
    backend whose timings are a GPU's."""
    if budget.backend is None:
        return backends.get(running).device is DeviceKind.GPU
    return budget.backend == running


def judged_percentiles(budgets: Sequence[PerfBudget], backend: str) -> tuple[float, ...]:
    """The latency percentiles that ``backend``'s budgets judge: what ``measure`` must sample for."""
    return tuple(b.percentile for b in budgets if applies(b, backend) and b.max_latency_ms is not None)


def describe_budget(budget: PerfBudget) -> str:
    """The budget as one line, e.g. ``p99 <= 5.00 ms, >= 2000 qps``."""
    parts = []
    if budget.max_latency_ms is not None:
        parts.append(f"{percentile_label(budget.percentile)} <= {_ms(budget.max_latency_ms)} ms")
    if budget.min_throughput is not None:
        parts.append(f">= {_number(budget.min_throughput)} qps")
    if budget.max_device_memory_mb is not None:
        parts.append(f"memory <= {_number(budget.max_device_memory_mb)} MB")
    if budget.max_regression is not None:
        parts.append(f"regression <= {_number(budget.max_regression * 100)}%")
    return ", ".join(parts) or "measure only"


def budget_doubts(result: PerfResult, budget: PerfBudget, *, threads_advice: bool = False) -> list[str]:
    """A line when the sample cannot tell whether it meets its latency budget: the percentile the
    budget names, taken over each tenth of the measurement in time order, lands on both sides of
    the limit, so another run of the same code may decide the other way. The stretches carry the
    host's slow and fast moments, which a bootstrap of independent iterations hides (it is far too
    narrow between runs). A noisy percentile far from its budget is no doubt. ``threads_advice``:
    the backend takes ``intra_op_threads`` and the test does not run on one thread yet."""
    if budget.max_latency_ms is None:
        return []
    stretches = np.array_split(np.asarray(result.samples_ms), min(DOUBT_STRETCHES, len(result.samples_ms)))
    values = [percentile(part, budget.percentile) for part in stretches]
    low, high = min(values), max(values)
    if not low <= budget.max_latency_ms < high:
        return []
    limit = _ms(budget.max_latency_ms)
    places = max(3, len(limit.split(".")[1]))
    observed = result.latency_at(budget.percentile)
    steadier = " or on one thread (intra_op_threads=1)" if threads_advice else ""
    label = percentile_label(budget.percentile)
    return [
        f"{label} {observed:.{places}f} ms is too close to its budget {limit} ms to judge: {label} of each "
        f"tenth of the measurement {low:.{places}f}..{high:.{places}f} ms (n={result.iterations}), another "
        f"run may decide otherwise; measure longer (min_duration_ms){steadier}"
    ]


def budget_failures(result: PerfResult, budget: PerfBudget) -> list[str]:
    """One message per budget the result misses; empty when it meets them all (bounds inclusive)."""
    failures = []
    if budget.max_latency_ms is not None:
        observed = result.latency_at(budget.percentile)
        if observed > budget.max_latency_ms:
            shown, limit = _ms_pair(observed, budget.max_latency_ms)
            note = result.sample_note(budget.percentile)
            failures.append(
                f"{percentile_label(budget.percentile)} latency {shown} ms > budget {limit} ms "
                f"(n={result.samples_for(budget.percentile)}, cv {result.latency.cv * 100:.1f}%"
                + (f"; {note}" if note else "") + ")"
            )
    if budget.min_throughput is not None and result.throughput < budget.min_throughput:
        failures.append(
            f"throughput {result.throughput:.1f} qps < budget {_number(budget.min_throughput)} qps "
            f"(n={result.iterations})"
        )
    return failures + memory_failures(result.device_memory, budget, result.backend)


def memory_failures(device_memory: int | None, budget: PerfBudget, backend: str) -> list[str]:
    """A ``max_device_memory_mb`` budget judged: over it, or not known on this backend (a budget
    that cannot be judged fails rather than passing unseen)."""
    if budget.max_device_memory_mb is None:
        return []
    if device_memory is None:
        return [f"device memory: {backend} cannot tell it, so max_device_memory_mb cannot be judged"]
    used_mb = device_memory / 2**20
    if used_mb <= budget.max_device_memory_mb:
        return []
    return [f"device memory {used_mb:.1f} MB > budget {_number(budget.max_device_memory_mb)} MB"]


def _number(value: float) -> str:
    """A budget number as written in a mark: 2000, 1500.5 (no exponent, no trailing zeros)."""
    return f"{value:.10g}" if abs(value) < 1e10 else f"{value:.0f}"


def _ms(value: float) -> str:
    """A latency budget with 2 decimals, more where it was written finer (0.005 stays 0.005)."""
    for places in range(2, 7):
        text = f"{value:.{places}f}"
        if float(text) == value:
            return text
    return text


def _ms_pair(measured: float, budget: float) -> tuple[str, str]:
    """Measured and budget latencies at the same precision, enough for them to differ
    (5.004 > 5.00 would read as a bug)."""
    places = max(2, len(_ms(budget).split(".")[1]))
    for decimals in range(places, 7):
        shown, limit = f"{measured:.{decimals}f}", f"{budget:.{decimals}f}"
        if shown != limit:
            break
    return shown, limit
