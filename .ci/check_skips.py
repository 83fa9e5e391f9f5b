"""Fail CI if a test was skipped where it should have run.

Reads the two lanes' JUnit reports. In the PostgreSQL lane (PostgreSQL and Redis both there)
nothing may skip. In the SQLite lane only `@pytest.mark.postgres` tests may, with their reason,
and each of them must have passed in the PostgreSQL lane. So a test that stopped running
anywhere (a service missing, a skip added by mistake) turns CI red.

Usage: python .ci/check_skips.py SQLITE_REPORT.xml POSTGRES_REPORT.xml
"""

import sys
import xml.etree.ElementTree as ET

POSTGRES_ONLY = "PostgreSQL behaviour: runs in the PostgreSQL lane"


def outcomes(path: str) -> dict[str, tuple[str, str]]:
    """test id -> (outcome, skip message) for every test case in one report."""
    results: dict[str, tuple[str, str]] = {}
    for case in ET.parse(path).iter("testcase"):  # noqa: S314
        test_id = f"{case.get('classname')}::{case.get('name')}"
        skipped = case.find("skipped")
        if skipped is not None:
            results[test_id] = ("skipped", skipped.get("message", ""))
        elif case.find("failure") is not None or case.find("error") is not None:
            results[test_id] = ("failed", "")
        else:
            results[test_id] = ("passed", "")
    return results


def problems(sqlite: dict[str, tuple[str, str]], postgres: dict[str, tuple[str, str]]) -> list[str]:
    found: list[str] = []
    if not sqlite or not postgres:
        found.append("a lane ran no test")
    for test_id, (outcome, message) in postgres.items():
        if outcome == "skipped":
            found.append(f"skipped in the PostgreSQL lane: {test_id} ({message})")
    for test_id, (outcome, message) in sqlite.items():
        if outcome != "skipped":
            continue
        if POSTGRES_ONLY not in message:
            found.append(f"skipped in the SQLite lane: {test_id} ({message})")
        elif postgres.get(test_id, ("missing", ""))[0] != "passed":
            found.append(f"PostgreSQL-only test did not pass in the PostgreSQL lane: {test_id}")
    return found


def main() -> int:
    sqlite, postgres = outcomes(sys.argv[1]), outcomes(sys.argv[2])
    found = problems(sqlite, postgres)
    for line in found:
        print(line)
    skipped = sum(1 for outcome, _ in sqlite.values() if outcome == "skipped")
    print(
        f"skips checked: SQLite lane {len(sqlite)} tests, {skipped} PostgreSQL-only skipped;"
        f" PostgreSQL lane {len(postgres)} tests"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
