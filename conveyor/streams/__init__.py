"""The stream processors (faust-streaming): orders, inventory, payments, notifications, projector.

Each runs as its own consumer group. They speak to the rest of Conveyor only through Kafka
topics declared in ``conveyor.domain`` and never import the edge or the operator.
"""
