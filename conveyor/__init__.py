"""Conveyor: an event-driven commerce backbone on Kafka and Kubernetes.

The packages are layers, checked by import-linter in ``make lint``:

- ``conveyor.cli``: the one command line, the only place that wires components together;
- ``conveyor.api``, ``conveyor.streams``, ``conveyor.operator``, ``conveyor.devstack``:
  components, none of which imports another;
- ``conveyor.infra``: connections to the outside services every component shares;
- ``conveyor.domain``: the shared language, pure data, no I/O.
"""

__version__ = "0.1.0"
