"""After-sales' clients of the payment providers' own APIs over HTTP: WeChat Pay API v3 and Alipay
refunds and refund queries, and the checks of their notifications. They know nothing of tickets: they
take and give the plain dataclasses of `ports`."""
