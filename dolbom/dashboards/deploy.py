"""Push the datasource and the dashboards to a running Grafana over its HTTP API
(``grafana-client``): what the provisioning folder does at start-up, for a Grafana
whose files we cannot reach (a hosted one, another team's).

Idempotent: the datasource is created or updated by its uid, the folder created once,
each dashboard saved with ``overwrite`` under its stable uid, so a re-deploy replaces
them in place and bookmarks keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException
from niquests.exceptions import RequestException

from dolbom.dashboards import catalogue as cat
from dolbom.dashboards import model
from dolbom.dashboards.build import FOLDER_TITLE, dashboard_json
from dolbom.dashboards.catalogue import DEFAULT_CONSOLE_URL
from dolbom.dashboards.errors import DeployFailed
from dolbom.dashboards.influxql import DATASOURCE_TYPE

log = logging.getLogger(__name__)
FOLDER_UID = "dolbom"
NOT_FOUND = 404


@dataclass(frozen=True)
class InfluxSource:
    """The InfluxDB as Grafana reaches it, with the read-only user (DESIGN.md §6)."""

    url: str
    database: str
    user: str
    password: str


def datasource_body(src: InfluxSource) -> dict[str, Any]:
    return {
        "uid": model.DATASOURCE_UID, "name": model.DATASOURCE_NAME, "type": DATASOURCE_TYPE,
        "access": "proxy", "url": src.url, "user": src.user, "isDefault": True,
        "jsonData": {"dbName": src.database, "httpMode": "GET",
                     "timeInterval": model.DATASOURCE_MIN_INTERVAL},
        "secureJsonData": {"password": src.password},
    }


def _missing(e: GrafanaException) -> bool:
    return isinstance(e, GrafanaClientError) and e.status_code == NOT_FOUND


def deploy(api: GrafanaApi, src: InfluxSource,
           dashboards: Mapping[str, dict[str, Any]] | None = None) -> list[str]:
    """Datasource, folder, dashboards; returns the uids of the dashboards saved."""
    if dashboards is None:
        dashboards = {d.uid: dashboard_json(d)
                      for d in cat.all_dashboards(DEFAULT_CONSOLE_URL)}
    try:
        try:
            api.datasource.get_datasource_by_uid(model.DATASOURCE_UID)
            api.datasource.update_datasource_by_uid(model.DATASOURCE_UID, datasource_body(src))
        except GrafanaException as e:
            if not _missing(e):
                raise
            api.datasource.create_datasource(datasource_body(src))
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaException as e:
            if not _missing(e):
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        saved = []
        for uid, body in sorted(dashboards.items()):
            api.dashboard.update_dashboard({
                "dashboard": {**body, "id": None}, "folderUid": FOLDER_UID,
                "overwrite": True, "message": "dolbom dashboards deploy"})
            saved.append(uid)
            log.info("dashboard %s saved", uid)
        return saved
    except GrafanaException as e:
        raise DeployFailed(f"Grafana refused: {e}") from e
    except RequestException as e:
        raise DeployFailed(f"cannot reach Grafana: {e}") from e


def connect(url: str, token: str, timeout_s: float = 10.0) -> GrafanaApi:
    api: GrafanaApi = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    return api
