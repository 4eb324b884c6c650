"""What the terminal and the file system show of a run: progress lines that keep pytest's progress
row whole and fit the terminal, --help within 80 columns, report files under the user's umask, a
short header on a CPU-only machine."""

from __future__ import annotations

import os
import re
import stat

import pytest

from pytest_trt.types import Availability

GATED = """
import pytest

spec = pytest.mark.trt_model("mlp.onnx", batch_size=2)

@spec
@pytest.mark.trt_accuracy()
def test_first(trt_engine):
    pass

def test_plain():
    pass

@pytest.mark.trt_model("mlp.onnx", batch_size=3)
@pytest.mark.trt_accuracy()
def test_second(trt_engine):
    pass

def test_last():
    pass
"""


def test_progress_lines_keep_the_progress_row_whole_and_fit_the_terminal(trt_pytester, monkeypatch):
    # Every phase reports, however short, so that the lines come on any machine.
    trt_pytester.pytester.makeconftest("import pytest_trt.prepare.progress\npytest_trt.prepare.progress.THRESHOLD_S = 0.0\n")
    trt_pytester.pytester.makepyfile(test_progress=GATED)
    monkeypatch.setenv("COLUMNS", "80")
    result = trt_pytester.run_subprocess("--trt-backend=onnxruntime")
    result.assert_outcomes(passed=4)
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("test_progress.py"))
    end = next(i for i, line in enumerate(lines) if line.endswith("[100%]"))
    row = lines[start : end + 1]
    ours = [line for line in row if line.startswith(("pytest-trt: ", "    "))]
    dots = [line for line in row if line not in ours]
    assert any(line.startswith("pytest-trt: built mlp.onnx for onnxruntime") for line in ours), row
    assert sum(line.startswith("test_progress.py") for line in lines[: end + 1]) == 1, row  # named once
    assert dots[0].rstrip() == "test_progress.py", row  # named before the first test's engine is made
    assert all(re.fullmatch(r"\.+ +\[ *\d+%\]", line) for line in dots[1:]), row
    assert all(len(line) <= 80 for line in row), row


def test_every_help_line_of_the_plugin_fits_80_columns(trt_pytester, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = trt_pytester.run("--help")
    lines = result.outlines
    start = lines.index("pytest-trt: TensorRT / onnxruntime accuracy and speed gates:")
    end = lines.index("", start)
    options = lines[start:end]
    assert any("--trt-backend=" in line for line in options)
    ini = [line for line in lines if re.match(r"  trt_\w+ \(", line)]
    assert len(ini) > 10
    too_long = [line for line in options + ini if len(line) > 80]
    assert too_long == []


def test_report_files_are_written_with_the_users_umask(trt_pytester):
    trt_pytester.pytester.makepyfile(test_reports="""
        import pytest

        @pytest.mark.trt_model("mlp.onnx", batch_size=2, precision="fp16")
        @pytest.mark.trt_accuracy(rtol=0, atol=0)
        def test_fails(trt_engine):
            pass
    """)
    previous = os.umask(0o022)
    try:
        result = trt_pytester.run(
            "--trt-backend=onnxruntime", "--trt-report-json=out/r.json", "--trt-report-md=out/r.md",
            "--trt-save-failures=failures",
        )
    finally:
        os.umask(previous)
    result.assert_outcomes(failed=1)
    written = [trt_pytester.path / "out" / "r.json", trt_pytester.path / "out" / "r.md"]
    written += list((trt_pytester.path / "failures").glob("*.npz"))
    assert len(written) == 3
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == {
        path.name: "0o644" for path in written
    }


def _cpu_only(info, settings, gpu=0):
    if info.name == "onnxruntime":
        return Availability(True)
    return Availability(False, "onnxruntime-gpu is not installed: onnxruntime 1.32.0 has no CUDAExecutionProvider "
                               "(its providers: AzureExecutionProvider, CPUExecutionProvider); pip install onnxruntime-gpu")


@pytest.mark.parametrize("columns", ["80", "240"])
def test_the_header_on_a_cpu_only_machine_is_two_lines(trt_pytester, monkeypatch, columns):
    monkeypatch.setattr("pytest_trt.run.session.availability_of", _cpu_only)
    monkeypatch.setenv("COLUMNS", columns)
    trt_pytester.pytester.makepyfile(test_nothing="def test_ok():\n    pass\n")
    lines = trt_pytester.run().outlines
    header = lines[lines.index(next(line for line in lines if line.startswith("platform"))) + 1 : ]
    header = header[: next(i for i, line in enumerate(header) if line.startswith("rootdir:"))]
    assert header == [
        "pytest-trt: backend onnxruntime (--trt-backend=auto)",
        "pytest-trt:   no GPU backend can run here (3 tried; -v says why)",
    ]
    verbose = trt_pytester.run("-v").outlines
    assert "onnxruntime's CUDA provider unavailable: onnxruntime-gpu is not installed" in " ".join(" ".join(verbose).split())
