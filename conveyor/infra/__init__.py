"""Connections to the outside services every component shares: Kafka, PostgreSQL, Redis.

Here live the service URLs, the one Kafka producer factory, topic provisioning and the
database schema migrations. It knows the domain and nothing above it: no routes, no
agents, no Kubernetes objects.
"""
