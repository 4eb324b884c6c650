"""Budget judgement against a measurement, with its exact messages."""

from __future__ import annotations

import pytest

from pytest_trt.judge.budgets import budget_doubts, budget_failures, describe_budget, judged_percentiles
from pytest_trt.specs import PerfBudget
from pytest_trt.timing.measure import PerfResult
from pytest_trt.timing.stats import summarize

ALTERNATING = [2.0 if i % 2 == 0 else 1.0 for i in range(100)]  # noisy, yet each tenth has one median


def result_with(samples: list[float], throughput: float = 1e6) -> PerfResult:
    return PerfResult(
        backend="tensorrt", clock="cuda-events", mode={}, batch=1, iterations=len(samples),
        duration_s=1.0, latency=summarize(samples), compute=None, h2d=None, d2h=None, enqueue=None,
        throughput=throughput, samples_ms=samples,
    )


def test_a_noisy_sample_far_from_its_budget_is_no_doubt() -> None:
    result = result_with(ALTERNATING)
    assert summarize(result.samples_ms).cv > 0.3
    assert budget_doubts(result, PerfBudget(max_latency_ms=100, percentile=50)) == []
    assert budget_doubts(result, PerfBudget(max_latency_ms=0.5, percentile=99)) == []  # surely over
    assert budget_doubts(result, PerfBudget(min_throughput=10)) == []  # no latency budget


def test_a_budget_the_measurements_stretches_fall_on_both_sides_of_is_in_doubt() -> None:
    # Alternating 1 and 2 ms: noisy, yet each tenth has the same median.
    result = result_with(ALTERNATING)
    assert budget_doubts(result, PerfBudget(max_latency_ms=1.6, percentile=50)) == []  # every tenth: 1.5
    # The host slows down for the second half: half the tenths are over a 1.6 ms budget.
    result = result_with([1.0] * 50 + [2.0] * 50)
    assert budget_doubts(result, PerfBudget(max_latency_ms=1.6, percentile=50)) == [
        "p50 1.500 ms is too close to its budget 1.60 ms to judge: p50 of each tenth of the measurement "
        "1.000..2.000 ms (n=100), another run may decide otherwise; measure longer (min_duration_ms)"
    ]
    # Where one thread would help (the gates know), the line says so.
    assert budget_doubts(result, PerfBudget(max_latency_ms=1.6, percentile=50), threads_advice=True)[0].endswith(
        "measure longer (min_duration_ms) or on one thread (intra_op_threads=1)"
    )


def test_a_steady_sample_at_its_budget_is_no_doubt() -> None:
    result = result_with([1.0] * 100)
    assert budget_doubts(result, PerfBudget(max_latency_ms=1.0, percentile=99)) == []


def test_latency_budget_failure_message() -> None:
    result = result_with([6.0] * 206 + [6.42] * 206)  # cv = 0.21 * sqrt(412/411) / 6.21
    failures = budget_failures(result, PerfBudget(max_latency_ms=5, percentile=99))
    assert failures == ["p99 latency 6.42 ms > budget 5.00 ms (n=412, cv 3.4%)"]


def test_throughput_budget_failure_message() -> None:
    result = result_with([1.0] * 412, throughput=1523.4)
    assert budget_failures(result, PerfBudget(min_throughput=2000)) == [
        "throughput 1523.4 qps < budget 2000 qps (n=412)"
    ]


def test_both_budgets_fail_together_with_fractional_percentile() -> None:
    result = result_with([1.0] * 998 + [9.0] * 2, throughput=10.0)
    failures = budget_failures(result, PerfBudget(max_latency_ms=2.5, percentile=99.9, min_throughput=12.5))
    assert failures == [
        "p99.9 latency 9.00 ms > budget 2.50 ms (n=1000, cv 35.2%)",
        "throughput 10.0 qps < budget 12.5 qps (n=1000)",
    ]


def test_budgets_are_inclusive() -> None:
    result = result_with([5.0] * 10, throughput=2000.0)
    assert budget_failures(result, PerfBudget(max_latency_ms=5.0, percentile=50, min_throughput=2000)) == []


def test_close_miss_prints_enough_decimals_to_differ() -> None:
    result = result_with([5.004] * 10)
    assert budget_failures(result, PerfBudget(max_latency_ms=5, percentile=50)) == [
        "p50 latency 5.004 ms > budget 5.000 ms (n=10, cv 0.0%)"
    ]


@pytest.mark.parametrize(
    ("budget", "text"),
    [
        (PerfBudget(max_latency_ms=5, percentile=99, min_throughput=2000), "p99 <= 5.00 ms, >= 2000 qps"),
        (PerfBudget(max_latency_ms=0.005), "p50 <= 0.005 ms"),
        (PerfBudget(min_throughput=1500.5, max_regression=0.1), ">= 1500.5 qps, regression <= 10%"),
        (PerfBudget(), "measure only"),
    ],
)
def test_describe_budget(budget: PerfBudget, text: str) -> None:
    assert describe_budget(budget) == text


def test_a_budget_failure_on_too_few_samples_says_so() -> None:
    result = result_with([170.0] * 23 + [180.0])
    assert budget_failures(result, PerfBudget(max_latency_ms=150, percentile=99)) == [
        "p99 latency 177.70 ms > budget 150.00 ms (n=24, cv 1.2%; p99 from 24 samples, fewer than the 100 "
        "a p99 needs: it reads low)"
    ]
    assert budget_failures(result, PerfBudget(max_latency_ms=150, percentile=50)) == [
        "p50 latency 170.00 ms > budget 150.00 ms (n=24, cv 1.2%)"
    ]


def test_judged_percentiles_are_the_running_backends_latency_budgets() -> None:
    budgets = (
        PerfBudget(backend="onnxruntime", max_latency_ms=5, percentile=99),
        PerfBudget(backend="onnxruntime", min_throughput=10),
        PerfBudget(backend="tensorrt", max_latency_ms=1, percentile=99.9),
    )
    assert judged_percentiles(budgets, "onnxruntime") == (99.0,)
    assert judged_percentiles(budgets, "tensorrt") == (99.9,)
