"""OPC UA source: subscriptions, history read-back, security and the connection watchdog."""
