"""A daemon's PostgreSQL session left idle inside a transaction is ended by the server, so the
row locks of a daemon cut off mid-transaction do not outlive it (db/engine.engine_options)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError

from multiflexi_web.config import ConfigError, load_settings
from multiflexi_web.db.engine import engine_options
from multiflexi_web.db.retry import is_transient
from tests.db_probe import probe_table


@pytest.fixture
def daemon_engine(db_url: str) -> Iterator[Engine]:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no server session to end: its locks go with the process")
    options = engine_options(
        db_url, pre_ping=False, application_name="multiflexi-test", idle_tx_timeout=0.5
    )
    eng = create_engine(db_url, **options)
    with probe_table(eng, "idle_probe"):
        yield eng
    eng.dispose()


def test_a_session_idle_in_a_transaction_is_ended_and_its_row_lock_released(
    db_url: str, daemon_engine: Engine
) -> None:
    rescuer_engine = create_engine(db_url)
    try:
        with daemon_engine.connect() as stuck, rescuer_engine.connect() as rescuer:
            setting = stuck.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
            assert setting == "500ms"
            stuck.exec_driver_sql("UPDATE idle_probe SET v = 1 WHERE id = 1")
            # ...and then nothing, as from a daemon cut off from the server. Another daemon's
            # update of that row waits only until the server ends the idle session (without
            # the setting: until lock_timeout, and the test fails).
            rescuer.exec_driver_sql("SET lock_timeout = '20s'")
            rescuer.exec_driver_sql("UPDATE idle_probe SET v = 2 WHERE id = 1")
            rescuer.commit()
            with pytest.raises(DBAPIError) as ended:
                stuck.exec_driver_sql("SELECT 1")
            assert is_transient(ended.value)  # the daemon's retry gets a fresh connection
        with rescuer_engine.connect() as check:
            assert check.exec_driver_sql("SELECT v FROM idle_probe").scalar() == 2
    finally:
        rescuer_engine.dispose()


def test_the_timeout_is_a_setting_with_a_clear_error() -> None:
    base = {"MULTIFLEXI_ENV_FILE": "/nonexistent", "MULTIFLEXI_LOCAL_ENV": "/nonexistent"}
    assert load_settings(base).db_idle_tx_timeout == 30.0
    assert load_settings({**base, "MULTIFLEXI_DB_IDLE_TX_TIMEOUT": "0"}).db_idle_tx_timeout == 0
    with pytest.raises(ConfigError, match="MULTIFLEXI_DB_IDLE_TX_TIMEOUT"):
        load_settings({**base, "MULTIFLEXI_DB_IDLE_TX_TIMEOUT": "soon"})
    assert "options" not in engine_options("postgresql+psycopg://x/y")["connect_args"]
