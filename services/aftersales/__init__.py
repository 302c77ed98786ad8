"""The aftersales service: not built yet (see the open issues); this package only reserves its place."""
