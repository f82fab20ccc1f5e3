"""MQTT source: the paho session (in a thread or a worker process), the inbox and payload decoding."""
