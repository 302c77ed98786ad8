"""Carrier sandbox: SF Express, Kuaidi100 (ZTO, YTO, EMS, JD) and Cainiao over their real HTTP protocols."""
