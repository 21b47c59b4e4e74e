from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.permissions import perms_required
from registry.models import ClinicalModel


@perms_required("registry.view_clinicalmodel")
def inventory(request: HttpRequest) -> HttpResponse:
    return render(request, "registry/inventory.html", {"models": ClinicalModel.objects.all()})


@perms_required("registry.view_deployment")
def live(request: HttpRequest) -> HttpResponse:
    return render(request, "registry/inventory.html", {"models": ClinicalModel.objects.all()})
