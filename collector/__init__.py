"""Collectors (OPC UA, MQTT), payload decoding, conditioning, the pipeline and the durable store."""
