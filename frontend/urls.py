from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

app_name = "frontend"
urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("t/<slug:tenant>/", views.tenant_overview, name="tenant"),
    path("t/<slug:tenant>/tokens/", views.tokens, name="tokens"),
    path("t/<slug:tenant>/tokens/<str:prefix>/revoke/", views.revoke_token, name="revoke-token"),
]
