"""The life-safety path (DESIGN.md §3, §5): journal, then ack the device, then PUBACK.

    decode        a message on a life-safety topic → ``Alarm``, valid payload or not
    journal       alert + journal row + outbox rows in one transaction (SQLite: retried
                  every millisecond while another process holds the write lock)
    path          ``AlarmPath``: a persistent QoS 1 MQTT session subscribed to
                  life-safety events only; each event → alert + journal row + outbox
                  rows, committed in one transaction → `ack` to the device → PUBACK to
                  the broker. An event from a device with no home is raised for its
                  site, one whose payload fails validation from its topic alone
                  (docs/alerts.md)
    process       ``AlarmProcess``: the path in a process of its own, with the outbox
                  worker for life-safety notices and the re-notices and escalations of
                  life-safety alerts: the whole life-safety path, needing nothing of
                  the rules process
    lock          the alarm process's lock file: one alarm process per broker session
    serve         the process: run on its own, or spawned by the rules process

Why a process of its own: the rules process decodes and evaluates every message of
the fleet (30,000 a second nationally), saves rule state and delivers welfare notices.
Sharing its event loop and its GIL, an alarm waits behind whatever that process is
doing. Here nothing runs but alarms and their notices: the operating system wakes
this process as soon as an alarm arrives, whatever the load on the rules.

And why it does not depend on the rules process: that process evaluates the rules of
the whole fleet, and a crash or a stall there (a bug in a rule, SIGSTOP, swapping) must
not stop an alarm, its ack, its notices or its escalation. So it runs either as its own
command, ``dolbom alerts alarms``, supervised by the deployment (systemd,
``Restart=always``; ``alarm_process=external``), or, for the quick start, spawned by
``dolbom alerts run`` (``alarm_process=spawn``: ``python -m dolbom.alerts.alarm
--settings-stdin``, settings pickled on stdin, never in arguments or the environment).
A spawned one gets a session of its own and no parent-death signal: a rules process
killed with SIGKILL or stopped with SIGSTOP leaves it running, and a group signal
(Ctrl-Z, Ctrl-C in the terminal) does not reach it. The rules process restarts it if it
exits, stops it when it stops, and on its own restart finds it running and watches it
instead of starting a second: every alarm process holds ``alarm_lock_path`` locked
(``flock``, released by the kernel however the holder dies), and one that finds the
lock held exits at once (``ALREADY_RUNNING``).
"""

