"""``kilnwatch fleet``: totals of many plants' kilns, read from the shared historian.

One kilnwatch per plant writes its hours to one InfluxDB bucket (``company``/``plant``/``kiln``
tags); this package reads them back (:mod:`.victoria`), keeps the newest revision of each hour
once, and sums kilns into plants, companies and the fleet per month and year (:mod:`.totals`).
See docs/decisions/0032-fleet-from-the-historian.md.
"""
