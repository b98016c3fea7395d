"""The handlers of the saga's processors, one module each, named after its processor.

``build(name)`` gives one ready to run: the processor the catalogue
(``conveyor.domain.processors``) declares, with the handling its module's ``register`` wires.
"""

from __future__ import annotations

import importlib

from conveyor.domain.processors import ProcessorName
from conveyor.infra.settings import ServiceUrls
from conveyor.streams.runtime import Processor, WorkerSettings


def build(name: ProcessorName, urls: ServiceUrls, settings: WorkerSettings) -> Processor:
    processor = Processor(name, urls, settings)
    # Each processor's module is named after it, so a new processor is its catalogue entry
    # and its module, nothing else.
    handlers = importlib.import_module(f"{__name__}.{processor.spec.name}")
    handlers.register(processor)
    return processor
