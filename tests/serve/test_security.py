"""The token file and the guard."""

import os

import pytest

from ragsc.errors import ConfigError
from ragsc.serve.security import Guard, is_loopback, read_token
from ragsc.serve.server import check_host


def token_file(tmp_path, text="s3cret-token-0123456789", mode=0o600):
    p = tmp_path / "token"
    p.write_text(text + "\n")
    os.chmod(p, mode)
    return p


def test_a_token_file_readable_by_others_is_refused(tmp_path):
    assert read_token(token_file(tmp_path)) == "s3cret-token-0123456789"
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(token_file(tmp_path, mode=0o644))
    with pytest.raises(ConfigError, match="at least 16"):
        read_token(token_file(tmp_path, text="short"))
    with pytest.raises(ConfigError, match="token file"):
        read_token(tmp_path / "missing")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_token(tmp_path)


def test_protect_reads_needs_a_token():
    with pytest.raises(ConfigError, match="token file"):
        Guard(None, protect_reads=True)


def test_loopback_is_quiet_and_anything_else_warns():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    with pytest.warns(UserWarning, match="not on loopback"):
        check_host("0.0.0.0")
