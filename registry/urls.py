from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("", views.inventory, name="inventory"),
    path("live/", views.live, name="live"),
]
