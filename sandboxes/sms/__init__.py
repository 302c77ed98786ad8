"""An SMS provider sandbox: Aliyun SMS's SendSms over HTTP, its signature checked, messages recorded."""
