"""Devices: provision (the MQTT password is shown once), revoke, list, show.

After the change is committed, the broker's password and ACL files are rewritten and the
broker reloaded, exactly as ``dolbom device add`` / ``revoke`` do
(``dolbom.registry.broker.sync_broker``), when the broker files are configured.
"""

from __future__ import annotations

from fastapi import APIRouter

from dolbom.api import access
from dolbom.api.deps import ApiContext, AuditDep, CtxDep, ScopeDep, SessionDep
from dolbom.api.errors import Forbidden, NotFound
from dolbom.api.routes import ERRORS, PREFIX, ObjectId
from dolbom.api.routes.homes import refuse_new_id
from dolbom.api.schemas import DeviceIn, DeviceOut, ProvisionedDevice, RevokedDevice
from dolbom.protocol import Topics
from dolbom.registry import service
from dolbom.registry.broker import sync_broker
from dolbom.registry.errors import BrokerNotRunning, RegistryError
from dolbom.registry.models import Device, Site

router = APIRouter(prefix=PREFIX, tags=["devices"], responses=ERRORS)

NOT_CONFIGURED = ("broker not updated (DOLBOM_API__BROKER_PASSWD, DOLBOM_API__BROKER_ACL and "
                  "DOLBOM_API__BROKER_PID_FILE are not set); run `dolbom registry sync-broker`")


def update_broker(ctx: ApiContext) -> str | None:
    """After a committed device change: rewrite the broker files and reload; a warning or None."""
    files = ctx.settings.broker_files
    if files is None:
        return NOT_CONFIGURED
    with ctx.sessions() as session:
        try:
            sync_broker(session, files, Topics(ctx.settings.topic_prefix))
        except BrokerNotRunning as e:
            return str(e)
        except RegistryError as e:
            return f"broker not updated: {e}"
    return None


def _residents(session: SessionDep, device: Device) -> list[int]:
    return [r.id for r in access.residents_of_home(session, device.home_id)]


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(session: SessionDep, scope: ScopeDep,
                 include_revoked: bool = False) -> list[DeviceOut]:
    return [DeviceOut.model_validate(d)
            for d in access.visible_devices(session, scope, include_revoked=include_revoked)]


@router.post("/devices", response_model=ProvisionedDevice, status_code=201)
def provision(body: DeviceIn, session: SessionDep, scope: ScopeDep, ctx: CtxDep,
              audit: AuditDep) -> ProvisionedDevice:
    """Provision a device: its MQTT user is its id; the password is in this answer only.
    A supervisor's device ids start with their site's id and a hyphen (``s1-…``)."""
    if session.get(Site, body.site_id) is None or not scope.sees_registry or not (
            scope.everything or scope.site_id == body.site_id):
        raise NotFound(f"site {body.site_id!r} does not exist")
    if not access.may_manage_site(scope, body.site_id):
        raise Forbidden("only an admin or the site's supervisor provisions devices")
    if body.home_id is not None:
        access.require_home(session, scope, body.home_id)
    refusal = access.new_id_refusal(session, scope, Device, body.id, body.site_id)
    if refusal is not None:
        raise refuse_new_id(session, audit, "device.provision.refused", refusal, body.id,
                            body.site_id)
    device, password = service.add_device(session, body.id, body.site_id, body.home_id,
                                          body.kind, power=body.power, hb_s=body.hb_s)
    audit("device.provision", _residents(session, device), f"device={device.id}")
    out = DeviceOut.model_validate(device)
    session.commit()  # durable before the broker learns of it (as the CLI does)
    warning = update_broker(ctx)
    return ProvisionedDevice(device=out, mqtt_username=device.id, mqtt_password=password,
                             broker_updated=warning is None, warning=warning)


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: ObjectId, session: SessionDep, scope: ScopeDep,
               audit: AuditDep) -> DeviceOut:
    device = access.require_device(session, scope, device_id)
    audit("device.read", _residents(session, device), f"device={device.id}")
    return DeviceOut.model_validate(device)


@router.post("/devices/{device_id}/revoke", response_model=RevokedDevice)
def revoke(device_id: ObjectId, session: SessionDep, scope: ScopeDep, ctx: CtxDep,
           audit: AuditDep) -> RevokedDevice:
    """Revoke (idempotent): the broker refuses the device once reloaded."""
    device = access.require_device(session, scope, device_id)
    if not access.may_manage_site(scope, device.site_id):
        raise Forbidden("only an admin or the site's supervisor revokes devices")
    service.revoke_device(session, device.id)
    audit("device.revoke", _residents(session, device), f"device={device.id}")
    out = DeviceOut.model_validate(device)
    session.commit()
    warning = update_broker(ctx)
    return RevokedDevice(device=out, broker_updated=warning is None, warning=warning)
