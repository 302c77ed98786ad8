"""Simulators of outside systems (payments, carriers, channels, WMS); carriers is the first built."""
