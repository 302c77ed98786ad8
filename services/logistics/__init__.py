"""The logistics service: shipments, batch e-waybills through the carriers' own APIs, pick lists with
QR codes, the warehouse's scans, and tracking by push and by poll with its anomaly alerts."""
