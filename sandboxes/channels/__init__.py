"""Channel sandbox: Taobao (TOP) and Douyin shop (抖店) order APIs, OAuth tokens and order pushes."""
