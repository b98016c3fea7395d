"""The REST edge (FastAPI): auth, catalog, orders, notifications, health and metrics.

It talks to Kafka, PostgreSQL and Redis through ``conveyor.infra`` and never imports the
stream processors or the operator.
"""
