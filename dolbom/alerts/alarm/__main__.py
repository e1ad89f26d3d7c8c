"""``python -m dolbom.alerts.alarm --settings-stdin``: the alarm process as the rules
process spawns it (``alarm_process=spawn``)."""

import sys

from dolbom.alerts.alarm.serve import main

sys.exit(main())
