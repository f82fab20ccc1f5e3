"""``kilnwatch discover``: browse an OPC UA server or sample an MQTT broker and draft a plant file.

:mod:`.candidates` turns what a source says about a value (name, unit, range) into a proposed signal;
:mod:`.opcua` and :mod:`.mqtt` find the values; :mod:`.draft` writes the YAML draft with its review
comments; :mod:`.command` is the sub-command.
"""
