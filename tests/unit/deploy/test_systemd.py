"""The edge agent's systemd unit, parsed the way systemd reads its sections, and its
example config."""

from __future__ import annotations

import configparser
from pathlib import Path

from millrace_edge_agent.config import load_settings

ROOT = Path(__file__).resolve().parents[3]


def test_the_edge_agent_systemd_unit_runs_the_daemon_and_restarts_it() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((ROOT / "deploy" / "millrace-edge-agent.service").read_text())
    start = unit["Service"]["ExecStart"].split()
    assert start[0].endswith("/millrace-edge-agent") and start[1:3] == ["run", "--config"]
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    assert unit["Service"]["Restart"] == "always"
    cache = unit["Service"]["Environment"].split("=", 1)[1]
    assert cache in unit["Service"]["ReadWritePaths"]
    assert unit["Service"]["WorkingDirectory"] == cache  # its state directory, not /
    assert cache == f"/var/lib/{unit['Service']['StateDirectory']}"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_example_edge_config_is_valid_settings() -> None:
    settings = load_settings(config_file=ROOT / "deploy" / "edge-agent.example.yaml")
    assert settings.site == "plant-7"
    assert settings.mqtt_url and "{dataset}" in settings.mqtt_topic
