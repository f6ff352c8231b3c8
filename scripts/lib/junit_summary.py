#!/usr/bin/python3
"""Counts test cases in JUnit XML files, for scripts/test.sh.

Usage: junit_summary.py [--meson-log testlog.json] FILE.xml...

Prints one line "PASSED FAILED SKIPPED" on stdout and names every failed or
skipped case on stderr. Errors count as failures. A file that is missing or
unreadable counts as one failure: a suite that could not run never reads as
zero tests.

With --meson-log, each meson test whose process failed (crash, timeout, non-zero
exit) but whose cases in the JUnit file show no failure adds one failure, so a
GoogleTest binary that dies mid-run is not hidden behind the cases it passed.
"""
import json
import sys
import xml.etree.ElementTree as ET


def count_file(path, failed_names, skipped_names):
    passed = failed = skipped = 0
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        failed_names.append(f"{path}: unreadable ({e})")
        return 0, 1, 0, []
    failed_cases = []  # (suite name, case name)
    for suite in root.iter("testsuite"):
        name = suite.get("name", "")
        for case in suite.findall("testcase"):
            label = f"{case.get('classname', name)}::{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failed_cases.append((name, case.get("name", "")))
                failed_names.append(label)
            elif case.find("skipped") is not None or case.get("status") == "notrun":
                skipped += 1
                msg = ""
                sk = case.find("skipped")
                if sk is not None:
                    msg = sk.get("message") or (sk.text or "")
                skipped_names.append(f"{label} {msg.strip()}".strip())
            else:
                passed += 1
        # A suite-level error without test cases (e.g. a pytest collection
        # error is reported as a case, but be safe about others).
        if not suite.findall("testcase"):
            errs = int(suite.get("errors", "0") or 0) + int(suite.get("failures", "0") or 0)
            if errs:
                failed += errs
                failed_cases.append((name, ""))
                failed_names.append(f"{name}: {errs} error(s) outside test cases")
    return passed, failed, skipped, failed_cases


def main(argv):
    meson_log = None
    files = []
    i = 0
    while i < len(argv):
        if argv[i] == "--meson-log":
            meson_log = argv[i + 1]
            i += 2
        else:
            files.append(argv[i])
            i += 1
    failed_names, skipped_names = [], []
    passed = failed = skipped = 0
    failed_cases = []
    for f in files:
        p, fl, s, cases = count_file(f, failed_names, skipped_names)
        passed, failed, skipped = passed + p, failed + fl, skipped + s
        failed_cases += cases
    if meson_log:
        try:
            with open(meson_log) as fh:
                runs = [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError) as e:
            runs = []
            failed += 1
            failed_names.append(f"{meson_log}: unreadable ({e})")
        for run in runs:
            if run.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
                continue
            name = run.get("name", "?")
            # meson names gtest suites "<project>.<test name>.<gtest suite>"
            # and an exit-code test's case after the test.
            shown = any(f".{name}." in f".{suite}." or case == name
                        for suite, case in failed_cases)
            if not shown:
                failed += 1
                failed_names.append(f"{name}: {run.get('result')} (exit {run.get('returncode')})")
    for n in failed_names:
        print(f"FAILED  {n}", file=sys.stderr)
    for n in skipped_names:
        print(f"SKIPPED {n}", file=sys.stderr)
    print(passed, failed, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
