"""``dolbom bench-broker-auth`` measures real changes: on a small fleet, every form's
new device gets in and the revoked one is refused (a change that never took effect would
be reported as infinite, and fail here), with the real Mosquitto."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

from dolbom.bench.brokerauth import measure, measure_dynsec


@pytest.mark.parametrize("form", ["patterns", "user-blocks", "dynsec"])
def test_each_form_adds_and_revokes_one_device(runtime_dir: Path, form: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="auth-", dir=runtime_dir))
    base.chmod(0o711)
    r = measure_dynsec(200, base) if form == "dynsec" else measure(form, 200, base)
    assert r.devices == 200
    assert math.isfinite(r.add_s) and math.isfinite(r.revoke_s), r
    assert r.start_s > 0 and r.rss_mb > 0
    # the ACL file carries no device with the patterns, one block per device otherwise
    if form == "patterns":
        assert r.acl_bytes < 2_000
    elif form == "user-blocks":
        assert r.acl_bytes > 200 * 100
