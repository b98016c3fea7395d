"""Each processor, as ``conveyor worker`` builds it, reads and keeps what the catalogue says.

Built in-process and never started: nothing here talks to Kafka; what is checked is the
wiring the worker would subscribe and restore with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.domain.processors import CATALOGUE, PROCESSOR_NAMES, ProcessorSpec
from conveyor.domain.topics import retry_topic
from conveyor.infra.settings import ServiceUrls
from conveyor.streams.processors import build
from conveyor.streams.runtime import Processor, WorkerSettings
from conveyor.streams.stock import ProductStock


def built(name: str, home: Path) -> Processor:
    # Nothing listens here: building a processor must not need its services.
    unreachable = ServiceUrls(
        kafka_bootstrap_servers="127.0.0.1:9",
        database_url="postgresql://postgres@127.0.0.1:9/conveyor",
        redis_url="redis://127.0.0.1:9/0",
        smtp_url="smtp://127.0.0.1:9",
        payment_gateway_url="http://127.0.0.1:9",
    )
    return build(name, unreachable, WorkerSettings(store="memory", data_dir=home))


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_a_processor_consumes_its_inputs_and_the_retry_topics_of_what_it_parks(
    spec: ProcessorSpec, tmp_path: Path
) -> None:
    processor = built(spec.name, tmp_path)
    subscribed = {
        topic for agent in processor.app.agents.values() for topic in agent.channel.topics
    }
    assert subscribed == {
        *(topic.name for topic in spec.inputs),
        *(retry_topic(topic) for topic in spec.parks),
    }
    assert processor.group_id == spec.consumer_group


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_a_processor_keeps_exactly_the_tables_its_catalogue_entry_declares(
    spec: ProcessorSpec, tmp_path: Path
) -> None:
    processor = built(spec.name, tmp_path)
    assert sorted(processor.app.tables) == sorted(spec.tables)


def test_standby_replicas_are_asked_for_not_faust_s_default_of_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert built("inventory", tmp_path).app.conf.table_standby_replicas == 0
    monkeypatch.setenv("CONVEYOR_TABLE_STANDBY_REPLICAS", "2")
    settings = WorkerSettings(store="memory", data_dir=tmp_path)
    processor = Processor("inventory", built("inventory", tmp_path).urls, settings)
    assert processor.app.conf.table_standby_replicas == 2


def test_a_table_the_catalogue_does_not_declare_is_refused_when_the_worker_is_built(
    tmp_path: Path,
) -> None:
    processor = built("payments", tmp_path)
    with pytest.raises(ValueError, match="catalogue") as refused:
        processor.state_table("products", ProductStock)
    assert "payments" in str(refused.value)


def test_building_a_processor_the_catalogue_does_not_know_names_the_ones_it_does(
    tmp_path: Path,
) -> None:
    with pytest.raises(KeyError) as refused:
        built("shipping", tmp_path)
    assert all(name in str(refused.value) for name in PROCESSOR_NAMES)


def refused_start(processor: str, env: dict[str, str], data_dir: Path) -> str:
    """What ``conveyor worker processor`` said when it refused to start (exit 1), on one line:
    the terminal's width may fold its message."""
    run = subprocess.run(
        [sys.executable, "-m", "conveyor", "worker", processor],
        env={**os.environ, "CONVEYOR_STORE": "memory", "CONVEYOR_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    return " ".join((run.stdout + run.stderr).split())


@pytest.mark.parametrize(
    ("gateway", "named"),
    [
        ({"PAYMENT_GATEWAY_URL": "http://payments.example"}, "PAYMENT_GATEWAY_URL"),
        (
            {
                "PAYMENT_GATEWAY_URL": "https://payments.example",
                "PAYMENT_GATEWAY_CA_CERTIFICATES": "not a certificate",
            },
            "PAYMENT_GATEWAY_CA_CERTIFICATES",
        ),
    ],
    ids=["plain-http-across-a-network", "unreadable-authority"],
)
def test_the_payments_worker_refuses_a_gateway_it_would_reach_in_clear_or_cannot_check(
    gateway: dict[str, str], named: str, tmp_path: Path
) -> None:
    said = refused_start(
        "payments", {"PAYMENT_GATEWAY_API_KEY": "sk_live_example", **gateway}, tmp_path
    )
    assert named in said


def test_a_worker_refuses_a_setting_out_of_range_naming_the_variable(tmp_path: Path) -> None:
    # A session above Faust's request timeout used to end in a traceback from deep in Faust.
    said = refused_start("inventory", {"CONVEYOR_SESSION_TIMEOUT_SECONDS": "900"}, tmp_path)
    assert "CONVEYOR_SESSION_TIMEOUT_SECONDS: Input should be less than or equal to 90" in said
    assert "Traceback" not in said
