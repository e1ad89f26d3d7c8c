"""``dolbom broker watch-denials`` (docs/broker.md): the service that follows the broker's
log and turns a device's repeated ACL denials into metrics and one technical alert.

Apart from the registry: it raises alerts through ``dolbom.alerts.lifecycle``, and the
registry sits below the alerts. The log's parsing and tailing, pure, stay in
``dolbom.registry.denials`` and ``dolbom.registry.logtail``.
"""
