"""Helpers for the control-plane tests: a real tandem-control process and
tandemctl --json calls against it (see control.py)."""
