"""Conveyor's Grafana dashboards, written as code and generated into ``dashboards/grafana/``.

``python -m dashboards`` (``make dashboards``) writes one JSON file per dashboard; the files are
committed, and a test fails when regenerating would change them. The dashboards read
Prometheus only, through a datasource variable, and prefer the recording rules of
``rules/conveyor-rules.yml`` (``conveyor:*``) where one exists, so a panel shows what an alert
sees.

This package is a development tool: it needs ``grafana-foundation-sdk`` (a dev dependency) and
nothing in ``conveyor`` imports it.
"""
