"""kilnwatch's results served back to the plant's systems: an OPC UA server and MQTT (both optional,
set in the plant file's ``results`` block)."""
