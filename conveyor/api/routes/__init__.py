"""One APIRouter per resource. Routes validate, call ``data`` and ``commands``, and answer;
errors are raised (``conveyor.api.errors``), never built here."""

from __future__ import annotations

from typing import Any

from conveyor.domain.rest import Problem

# Where every router of the REST API is mounted.
API_PREFIX = "/api/v1"

_DESCRIPTIONS = {
    401: "Missing, invalid or expired access token.",
    403: "The caller's role does not allow this.",
    404: "No such resource, or not the caller's.",
    409: "Conflicts with the resource's current state.",
    422: "The request is well formed but cannot be applied.",
    503: "Kafka is unavailable (nothing was recorded), or the edge is at capacity; "
    "see Retry-After.",
}


def problems(
    *statuses: int, described: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give (all problem+json): the usual
    words for ``statuses``, and a route's own for those in ``described``."""
    descriptions = {status: _DESCRIPTIONS[status] for status in statuses} | (described or {})
    return {
        status: {"model": Problem, "description": description}
        for status, description in descriptions.items()
    }
