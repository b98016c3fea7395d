"""Failures the stream runtime tells apart from a bad record."""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """A service outside Kafka that handling needs did not answer, or said "try later".

    The record is not at fault: it is tried again later, never dead-lettered for this.
    """
