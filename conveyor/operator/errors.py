"""What can go wrong while the operator reconciles, as one small hierarchy.

aiohttp's and aiokafka's exceptions are wrapped at the boundary (``kube.py``, ``infra``), so
handlers decide on these alone: retry later, or report the problem on the resource's status.
"""


class OperatorError(Exception):
    """The operator could not reconcile a resource now."""


class KubernetesError(OperatorError):
    """The API server refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeConflict(KubernetesError):
    """Someone else changed the object first (409); reconcile again from what is there now."""
