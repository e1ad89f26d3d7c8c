"""The broker's watchers: ``dolbom broker watch-denials`` (docs/broker.md) follows the
broker's log and turns a device's repeated ACL denials into metrics and one technical
alert; ``dolbom broker watch-backlog`` (docs/scale.md) follows the broker's ``$SYS``
figures and raises one technical alert when it holds more and more messages for a client
that does not take them (a dead ingest worker's ``$share``).

Apart from the registry: they raise alerts through ``dolbom.alerts.lifecycle``, and the
registry sits below the alerts. The log's parsing and tailing, pure, stay in
``dolbom.registry.denials`` and ``dolbom.registry.logtail``; the backlog's decision, pure,
is ``dolbom.brokerwatch.backlog``.
"""
