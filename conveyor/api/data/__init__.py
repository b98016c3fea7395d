"""The edge's SQL, one module per resource. Routes call these and never write SQL.

asyncpg's exceptions stop here: a uniqueness clash becomes ``Conflict``, a row that breaks
a check becomes ``Unprocessable``, and an unreachable database ``ServiceUnavailable``.
"""
