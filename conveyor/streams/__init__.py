"""The stream processors (faust-streaming): the runtime they share and a handler module each.

Which processors there are, and what each reads, parks, keeps and writes, is the catalogue's
(``conveyor.domain.processors``). Each runs as its own consumer group. They speak to the rest
of Conveyor only through Kafka topics declared in ``conveyor.domain`` and never import the
edge or the operator.
"""
