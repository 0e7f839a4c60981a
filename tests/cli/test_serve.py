"""``ragsc serve`` and ``ragsc send`` (ragsc/cli/serve.py)."""

import json
import os
import socket
import time

import httpx
import pytest

from tests.cli import _process


def test_send_transmits_from_the_servers_spec(served, cli, tmp_path):
    """The command builds its transmitter from the server's /v1/spec (nothing shared with the server)."""
    out = tmp_path / "answer.json"
    r = cli("send", "--to", served.url, "--snr", "10", "--channel", "rician", "--out", out,
            "the courier leaves parcels at the back door")
    assert r.code == 0, r.err
    assert "channel uses) -> 'the courier leaves parcels at the back door'" in r.out
    answer = json.loads(out.read_text())
    assert answer["outputs"][0]["text"] == "the courier leaves parcels at the back door"
    assert answer["outputs"][0]["context"][0]["kb"] == "local"


def test_send_checks_its_target_and_its_photos_before_any_work(served, cli, tmp_path):
    r = cli("send", "--to", served.url, "--out", tmp_path, "hello")
    assert r.code == 2 and "folder" in r.err
    r = cli("send", "--to", served.url, str(tmp_path / "missing.jpg"))
    assert r.code == 2 and "no such photo" in r.err


def test_serve_refuses_a_token_file_others_can_read(cli, tmp_path):
    token = tmp_path / "token"
    token.write_text("a-long-enough-token-123456")
    os.chmod(token, 0o644)
    r = cli("serve", "multitask", "--token-file", token)
    assert r.code == 2 and "chmod 600" in r.err


@pytest.mark.slow
def test_serve_and_send_as_two_processes(tmp_path):
    """The README's commands: a receiver process, a transmitter process, over loopback."""
    spec = tmp_path / "text.yaml"
    spec.write_text("name: plain-text\ntask: text\nknowledge_bases: []\ndecoder: {rag: false}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = _process.start("serve", spec, "--port", port, env={"RAGSC_HOME": str(tmp_path / "home")})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()
            time.sleep(0.5)
        p = _process.ragsc("send", "--to", url, "--snr", "15", "see you at noon")
        assert p.returncode == 0, p.stderr
        assert "-> " in p.stdout and "channel uses" in p.stdout
    finally:
        server.terminate()
        server.communicate(timeout=60)
