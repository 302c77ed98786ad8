"""The payment-provider sandbox: WeChat Pay API v3 and the Alipay gateway over HTTP (docs/sandboxes.md)."""
