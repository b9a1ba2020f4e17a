"""A real Pulumi program for the change tests.

Under the stand-in CLI it runs in-process with `pulumi.runtime.set_mocks`; under a real CLI it
runs for real. With config `customResources: false` it uses component resources only, which need
no provider plugin (none can be downloaded on our machines).
"""

from typing import Any

import pulumi

cfg = pulumi.Config()
replicas = cfg.get_int("replicas") or 2
size = cfg.get("size") or "small"
custom = cfg.get_bool("customResources")
custom = True if custom is None else custom


class Widget(pulumi.CustomResource):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sophia:test:Widget", name, props, opts)


class Part(pulumi.ComponentResource):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sophia:test:Part", name, props, opts)
        self.register_outputs({})


def leaf(name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> pulumi.Resource:
    return Widget(name, props, opts) if custom else Part(name, props, opts)


class Service(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("sophia:test:Service", name, None, None)
        self.parts = [
            leaf(
                f"{name}-w{i}", {"name": f"{name}-w{i}", "size": size, "index": i}, pulumi.ResourceOptions(parent=self)
            )
            for i in range(replicas)
        ]
        self.register_outputs({})


Service("web")
leaf("assets", {"name": "assets", "size": "large"})
pulumi.export("url", "https://web.example.test")
pulumi.export("replicas", replicas)
pulumi.export("api_key", cfg.require_secret("apiKey"))
