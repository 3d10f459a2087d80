"""How many bad inputs the test suite tries, and how each ended.

Runs every test marked ``bad_input`` (attacks on run directories, hostile and damaged files,
invalid settings, killed runs, user mistakes) and counts the cases: one per test (each
parametrization counted), plus the generated examples of the property-based tests (their
``max_examples``). Writes ``benchmarks/results/bad_inputs.json``.

    .venv/bin/python benchmarks/bad_inputs.py
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


class Collector:
    def __init__(self):
        self.outcomes: dict[str, str] = {}
        self.generated: dict[str, int] = {}

    def pytest_collection_modifyitems(self, items):
        for item in items:
            if item.get_closest_marker("bad_input") is None:
                continue
            hypothesis_settings = getattr(getattr(item.obj, "hypothesis", None), "inner_test", None)
            settings = getattr(item.obj, "_hypothesis_internal_use_settings", None)
            if settings is not None or hypothesis_settings is not None:
                self.generated[item.nodeid] = int(getattr(settings, "max_examples", 0) or 0)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[report.nodeid] = report.outcome


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    collector = Collector()
    code = pytest.main(["-q", "-m", "bad_input", "-p", "no:cacheprovider", str(root / "tests")], plugins=[collector])
    counts = Counter(collector.outcomes.values())
    per_file = Counter(nodeid.split("::")[0] for nodeid in collector.outcomes)
    payload = {
        "what": "tests marked bad_input: each feeds msakit a bad input, attack or mistake and asserts one clear message "
                "(a MsakitError, or one stderr line from the CLI with a non-zero exit code) and that nothing else happened",
        "explicit_cases": len(collector.outcomes),
        "generated_examples": sum(collector.generated.values()),
        "property_tests": collector.generated,
        "outcomes": dict(counts),
        "cases_per_file": dict(sorted(per_file.items())),
        "all_end_in_a_clear_message": code == 0 and counts.get("failed", 0) == 0,
    }
    write_result("bad_inputs", payload)
    print(f"{payload['explicit_cases']} explicit cases + {payload['generated_examples']} generated examples: {dict(counts)}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
