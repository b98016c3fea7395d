"""The operator's Kubernetes API client: server-side apply, reads, deletes and status patches.

Kopf watches and dispatches; this is the one place that writes the objects a custom resource
owns. Server-side apply with one field manager makes every reconcile idempotent: applying an
unchanged object writes nothing (no new resourceVersion, no watch event), and a field someone
edited by hand that the operator owns is taken back.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf
from pydantic import BaseModel

from conveyor.operator.errors import KubeConflict, KubernetesError
from conveyor.operator.kinds import kind_of

Object = dict[str, Any]

FIELD_MANAGER = "conveyor-operator"


def path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    """The object's URL path. A name or namespace is one path segment, whatever it holds: a
    name like ``../../kube-system/secrets/x`` cannot reach into another namespace."""
    plural = kind_of(api_version, kind).plural
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    scoped = f"{root}/{plural}"
    if namespace:
        scoped = f"{root}/namespaces/{_segment(namespace)}/{plural}"
    return f"{scoped}/{_segment(name)}" if name else scoped


def _segment(text: str) -> str:
    # "." and ".." survive quoting and would be resolved as dot segments by the URL library.
    if text in (".", ".."):
        raise KubernetesError(f"{text!r} is not a Kubernetes name")
    return quote(text, safe="")


class Kube:
    """An aiohttp session to one API server, with the credentials Kopf logged in with."""

    def __init__(self, session: aiohttp.ClientSession, server: str) -> None:
        self._session = session
        self._server = server.rstrip("/")

    @classmethod
    def connect(cls, info: kopf.ConnectionInfo) -> Kube:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=info.as_ssl_context()),
            headers={**info.as_http_headers(), "User-Agent": FIELD_MANAGER},
            timeout=aiohttp.ClientTimeout(total=30),
        )
        return cls(session, info.server)

    async def close(self) -> None:
        await self._session.close()

    async def _request(
        self,
        method: str,
        url_path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Object | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Object | None:
        data = None if body is None else json.dumps(body)
        try:
            async with self._session.request(
                method,
                self._server + url_path,
                params=params,
                data=data,
                headers={"Content-Type": content_type} if body is not None else None,
            ) as response:
                text = await response.text()
                if response.status == 404 and missing_ok:
                    return None
                if response.status >= 400:
                    error = KubeConflict if response.status == 409 else KubernetesError
                    raise error(
                        f"{method} {url_path}: {response.status} {_reason(text)}", response.status
                    )
                found: Object = json.loads(text) if text else {}
                return found
        except aiohttp.ClientError as exc:
            raise KubernetesError(f"{method} {url_path}: {exc!r}") from exc
        except TimeoutError as exc:
            raise KubernetesError(f"{method} {url_path}: no answer in time") from exc

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> Object | None:
        return await self._request("GET", path(api_version, kind, namespace, name), missing_ok=True)

    async def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str
    ) -> list[Object]:
        found = await self._request(
            "GET",
            path(api_version, kind, namespace),
            params={"labelSelector": label_selector},
            missing_ok=True,
        )
        return [] if found is None else list(found.get("items", []))

    async def apply(self, body: Object) -> Object:
        """Server-side apply: the operator's fields of ``body`` become what is there."""
        metadata = body["metadata"]
        applied = await self._request(
            "PATCH",
            path(body["apiVersion"], body["kind"], metadata.get("namespace"), metadata["name"]),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=body,
            content_type="application/apply-patch+yaml",
        )
        assert applied is not None
        return applied

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Deletes in the background (dependents are collected); False when it was gone."""
        gone = await self._request(
            "DELETE",
            path(api_version, kind, namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            missing_ok=True,
        )
        return gone is not None

    async def write_status(
        self, body: Mapping[str, Any], status: BaseModel, *, kept: Collection[str] = ()
    ) -> None:
        """Makes ``status`` (a status model) the resource's status, unless it is already.

        A merge patch of the whole model: a field the model leaves empty is sent as null,
        which removes it, so what is stored is the model without its empty fields. An
        unchanged status is not written: no new resourceVersion, hence no watch event that
        would wake another reconcile of the same resource.

        ``kept`` names fields (as stored, e.g. ``lastScaleTime``) that record history rather
        than observe the present: left empty, they are not sent, so the stored value stays.
        A reconcile can run on a copy of the resource older than the last status write (the
        watch event of a scale arrives before the status written after it), and such a copy
        must not erase what it never saw.
        """
        written = {
            key: value
            for key, value in status.model_dump(by_alias=True, mode="json").items()
            if value is not None or key not in kept
        }
        before = body.get("status") or {}
        if all(before.get(key) == value for key, value in written.items()):
            return
        metadata = body["metadata"]
        await self._request(
            "PATCH",
            path(body["apiVersion"], body["kind"], metadata.get("namespace"), metadata["name"])
            + "/status",
            body={"status": written},
            content_type="application/merge-patch+json",
            missing_ok=True,
        )

    async def scale(
        self, api_version: str, kind: str, namespace: str, name: str, replicas: int
    ) -> None:
        """Through the scale subresource, as `kubectl scale` and autoscalers do."""
        await self._request(
            "PATCH",
            path(api_version, kind, namespace, name) + "/scale",
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    async def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server knows this kind (e.g. the ServiceMonitor CRD is installed)."""
        root = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        found = await self._request("GET", root, missing_ok=True)
        if found is None:
            return False
        return any(resource.get("kind") == kind for resource in found.get("resources", []))


def _reason(text: str) -> str:
    try:
        status = json.loads(text)
    except ValueError:
        return text[:500]
    return str(status.get("message", text[:500]))
