from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0005_route_kind"),
    ]

    operations = [
        migrations.AlterField(
            model_name="route",
            name="kind",
            field=models.CharField(
                choices=[("HTTPRoute", "Http"), ("GRPCRoute", "Grpc"), ("DubboRoute", "Dubbo")],
                default="HTTPRoute",
                max_length=16,
            ),
        ),
    ]
