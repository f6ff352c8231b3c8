"""Checks a /metrics text as Prometheus would read it: Prometheus's own
linter (`promtool check metrics`, Debian's prometheus package) and the text
parser of python3-prometheus-client. Returns {(name, labels): value}."""
import re
import subprocess

from prometheus_client.parser import text_string_to_metric_families

# A sample line: name, optional {labels}, value (no timestamps are sent).
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def check_exposition(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, f"promtool check metrics:\n{p.stdout}{p.stderr}\n{text}"
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"{key} given twice"
            samples[key] = s.value
    # Counts print as integers, never as six-digit doubles like 1.04858e+06.
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, value = m.group(1), m.group(3)
        if "_seconds" not in name:  # times (_seconds, _seconds_total, _seconds_sum) are real
            assert re.fullmatch(r"-?[0-9]+", value), f"{name} prints {value}, not an integer"
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]
