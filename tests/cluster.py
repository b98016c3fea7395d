"""The control plane the tests use: ``conveyor.devstack.control_plane``, once per session."""

from __future__ import annotations

from conveyor.devstack.control_plane import REPOSITORY as ROOT
from conveyor.devstack.control_plane import ControlPlane as Cluster
from conveyor.devstack.control_plane import start_control_plane as start_cluster

__all__ = ["ROOT", "Cluster", "start_cluster"]
