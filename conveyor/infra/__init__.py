"""Connections to the outside services every component shares: Kafka, PostgreSQL, Redis, SMTP.

Here live the service URLs, the one Kafka producer factory, topic provisioning, the
database schema migrations and the one SMTP mailer. It knows the domain and nothing above
it: no routes, no agents, no Kubernetes objects.
"""
