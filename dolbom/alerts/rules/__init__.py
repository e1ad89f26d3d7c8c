"""The alert rules of DESIGN.md §5, one module per concern; ``dolbom.alerts.engine``
runs them. Pure functions over frozen dataclasses; the time is always an argument.

* ``base``        configuration, observations, actions, the per-home state
* ``clock``       local-time windows (sleep, night) in the resident's time zone
* ``silence``     the verdict shared by the rules that fire on the absence of events
* ``life_safety`` button, fall, smoke, gas, sos_voice
* ``inactivity``  inactivity tiers, sleep-window aware
* ``devices``     device / gateway lost, battery low, tamper
* ``door``        no door use, night exit
* ``bed``         out of bed at night
* ``temperature`` heat, cold
* ``power``       no power use
"""
