"""The sync Client: the same methods, plain iterators, callbacks, and a plain script."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.server import Server
from tickwire import Client, NotFound, Quote


def test_every_method(live: Server) -> None:
    with Client(live.url) as client:
        assert client.quote("btcusdt").code == "btcusdt"
        assert [q.code for q in client.quotes(["hf_GC", "btcusdt"])] == ["hf_GC", "btcusdt"]
        bars = client.klines("btcusdt", "5m", 10)
        assert len(bars) == 10 and bars[0].open_ms < bars[-1].open_ms
        assert len(client.history("btcusdt", "1h", bars[-1].open_ms - 5 * 3_600_000)) >= 5
        assert [c.id for c in client.categories()] == ["1", "2", "3", "4", "7"]
        assert client.symbols(4, 1, 2).total == 3
        assert len(client.all_symbols(1)) == 2
        assert client.names(("ethusdt", "hf_GC")) == {"ethusdt": "以太坊", "hf_GC": "纽约黄金"}
        with pytest.raises(NotFound, match="unknown code: nope"):
            client.quote("nope")


def test_stream_is_a_plain_iterator(live: Server) -> None:
    with Client(live.url) as client, client.stream(["btcusdt"]) as stream:
        codes = []
        for quote in stream:
            codes.append(quote.code)
            if len(codes) == 2:
                stream.subscribe("ethusdt")
            if "ethusdt" in codes:
                break
        assert stream.codes == {"btcusdt", "ethusdt"}
        stream.unsubscribe(["btcusdt"])
        assert stream.get(5) is not None
    assert codes[0] == "btcusdt" and codes[-1] == "ethusdt"


def test_callback_runs_on_its_own_thread(live: Server) -> None:
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def on_quote(quote: Quote) -> None:
        seen.append((quote.code, threading.current_thread().name))
        time.sleep(0.05)  # a slow callback holds up nobody else
        if len(seen) >= 4:
            done.set()

    with Client(live.url, heartbeat=0.2) as client:
        sub = client.subscribe(["xrpusdt"], on_quote)
        assert done.wait(10)
        sub.close()
        assert client.aio._hub.pongs >= 1
    assert {code for code, _ in seen} == {"xrpusdt"}
    assert {name for _, name in seen} == {"tickwire-callback"}


def test_closing_twice_and_stream_after_close(live: Server) -> None:
    client = Client(live.url)
    stream = client.stream("btcusdt")
    assert stream.get(5) is not None
    client.close()
    client.close()
    stream.close()  # nothing left to do, and no error


SCRIPT = """
import sys
import tickwire

url = sys.argv[1]
with tickwire.Client(url) as client:
    quote = client.quote("btcusdt")
    print("quote", quote.code, quote.price > 0)
    print("bars", len(client.klines("btcusdt", "1m", 5)))
    for n, pushed in enumerate(client.stream(["ethusdt", "xrpusdt"])):
        if n == 4:
            break
    print("stream", pushed.code in ("ethusdt", "xrpusdt"))
print("done")
"""


def test_a_plain_script_runs_and_exits(live: Server, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    began = time.monotonic()
    result = subprocess.run([sys.executable, str(script), live.url], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == ["quote btcusdt True", "bars 5", "stream True",
                                         "done", ""]
    assert time.monotonic() - began < 15
