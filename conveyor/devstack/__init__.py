"""The local stack: real Kafka, PostgreSQL and Redis, an SMTP sink and a payment sandbox.

Everything here starts, watches and stops local processes for development and tests
(``conveyor dev up|down|status``), and checks what a run left behind (``money``: the
sandbox's ledger against the orders). Production never imports it: there every service is an
existing one named by URL.
"""
