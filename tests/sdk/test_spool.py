"""The on-disk spool: an outage longer than memory holds, a sender killed with records
spooled and started again, processes sharing a spool folder, and a full spool."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from payback_client import Failure

from metering.models import UsageEvent
from tests.sdk.conftest import Server, client
from tests.support.flaky_proxy import FlakyProxy
from tests.support.polling import wait_for

# A backend process: records `count` calls with ids `<prefix>-<n>` through a client with
# a spool (its rows leased for 2 s: what a killed sender held is free 2 s later; "-": no
# spool), says "spooled" once memory is empty (everything durable, or sent), then
# flushes for `flush` seconds and says whether everything went.
BACKEND = textwrap.dedent(
    """
    import sys, time
    from payback_client import Payback
    url, key, spool, prefix, count, flush = sys.argv[1:7]
    payback = Payback(api_key=key, base_url=url, spool=None if spool == "-" else spool,
                      spool_lease=2, flush_interval=0.05, backoff=0.01, max_backoff=0.05)
    for n in range(int(count)):
        payback.record_call(customer="acme", model="gpt-4o", input_tokens=n, id=f"{prefix}-{n}")
    while payback._outbox.pending:
        time.sleep(0.01)
    print("spooled", flush=True)
    print("flushed" if payback.flush(timeout=float(flush)) else "not flushed", flush=True)
    """
)


def _backend(proxy_url: str, server: Server, spool: Path | str, prefix: str, count: int,
             flush: float) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", BACKEND, proxy_url, server.key, str(spool), prefix, str(count),
         str(flush)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stored() -> list[str]:
    return sorted(UsageEvent.objects.values_list("event_id", flat=True))


def test_an_outage_longer_than_memory_holds_is_spooled_then_delivered_once(
    server: Server, proxy: FlakyProxy, failures: list[Failure], tmp_path: Path
) -> None:
    proxy.down = True
    payback = client(server, failures, url=proxy.url, spool=tmp_path, max_queue=10)

    ids = []
    for _ in range(30):  # 300 records through a memory of 10
        ids += [payback.record_call(customer="acme", model="gpt-4o") for _ in range(10)]
        wait_for(lambda: payback._outbox.pending == 0, what="memory spilled to the spool")
    assert not UsageEvent.objects.exists()
    proxy.lose_next_answer()  # the server back, one answer lost on the way
    proxy.down = False
    assert payback.flush(timeout=60)
    payback.close()

    assert _stored() == sorted(ids)
    assert failures == []
    assert payback._outbox.spool is not None and payback._outbox.spool.count() == 0


def test_a_sender_killed_with_records_spooled_loses_none_when_started_again(
    server: Server, proxy: FlakyProxy, tmp_path: Path
) -> None:
    proxy.down = True
    first = _backend(proxy.url, server, tmp_path, "killed", 500, flush=600)
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "spooled"
    os.kill(first.pid, signal.SIGKILL)  # mid-retry, nothing sent
    first.wait(30)
    assert not UsageEvent.objects.exists()

    proxy.down = False
    again = _backend(proxy.url, server, tmp_path, "after", 5, flush=60)
    out, _ = again.communicate(timeout=120)

    assert out.split() == ["spooled", "flushed"]
    assert _stored() == sorted([f"after-{n}" for n in range(5)] +
                               [f"killed-{n}" for n in range(500)])  # fmt: skip


def test_processes_sharing_a_spool_folder_store_everything_once(
    server: Server, proxy: FlakyProxy, tmp_path: Path
) -> None:
    backends = [_backend(proxy.url, server, tmp_path, f"p{n}", 300, flush=60) for n in range(3)]
    outputs = [backend.communicate(timeout=120)[0].split() for backend in backends]

    assert outputs == [["spooled", "flushed"]] * 3
    assert _stored() == sorted(f"p{p}-{n}" for p in range(3) for n in range(300))


def test_processes_sharing_nothing_store_everything_once(server: Server, proxy: FlakyProxy) -> None:
    backends = [_backend(proxy.url, server, "-", f"q{n}", 300, flush=60) for n in range(2)]
    outputs = [backend.communicate(timeout=120)[0].split() for backend in backends]

    assert outputs == [["spooled", "flushed"]] * 2
    assert _stored() == sorted(f"q{p}-{n}" for p in range(2) for n in range(300))


def test_the_server_gone_mid_stream_is_spooled_through_and_stored_once(
    server: Server, proxy: FlakyProxy, failures: list[Failure], tmp_path: Path
) -> None:
    payback = client(server, failures, url=proxy.url, spool=tmp_path)

    ids = []
    for step in range(60):  # about 3 s of calls; the server goes away for the middle one
        if step == 20:
            proxy.down = True
        if step == 40:
            wait_for(lambda: payback._outbox.spool.count() > 0, what="records spooled")
            proxy.down = False
        ids += [payback.record_call(customer="acme", model="gpt-4o") for _ in range(10)]
        time.sleep(0.05)
    assert payback.flush(timeout=60)
    payback.close()

    assert _stored() == sorted(ids)
    assert any(s.answered == 0 for s in proxy.seen)  # it was gone for a while
    assert failures == []


def test_a_process_that_exits_without_closing_still_sends_what_it_recorded(
    server: Server,
) -> None:
    script = textwrap.dedent(
        """
        import sys
        from payback_client import Payback
        payback = Payback(api_key=sys.argv[2], base_url=sys.argv[1], flush_interval=60)
        for n in range(25):
            payback.record_call(customer="acme", model="gpt-4o", id=f"exit-{n}")
        """
    )  # no flush, no close: the interpreter's exit closes the client

    subprocess.run([sys.executable, "-c", script, server.url, server.key], check=True,
                   timeout=60)  # fmt: skip

    assert _stored() == sorted(f"exit-{n}" for n in range(25))


def test_a_full_spool_refuses_new_records_and_keeps_the_oldest(
    server: Server, proxy: FlakyProxy, failures: list[Failure], tmp_path: Path
) -> None:
    proxy.down = True
    payback = client(server, failures, url=proxy.url, spool=tmp_path, max_spool_bytes=64 * 1024)

    ids = []
    while not failures:
        ids += [payback.record_call(customer="acme", model="gpt-4o") for _ in range(50)]
        wait_for(lambda: payback._outbox.pending == 0, what="memory spilled to the spool")
    proxy.down = False
    assert payback.flush(timeout=60)
    payback.close()

    refused = [f.record.id for f in failures]
    assert {f.code for f in failures} == {"spool_full"}
    assert _stored() == sorted(ids[: len(ids) - len(refused)])  # the oldest kept
    assert refused == ids[len(ids) - len(refused) :]
