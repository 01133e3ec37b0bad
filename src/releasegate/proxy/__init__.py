"""Traffic switches on real proxies (nginx, Caddy, HAProxy) for blue/green slots."""

from releasegate.proxy.base import ProxyError, SwitchResult, TrafficSwitch, adapter_for

__all__ = ["ProxyError", "SwitchResult", "TrafficSwitch", "adapter_for"]
