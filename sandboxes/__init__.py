"""Simulators of outside systems (payments, carriers, channels, WMS); none is built yet."""
