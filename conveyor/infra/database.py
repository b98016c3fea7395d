"""The PostgreSQL schema: numbered SQL migrations applied automatically, once, in order.

Migrations are plain SQL files in ``conveyor/infra/migrations`` named ``NNNN_what.sql``. An
applied file is never edited; a change is a new file. Each runs in its own transaction with
its bookkeeping row, under an advisory lock, so concurrent callers (several edge replicas
starting at once) apply each file exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from conveyor.infra.errors import MigrationError

# Any fixed number works, as long as nothing else in the database uses it as a lock.
MIGRATION_LOCK_KEY = 0x_C0_4E_7E_00
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found: dict[int, Migration] = {}
    for entry in resources.files("conveyor.infra").joinpath("migrations").iterdir():
        matched = _FILE_NAME.match(entry.name)
        if matched is None:
            continue
        version = int(matched.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version}: {entry.name}")
        found[version] = Migration(version, entry.name, entry.read_text())
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3, ... without gaps: {versions}")
    return [found[version] for version in versions]


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, fit for logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise MigrationError(
            f"cannot connect to {redact_dsn(dsn)}: {exc}; is PostgreSQL running? "
            "Check DATABASE_URL, or start the local stack with `conveyor dev up`"
        ) from exc


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every migration the database lacks; returns the names applied now."""
    migrations = available_migrations()
    connection = await _connect(dsn)
    applied_now: list[str] = []
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            rows = await connection.fetch("SELECT version, name, checksum FROM schema_migrations")
            applied = {row["version"]: row for row in rows}
            for migration in migrations:
                row = applied.get(migration.version)
                if row is not None:
                    if row["checksum"] != migration.checksum:
                        raise MigrationError(
                            f"{migration.name} was changed after it was applied to "
                            f"{redact_dsn(dsn)}; applied files are never edited: restore it "
                            "and put the change in a new migration"
                        )
                    continue
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(migration.name)
            unknown = sorted(set(applied) - {m.version for m in migrations})
            if unknown:
                raise MigrationError(
                    f"{redact_dsn(dsn)} has migrations {unknown} this version of Conveyor "
                    "does not know; it was migrated by a newer release"
                )
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migrating {redact_dsn(dsn)} failed: {exc}") from exc
    finally:
        await connection.close()
    return applied_now


async def create_database_if_missing(server_dsn: str, name: str) -> bool:
    """Create database ``name`` on the server ``server_dsn`` points at; True when created."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise MigrationError(f"database name {name!r} must be lowercase letters, digits and _")
    connection = await _connect(server_dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await connection.execute(f'CREATE DATABASE "{name}"')
        return True
    except asyncpg.DuplicateDatabaseError:
        return False
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"creating database {name} failed: {exc}") from exc
    finally:
        await connection.close()
