"""InfluxQL targets for the Grafana Foundation SDK (its custom-dataquery pattern).

The SDK generates query types for the datasources it knows; Grafana's InfluxDB
datasource in InfluxQL mode is not one of them, so this module adds it the way the
SDK's own query types are made: a ``Dataquery`` variant with ``to_json`` /
``from_json``, a builder, and a registration so that ``Dashboard.from_json`` decodes
these targets back into this type (the schema check in the tests relies on it).

Every target is a raw InfluxQL query (``rawQuery``) as Grafana's query editor stores
it in "raw mode"; Grafana expands ``$timeFilter``, ``$__interval`` and the dashboard
variables before sending it to InfluxDB (``dolbom.dashboards.expand`` does the same).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

DATASOURCE_TYPE = "influxdb"

ResultFormat = Literal["time_series", "table"]


class InfluxQuery(cogvariants.Dataquery):
    """One InfluxQL target of a panel, as Grafana's InfluxDB datasource stores it."""

    def __init__(self, ref_id: str = "A", query: str = "", raw_query: bool = True,
                 result_format: ResultFormat = "time_series", alias: str | None = None,
                 datasource: dashboard.DataSourceRef | None = None,
                 hide: bool | None = None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.raw_query = raw_query
        self.result_format: ResultFormat = result_format
        self.alias = alias
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": self.raw_query,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(ref_id=data["refId"], query=data["query"], raw_query=data["rawQuery"],
                   result_format=data["resultFormat"], alias=data.get("alias"),
                   datasource=dashboard.DataSourceRef.from_json(ds) if ds else None,
                   hide=data.get("hide"))


class InfluxQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: str) -> None:
        self._internal = InfluxQuery(query=query)

    def build(self) -> InfluxQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def result_format(self, result_format: ResultFormat) -> Self:
        self._internal.result_format = result_format
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def datasource(self, ref: dashboard.DataSourceRef) -> Self:
        self._internal.datasource = ref
        return self


def register() -> None:
    """Let the SDK decode InfluxDB targets (``Dashboard.from_json``) into InfluxQuery."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(
        identifier=DATASOURCE_TYPE, from_json_hook=InfluxQuery.from_json))
