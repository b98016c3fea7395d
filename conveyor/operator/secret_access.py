"""Which Secrets a StreamProcessor may hand to its pods: only those labelled for it.

Whoever may write a StreamProcessor chooses the Secrets its pods read (``spec.kafka.secretRef``,
``spec.envFromSecrets``), and the operator, not that author, is the one who can read them.
Without a check, anyone allowed to create a StreamProcessor in a namespace could have the
operator put any Secret of that namespace (the edge's token signing keys, say) into the
environment of pods running an image of their choosing. An admission policy cannot look at
another object, so the check is here, before anything is applied: every Secret the pods would
read must exist and carry ``conveyor.dev/processor-access: "true"``.
"""

from __future__ import annotations

from conveyor.domain.resources import StreamProcessorSpec
from conveyor.operator.kube import Kube

PROCESSOR_ACCESS_LABEL = "conveyor.dev/processor-access"
PROCESSOR_ACCESS_VALUE = "true"


def secrets_read_by_pods(spec: StreamProcessorSpec) -> list[str]:
    """The names of the Secrets the processor's pods read, each once, in spec order."""
    names = [spec.kafka.secret_ref.name] if spec.kafka.secret_ref is not None else []
    names.extend(spec.env_from_secrets)
    return list(dict.fromkeys(names))


async def refused_secrets(kube: Kube, namespace: str, spec: StreamProcessorSpec) -> str | None:
    """Why the pods may not read the Secrets the spec names, or None when they may."""
    problems = []
    for name in secrets_read_by_pods(spec):
        secret = await kube.get("v1", "Secret", namespace, name)
        if secret is None:
            problems.append(f"Secret {name} not found")
            continue
        labels = secret["metadata"].get("labels") or {}
        if labels.get(PROCESSOR_ACCESS_LABEL) != PROCESSOR_ACCESS_VALUE:
            problems.append(f"Secret {name} is not labelled for processors")
    if not problems:
        return None
    return (
        f"{'; '.join(problems)}: processor pods get only Secrets labelled "
        f"{PROCESSOR_ACCESS_LABEL}={PROCESSOR_ACCESS_VALUE}, and every key of such a Secret "
        f"reaches them. Label a Secret that holds only what processors need "
        f"(kubectl label secret NAME {PROCESSOR_ACCESS_LABEL}={PROCESSOR_ACCESS_VALUE}) or "
        "name another; nothing is applied until then"
    )
