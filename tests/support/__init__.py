"""What the tests share: the waits, the processes they start, and the fixtures.

Conftests import only from here; a test module imports its helpers from here too, so a
helper has one home whichever folder first needed it. Nothing here asserts a behaviour of
its own: the tests do.
"""
