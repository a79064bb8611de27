"""The spool (an instance's segments) ships to the real PostgreSQL through a proxy that fails
on demand: decisions go on while it is down, and every record arrives once, in order, when it
is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from audit.postgres import PostgresLedgerStore
from audit.record import LedgerRecord, decode
from audit.segments import Frame, SegmentLog, walk
from audit.shipper import LedgerShipper
from audit.writer import LedgerWriter
from tests.support.postgres import URL, check_chain
from tests.support.tcp_proxy import FaultyProxy


def proxied_url(port: int) -> str:
    return URL.replace("127.0.0.1:5432", f"127.0.0.1:{port}")


def test_outages_lose_nothing_and_duplicate_nothing(tmp_path: Path, pg_schema: str) -> None:
    proxy = FaultyProxy(("127.0.0.1", 5432)).start()
    spool = tmp_path / "ledger"
    store = SegmentLog(spool, "i-1")
    writer = LedgerWriter(store)
    shipper = LedgerShipper(
        spool,
        "i-1",
        lambda: PostgresLedgerStore(proxied_url(proxy.port), instance="i-1", schema=pg_schema),
        batch=300,
        max_backoff=0.2,
    )
    appended = 0
    stop = threading.Event()

    def decide() -> None:
        nonlocal appended
        while not stop.is_set():
            writer.append_blocking(LedgerRecord(id=f"d-{appended}", kind="decision"))
            appended += 1

    producer = threading.Thread(target=decide)
    producer.start()
    try:
        time.sleep(0.5)
        for _ in range(3):  # three outages while decisions keep coming
            proxy.down()
            before = appended
            time.sleep(0.6)
            assert appended > before  # decisions go on without PostgreSQL
            assert shipper.status().lag > 0  # and the spool grows
            assert shipper.status().last_error is not None
            proxy.up()
            time.sleep(0.4)
    finally:
        stop.set()
        producer.join()
    head, _ = writer.head
    writer.close()
    assert shipper.wait_until_shipped(head, timeout=30), shipper.status()
    shipper.close()
    target = PostgresLedgerStore(URL, instance="i-1", schema=pg_schema)
    try:
        assert target.count() == head  # each record exactly once
        report = check_chain(target)
        assert report.ok and report.records == head
        assert [body for _, body in target.scan()] == [f.body for f in store.frames()]
    finally:
        target.close()
        store.close()
        proxy.close()


def test_a_new_shipper_resumes_where_postgresql_stands(tmp_path: Path, pg_schema: str) -> None:
    spool = tmp_path / "ledger"
    store = SegmentLog(spool, "i-2")
    writer = LedgerWriter(store)
    for k in range(500):
        writer.append_blocking(LedgerRecord(id=f"a-{k}", kind="decision"))

    def target() -> PostgresLedgerStore:
        return PostgresLedgerStore(URL, instance="i-2", schema=pg_schema)

    first = LedgerShipper(spool, "i-2", target, batch=100)
    assert first.wait_until_shipped(500, timeout=30)
    first.close()
    for k in range(300):
        writer.append_blocking(LedgerRecord(id=f"b-{k}", kind="decision"))
    writer.close()
    second = LedgerShipper(spool, "i-2", target, batch=100)
    assert second.wait_until_shipped(800, timeout=30)
    second.close()
    check = target()
    try:
        assert check.count() == 800 and check_chain(check).ok
    finally:
        check.close()
        store.close()


def test_a_connection_cut_in_the_middle_of_batches(tmp_path: Path, pg_schema: str) -> None:
    """Cut the connection repeatedly while large batches are in flight."""
    proxy = FaultyProxy(("127.0.0.1", 5432)).start()
    spool = tmp_path / "ledger"
    store = SegmentLog(spool, "i-3", segment_bytes=256 * 1024)  # shipping crosses segments
    writer = LedgerWriter(store)
    for k in range(6000):
        writer.submit(LedgerRecord(id=f"c-{k}", kind="decision", data={"pad": "x" * 400}))
    writer.close()
    shipper = LedgerShipper(
        spool,
        "i-3",
        lambda: PostgresLedgerStore(proxied_url(proxy.port), instance="i-3", schema=pg_schema),
        batch=1000,
        max_backoff=0.1,
    )
    for _ in range(8):
        time.sleep(0.05)
        proxy.down()
        proxy.up()
    assert shipper.wait_until_shipped(6000, timeout=60), shipper.status()
    shipper.close()
    check = PostgresLedgerStore(URL, instance="i-3", schema=pg_schema)
    try:
        assert check.count() == 6000 and check_chain(check).ok
    finally:
        check.close()
        store.close()
        proxy.close()


def test_a_server_with_database_url_ships_its_decisions(tmp_path: Path) -> None:
    """Decisions answered by a server with DATABASE_URL reach PostgreSQL, in order, once."""
    import uuid

    import httpx

    from tests.support.live_server import LiveServer

    instance = f"srv-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": URL, "FRONTLINE_INSTANCE": instance}
    with LiveServer(tmp_path / "d", env=env) as server:
        ids = []
        for k in range(20):
            r = httpx.post(
                server.url + "/v1/decisions",
                json={"ruleset": "retention-desk", "customer_id": f"c-{k}", "agent_id": "agent-7"},
                headers=server.auth("agent"),
            )
            assert r.status_code == 200
            ids.append(r.json()["decision_id"])
        deadline = time.monotonic() + 20
        metrics = ""
        while time.monotonic() < deadline:
            metrics = httpx.get(server.url + "/metrics").text
            if f'frontline_ledger_unshipped{{instance="{instance}"}} 0.0' in metrics:
                break
            time.sleep(0.1)
        assert f'frontline_ledger_shipping_connected{{instance="{instance}"}} 1.0' in metrics
    target = PostgresLedgerStore(URL, instance=instance)
    try:
        report = check_chain(target)
        kinds = [decode(body).kind for _, body in target.scan()]
        assert report.ok and report.records == len(kinds)
        # 3 starter deploys and 20 decisions, and the signed tree heads shipped with them
        assert len(kinds) - kinds.count("tree_head") == 23
        assert kinds.count("tree_head") >= 1
        spooled = SegmentLog(tmp_path / "d" / "ledger", instance, readonly=True)
        try:
            assert [body for _, body in target.scan()] == [f.body for f in spooled.frames()]
        finally:
            spooled.close()
    finally:
        target.close()


def test_two_spools_with_one_instance_name_are_refused(tmp_path: Path, pg_schema: str) -> None:
    def fill(path: Path, prefix: str, n: int) -> None:
        store = SegmentLog(path, "same")
        writer = LedgerWriter(store)
        for k in range(n):
            writer.append_blocking(LedgerRecord(id=f"{prefix}-{k}", kind="decision"))
        writer.close()
        store.close()

    fill(tmp_path / "a", "a", 50)
    fill(tmp_path / "b", "b", 80)

    def target() -> PostgresLedgerStore:
        return PostgresLedgerStore(URL, instance="same", schema=pg_schema)

    first = LedgerShipper(tmp_path / "a", "same", target)
    assert first.wait_until_shipped(50, timeout=20)
    first.close()
    second = LedgerShipper(tmp_path / "b", "same", target, max_backoff=0.1)
    time.sleep(1.0)
    status = second.status()
    second.close()
    assert status.last_error is not None and "different chain" in status.last_error
    check = target()
    try:
        assert check.count() == 50 and check_chain(check).ok  # nothing of b was mixed in
    finally:
        check.close()


def test_a_log_removed_or_cut_behind_what_postgresql_holds_stops_the_server(
    tmp_path: Path,
) -> None:
    """The shipped copy keeps the log honest: a server whose log lost records PostgreSQL holds
    (its tail cut, or the whole instance's log removed) refuses to start, in one sentence."""
    import shutil
    import uuid

    import httpx

    from tests.support.live_server import LiveServer

    instance = f"srv-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": URL, "FRONTLINE_INSTANCE": instance}
    data = tmp_path / "d"
    with LiveServer(data, env=env) as server:
        for k in range(5):
            httpx.post(
                server.url + "/v1/decisions",
                json={"ruleset": "retention-desk", "customer_id": f"c-{k}", "agent_id": "agent-7"},
                headers=server.auth("agent"),
            )
    target = PostgresLedgerStore(URL, instance=instance)
    try:
        deadline = time.monotonic() + 20
        while target.head()[0] < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        shipped = target.head()[0]
    finally:
        target.close()
    assert shipped >= 8  # the starters, the decisions and a tree head at least

    def refused() -> str:
        attempt = LiveServer(data, env=env)
        try:
            attempt.start(timeout=30)
        except RuntimeError:
            return attempt.output()
        finally:
            attempt.stop()
        raise AssertionError("the server started")

    log_dir = data / "ledger" / instance
    kept = tmp_path / "kept"
    shutil.copytree(log_dir, kept)
    segment = log_dir / "00000000000000000001.seg"
    frames = [f for f in walk(segment, 1) if isinstance(f, Frame)]
    # keep the first shipped - 2 records: the tail PostgreSQL holds is cut
    segment.write_bytes(segment.read_bytes()[: frames[shipped - 2].offset])
    said = refused()
    assert f"PostgreSQL holds {shipped} records of instance {instance}" in said, said
    assert f"holds {shipped - 2}: the log was removed or its tail cut" in said, said

    shutil.rmtree(log_dir)
    said = refused()
    assert f"PostgreSQL holds {shipped} records of instance {instance}" in said, said
    assert "holds 0: the log was removed" in said, said

    shutil.copytree(kept, log_dir)  # restored from the backup: it starts again
    with LiveServer(data, env=env):
        pass
