"""The shared language of Conveyor: commands, events, their envelope and codec, topic declarations.

The processor catalogue (``processors``) lives here too, so every layer can derive from it.

Purely computational: pydantic models and functions over bytes. No I/O here, and nothing
from the rest of Conveyor is imported; every other package may import this one.
"""
