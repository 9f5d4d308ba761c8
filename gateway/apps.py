from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        # The route table forgets its copy whenever an endpoint or upstream is saved here.
        from gateway import routes  # noqa: F401
