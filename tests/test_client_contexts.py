"""Contexts and the CLI's choice of engine (``cli.connect.resolve``): pure, no agent."""

from __future__ import annotations

import argparse
import json
import os
import socket

import pytest

from reconciler.cli import connect
from reconciler.client import contexts
from reconciler.engine import errors


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONCILE_CONFIG", str(tmp_path / "config"))
    for key in ("RECONCILE_HOST", "RECONCILE_CONTEXT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RECONCILE_SOCKET", str(tmp_path / "nobody-listens.sock"))
    return tmp_path / "config"


def _args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"host": None, "context": None, "root": "/var/lib/reconcile", **values})


def test_create_use_ls_inspect_rm(config):
    contexts.create("prod", host="tcp://10.0.0.1:2376", description="the prod host")
    contexts.create("lab", host="unix:///run/lab.sock")
    assert contexts.current() == "default"
    contexts.use("lab")
    rows = contexts.listing()
    assert [(r["name"], r["current"]) for r in rows] == [("default", False), ("lab", True), ("prod", False)]
    assert contexts.get("prod")["description"] == "the prod host"
    assert oct(os.stat(config / "contexts.json").st_mode & 0o777) == "0o600"
    contexts.remove("lab")
    assert contexts.current() == "default"  # the current one removed: back to the default
    assert json.loads((config / "contexts.json").read_text())["contexts"].keys() == {"prod"}


@pytest.mark.parametrize(
    ("name", "host", "message"),
    [
        ("bad/name", "unix:///x", "invalid context name"),
        ("default", "unix:///x", "invalid context name"),
        ("ok", "http://x", "invalid host"),
    ],
)
def test_bad_contexts_are_refused(name, host, message):
    with pytest.raises(contexts.ContextError, match=message):
        contexts.create(name, host=host)


def test_tls_files_must_exist(tmp_path):
    with pytest.raises(contexts.ContextError, match="no such file"):
        contexts.create(
            "secure", host="tcp://127.0.0.1:1", tls={"ca": str(tmp_path / "no.pem"), "cert": "c", "key": "k"}
        )
    with pytest.raises(contexts.ContextError, match="missing key"):
        contexts.create("secure", host="tcp://127.0.0.1:1", tls={"ca": "a", "cert": "c", "key": ""})


def test_duplicates_and_unknown_names_are_errors():
    contexts.create("one", host="unix:///a")
    with pytest.raises(contexts.ContextError, match="already exists"):
        contexts.create("one", host="unix:///b")
    for call in (contexts.use, contexts.remove, contexts.get):
        with pytest.raises(contexts.ContextError, match="no such context"):
            call("two")
    with pytest.raises(contexts.ContextError, match="cannot be removed"):
        contexts.remove("default")


def test_a_corrupt_contexts_file_is_a_clear_error(config):
    config.mkdir()
    (config / "contexts.json").write_text("{nope")
    with pytest.raises(contexts.ContextError, match="not valid JSON"):
        contexts.load()
    with pytest.raises(errors.InvalidRequest, match="not valid JSON"):
        connect.resolve(_args())


def test_resolution_order(monkeypatch, tmp_path):
    contexts.create("ctx", host="unix:///from/context.sock")
    assert connect.resolve(_args()).host is None  # default context, nobody on the default socket: in-process
    contexts.use("ctx")
    assert connect.resolve(_args()).host == "unix:///from/context.sock"
    monkeypatch.setenv("RECONCILE_CONTEXT", "default")
    assert connect.resolve(_args()).host is None
    assert connect.resolve(_args(context="ctx")).host == "unix:///from/context.sock"
    monkeypatch.setenv("RECONCILE_HOST", "unix:///from/env.sock")
    assert connect.resolve(_args(context="ctx")).host == "unix:///from/env.sock"
    assert connect.resolve(_args(host="tcp://127.0.0.1:9")).host == "tcp://127.0.0.1:9"


def test_the_default_socket_is_used_only_when_an_agent_listens_and_only_for_the_default_root(tmp_path, monkeypatch):
    path = tmp_path / "agent.sock"
    monkeypatch.setenv("RECONCILE_SOCKET", str(path))
    assert connect.resolve(_args()).host is None
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(1)
        target = connect.resolve(_args())
        assert (target.host, target.via) == (f"unix://{path}", "default socket")
        assert connect.resolve(_args(root=str(tmp_path / "elsewhere"))).host is None
    assert connect.resolve(_args()).host is None  # a stale socket file: nobody answers


def test_tls_flags_need_all_three():
    with pytest.raises(errors.InvalidRequest, match="--tls-ca, --tls-cert and --tls-key"):
        connect.resolve(_args(host="tcp://127.0.0.1:9", tls_ca="ca.pem"))
