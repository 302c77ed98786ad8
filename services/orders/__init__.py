"""The orders service: the unified order center every channel's orders land in."""
