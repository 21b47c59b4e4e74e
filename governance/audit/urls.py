from django.urls import path

from governance.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.trail, name="trail"),
    path("verify/", views.verify, name="verify"),
    path("export/", views.export, name="export"),
]
