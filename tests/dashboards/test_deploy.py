"""`dolbom dashboards deploy` through grafana-client, against a local HTTP server that
records Grafana API calls (Grafana itself cannot run here: the one stand-in allowed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dolbom.cli import main
from dolbom.dashboards import model
from dolbom.dashboards.deploy import FOLDER_UID, InfluxSource, connect, deploy
from dolbom.dashboards.errors import DeployFailed
from dolbom.influx.admin import InfluxUsers
from dolbom.stack.influx import InfluxDB
from dolbom.stack.proc import free_port

TOKEN = "glsa_test_token"
SRC = InfluxSource("http://influx.internal:8086", "care", "dashboard", "s3cret")


class Recorder(ThreadingHTTPServer):
    calls: list[tuple[str, str, str | None, Any]]
    existing: set[str]  # paths that answer 200 to GET
    refuse: bool


def _handler() -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server: Recorder

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            self.server.calls.append((self.command, self.path,
                                      self.headers.get("Authorization"), body))
            if self.server.refuse:
                self._reply(403, {"message": "permission denied"})
            elif self.command == "GET":
                found = self.path in self.server.existing
                self._reply(200 if found else 404, {"message": "ok" if found else "not found"})
            else:
                self._reply(200, {"status": "success", "uid": "x", "id": 1})

        do_GET = do_POST = do_PUT = _record

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture()
def grafana() -> Iterator[Recorder]:
    srv = Recorder(("127.0.0.1", 0), _handler())
    srv.calls, srv.existing, srv.refuse = [], set(), False
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: Recorder) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_first_deploy_creates_datasource_folder_and_every_dashboard(grafana: Recorder) -> None:
    """On an empty Grafana: datasource and folder created, each dashboard saved with
    overwrite under its stable uid, every call with the token."""
    saved = deploy(connect(_url(grafana), TOKEN), SRC)
    calls = [(m, p) for m, p, _, _ in grafana.calls]
    assert calls == [
        ("GET", f"/api/datasources/uid/{model.DATASOURCE_UID}"), ("POST", "/api/datasources"),
        ("GET", f"/api/folders/{FOLDER_UID}"), ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * 4]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth, _ in grafana.calls)
    ds = grafana.calls[1][3]
    assert ds["type"] == "influxdb" and ds["user"] == "dashboard"
    assert ds["jsonData"]["dbName"] == "care" and ds["secureJsonData"] == {"password": "s3cret"}
    assert grafana.calls[3][3] == {"title": "Dolbom", "uid": FOLDER_UID}
    bodies = [b for m, p, _, b in grafana.calls if p == "/api/dashboards/db"]
    assert sorted(b["dashboard"]["uid"] for b in bodies) == sorted(saved)
    assert all(b["overwrite"] is True and b["folderUid"] == FOLDER_UID
               and b["dashboard"]["id"] is None for b in bodies)


def test_redeploy_updates_in_place(grafana: Recorder) -> None:
    """When the datasource and folder exist: the datasource is updated by uid, no second
    folder, the dashboards overwritten."""
    grafana.existing = {f"/api/datasources/uid/{model.DATASOURCE_UID}",
                        f"/api/folders/{FOLDER_UID}"}
    deploy(connect(_url(grafana), TOKEN), SRC)
    calls = [(m, p) for m, p, _, _ in grafana.calls]
    assert ("PUT", f"/api/datasources/uid/{model.DATASOURCE_UID}") in calls
    assert ("POST", "/api/datasources") not in calls and ("POST", "/api/folders") not in calls
    assert calls.count(("POST", "/api/dashboards/db")) == 4


def test_refusal_is_one_clear_error(grafana: Recorder) -> None:
    """A token without the right (403) stops the deploy with DeployFailed, not a trace."""
    grafana.refuse = True
    with pytest.raises(DeployFailed, match="Grafana refused"):
        deploy(connect(_url(grafana), TOKEN), SRC)
    assert len(grafana.calls) == 1


def _cli(grafana: Recorder, influx_url: str, user: tuple[str, str],
         monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("DOLBOM_GRAFANA_INFLUX_PASSWORD", user[1])
    return main(["dashboards", "deploy", "--url", _url(grafana), "--token", TOKEN,
                 "--influx-url", influx_url, "--influx-user", user[0]])


def test_cli_deploys_with_the_read_only_user(grafana: Recorder, dash_influx: InfluxDB,
                                             influx_users: InfluxUsers,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`dolbom dashboards deploy` checks the user on the real InfluxDB, then pushes."""
    assert _cli(grafana, dash_influx.url, influx_users.dashboard, monkeypatch) == 0
    assert sum(p == "/api/dashboards/db" for _, p, _, _ in grafana.calls) == 4


def test_cli_refuses_a_user_that_can_write(grafana: Recorder, dash_influx: InfluxDB,
                                           influx_users: InfluxUsers,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """With the ingest user (WRITE) nothing reaches Grafana and one line says why."""
    assert _cli(grafana, dash_influx.url, influx_users.ingest, monkeypatch) == 1
    assert grafana.calls == []
    assert "may write to care" in capsys.readouterr().err


def test_unreachable_servers_are_one_line_not_a_trace(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening where InfluxDB or Grafana should be: exit 1 with one line each."""
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DeployFailed, match="cannot reach Grafana"):
        deploy(connect(closed, TOKEN, timeout_s=2), SRC)
    monkeypatch.setenv("DOLBOM_GRAFANA_INFLUX_PASSWORD", "x")
    assert main(["dashboards", "deploy", "--url", closed, "--token", TOKEN,
                 "--influx-url", closed, "--influx-user", "dashboard"]) == 1
    assert "cannot reach InfluxDB" in capsys.readouterr().err
