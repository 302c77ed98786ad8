"""Logistics' pure rules: shipments and their legal moves, carrier codes, tracking nodes, waybill
retries, pick priority and anomalies. Standard library only; time is passed in."""
