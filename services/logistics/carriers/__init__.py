"""Logistics' clients of the carriers' own APIs over HTTP: SF Express (丰桥), Kuaidi100 (ZTO, YTO, EMS,
JD, and the tracking of Cainiao's waybills) and Cainiao (TOP e-waybills), each behind its rate limits,
its concurrency and its circuit breaker."""
