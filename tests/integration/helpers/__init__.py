"""Helpers for Tandem's namespace test beds: network namespaces and a bridge
(netns), tandem-switch processes (switch), the tables tool (tables) and the
participant tools (participants)."""
