"""Every query of the overview and of each processor's dashboard, and every recording rule,
returns data from a real Prometheus scraping the real edge and processors after a short load.

The load makes every kind of series the dashboards show: orders of two products that confirm
(bought together, for the recommendations), a declined
card, one beyond the stock, a cancel, and an undecodable record on an input topic of each
processor. It runs twice, the second time after Prometheus has scraped the first, so every
counter has grown between two scrapes and every rate and quantile has a value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack.prometheus_server import EDGE_JOB, PROCESSOR_JOB, ScrapeTarget
from conveyor.domain.processors import CATALOGUE, PROCESSOR_NAMES
from dashboards.operator import UID as OPERATOR_UID
from dashboards.overview import UID as OVERVIEW_UID
from dashboards.processors import uid
from tests.dashboards.prometheus import (
    PrometheusProcess,
    assert_every_query_is_valid,
    assert_every_query_returns_data,
    assert_every_recording_rule_returns_data,
    dashboard_queries,
    load_dashboard,
    query_variables,
    running_prometheus,
)
from tests.support.edge import Account, Api, EdgeProcess
from tests.support.stack import RunningStack
from tests.support.waiting import eventually
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# An input topic of each processor (notifications and the projector both read orders.events).
INPUT_TOPIC = {spec.name: spec.inputs[0].name for spec in CATALOGUE}
ROUNDS = 2
CONFIRMED_PER_ROUND = 3


@pytest.fixture(scope="module")
def prometheus(
    edge: EdgeProcess, workers: Workers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    targets = [
        ScrapeTarget(EDGE_JOB, f"127.0.0.1:{edge.port}"),
        *(
            ScrapeTarget(PROCESSOR_JOB, f"127.0.0.1:{worker.metrics_port}", {"processor": name})
            for name, worker in workers.workers.items()
        ),
    ]
    # Two seconds, so a scrape may take two (the timeout is the interval) on a loaded machine.
    with running_prometheus(
        tmp_path_factory.mktemp("prometheus"), targets, interval="2s"
    ) as running:
        running.wait_until_scraped()
        yield running


@dataclass(frozen=True)
class Load:
    """What the load did that the dashboards should show."""

    reasons: set[str]


async def one_round(api: Api, admin: Account, customer: Account, bootstrap: str) -> set[str]:
    plenty = (await api.new_product(admin, stock=100))["id"]
    bought_with = (await api.new_product(admin, stock=100))["id"]
    scarce = (await api.new_product(admin, stock=1))["id"]
    confirmed = [
        await api.place(customer, [(plenty, 1), (bought_with, 1)])
        for _ in range(CONFIRMED_PER_ROUND)
    ]
    declined = await api.place(customer, [(plenty, 1)], token="tok_chargeDeclined")
    beyond_stock = await api.place(customer, [(scarce, 2)])
    for placed in (*confirmed, declined, beyond_stock):
        assert placed.status_code == 202, placed.text
    for placed in confirmed:
        await api.wait_for(customer, placed.json()["id"], "confirmed")
    reasons = {
        (await api.wait_for(customer, placed.json()["id"], "rejected"))["reason"]
        for placed in (declined, beyond_stock)
    }
    cancelled = confirmed[0].json()["id"]
    answer = await api.http.post(f"/orders/{cancelled}/cancel", headers=customer.auth)
    assert answer.status_code == 202, answer.text
    await api.wait_for(customer, cancelled, "cancelled")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic in sorted(set(INPUT_TOPIC.values())):
            await producer.send_and_wait(topic, b"{not json", key=b"dashboards-check")
    finally:
        await producer.stop()
    return reasons


def edge_orders_answered(edge: EdgeProcess) -> float:
    """How many POST /orders the edge has answered, from its own /metrics."""
    families = text_string_to_metric_families(httpx.get(f"{edge.base_url}/metrics").text)
    return sum(
        sample.value
        for family in families
        if family.name == "conveyor_http_requests"
        for sample in family.samples
        if sample.name == "conveyor_http_requests_total"
        and sample.labels["route"] == "/api/v1/orders"
        and sample.labels["method"] == "POST"
    )


def wait_until_prometheus_saw_the_round(prometheus: PrometheusProcess, edge: EdgeProcess) -> None:
    """Until the series the round's last steps create were scraped, and the edge's requests.

    The edge is waited for by value: its series exist from earlier tests, so only a scrape
    taken after the round shows the increase its latency quantiles are computed from.
    """
    wanted = {
        'conveyor_saga_outcomes_total{status="cancelled"}': 1,
        'conveyor_emails_sent_total{event="OrderCancelled"}': 1,
        'conveyor_order_end_to_end_seconds_count{status="cancelled"}': 1,
        'conveyor_copurchases_total{outcome="counted"}': 1,
        "count by (processor) (conveyor_dead_letters_total)": len(PROCESSOR_NAMES),
    }
    answered = edge_orders_answered(edge)
    edge_expr = 'sum(conveyor_http_requests_total{route="/api/v1/orders", method="POST"})'

    def unseen() -> list[str]:
        missing = [expr for expr, series in wanted.items() if len(prometheus.query(expr)) < series]
        scraped = prometheus.query(edge_expr)
        if not scraped or float(scraped[0]["value"][1]) < answered:
            missing.append(f"{edge_expr} >= {answered}")
        return missing

    eventually(
        unseen,
        "Prometheus scraped the round's series",
        until=lambda missing: not missing,
        within=120,
        context=lambda: f"targets: {prometheus.target_health()}",
    )


@pytest.fixture(scope="module")
async def load(
    prometheus: PrometheusProcess, edge: EdgeProcess, stack: RunningStack
) -> AsyncIterator[Load]:
    api = Api(edge, stack.maildir)
    try:
        admin = await api.admin()
        # Verified: e-mails about orders go only to a verified address.
        customer = await api.new_account(verified=True)
        reasons: set[str] = set()
        for _ in range(ROUNDS):
            reasons |= await one_round(api, admin, customer, stack.urls.kafka_bootstrap_servers)
            wait_until_prometheus_saw_the_round(prometheus, edge)
        yield Load(reasons)
    finally:
        await api.close()


def test_the_load_rejects_for_want_of_stock_and_for_a_declined_card(load: Load) -> None:
    assert load.reasons == {"out_of_stock", "payment_declined"}


def test_every_query_of_the_overview_returns_data(
    prometheus: PrometheusProcess, load: Load
) -> None:
    assert_every_query_returns_data(prometheus, load_dashboard(OVERVIEW_UID))


@pytest.mark.parametrize("processor", PROCESSOR_NAMES)
def test_every_query_of_the_processor_dashboard_returns_data(
    prometheus: PrometheusProcess, load: Load, processor: str
) -> None:
    assert_every_query_returns_data(prometheus, load_dashboard(uid(processor)))


def test_every_recording_rule_returns_data(prometheus: PrometheusProcess, load: Load) -> None:
    assert_every_recording_rule_returns_data(prometheus)


def test_the_funnel_shows_each_rejection_reason_apart(
    prometheus: PrometheusProcess, load: Load
) -> None:
    [rejected] = [
        query
        for query in dashboard_queries(load_dashboard(OVERVIEW_UID))
        if query.panel == "Orders funnel" and "rejected" in query.expr
    ]

    def reasons() -> set[str]:
        return {sample["metric"]["reason"] for sample in prometheus.query(rejected.expr)}

    eventually(
        reasons,
        f"the funnel shows the reasons {sorted(load.reasons)}",
        until=lambda shown: shown >= set(load.reasons),
        within=120,
    )


def test_the_dead_letter_alert_fires_for_each_processor_that_dead_lettered(
    prometheus: PrometheusProcess, load: Load
) -> None:
    def firing() -> set[tuple[str, str]]:
        alerts = prometheus.query('ALERTS{alertname="ConveyorDeadLetters", alertstate="firing"}')
        return {(alert["metric"]["processor"], alert["metric"]["topic"]) for alert in alerts}

    eventually(
        firing,
        "the dead-letter alert fires for every processor",
        until=lambda alerts: alerts >= set(INPUT_TOPIC.items()),
        within=120,
    )


def test_every_query_of_the_operator_dashboard_is_valid_promql(
    prometheus: PrometheusProcess,
) -> None:
    # Whether they return data needs a running operator; the operator's tests check that.
    dashboard = load_dashboard(OPERATOR_UID)
    assert_every_query_is_valid(
        prometheus, dashboard, dict.fromkeys(query_variables(dashboard), "(default)")
    )
