"""The pure scheduling core: schedule(snapshot, now) -> Plan."""
