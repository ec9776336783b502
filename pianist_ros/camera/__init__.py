"""The camera lifecycle node: sources, reconnect state machine, capture worker, node."""
