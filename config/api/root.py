"""``GET /api/v1/``: where things are."""

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView


class ApiRootSerializer(serializers.Serializer):
    schema = serializers.URLField()
    docs = serializers.URLField()
    me = serializers.URLField()
    tenants = serializers.URLField()
    plans = serializers.URLField()


class ApiRootView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=ApiRootSerializer)
    def get(self, request):
        def link(name):
            return reverse(name, request=request)

        return Response(
            {
                "schema": link("schema"),
                "docs": link("docs"),
                "me": link("me"),
                "tenants": link("tenant-list"),
                "plans": link("plan-list"),
            }
        )
