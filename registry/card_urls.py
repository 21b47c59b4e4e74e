"""Model card URLs, mounted at ``/models/`` ahead of ``registry.urls``."""

from django.urls import path

from registry import card_views

app_name = "cards"

urlpatterns = [
    path("<slug:slug>/card/", card_views.card, name="card"),
    path("<slug:slug>/card.<str:fmt>", card_views.export, name="export"),
]
