from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0006_route_kind_tcp_tls"),
    ]

    operations = [
        migrations.AlterField(
            model_name="route",
            name="kind",
            field=models.CharField(
                choices=[
                    ("HTTPRoute", "Http"),
                    ("GRPCRoute", "Grpc"),
                    ("TCPRoute", "Tcp"),
                    ("TLSRoute", "Tls"),
                    ("DubboRoute", "Dubbo"),
                ],
                default="HTTPRoute",
                max_length=16,
            ),
        ),
    ]
