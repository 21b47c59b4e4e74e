"""The retention page: the periods in force, the last purge, and legal holds (placed and
released with a reason). Compliance reads it; whoever may manage holds places and releases
them. Thin: the rules are in ``governance.retention``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import has_perms, perms_required
from governance import retention
from governance.models import LegalHold
from registry.models import ClinicalModel, Site

VIEW = "governance.view_legalhold"


class HoldForm(forms.Form):
    model = forms.ModelChoiceField(
        queryset=ClinicalModel.objects.order_by("name"), required=False, empty_label="Every model"
    )
    site = forms.ModelChoiceField(
        queryset=Site.objects.order_by("code"), required=False, empty_label="Every site"
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class ReleaseForm(forms.Form):
    release_reason = forms.CharField(max_length=500, label="Reason to release")


def _save_service_errors(form: forms.Form, exc: ValidationError) -> None:
    for name, errors in exc.message_dict.items():
        form.add_error(name if name in form.fields else None, errors)


@perms_required(VIEW)
def retention_holds(request: HttpRequest) -> HttpResponse:
    form = HoldForm(request.POST or None)
    if request.method == "POST":
        if not has_perms(request.user, [retention.MANAGE]):
            raise PermissionDenied("Your role does not allow placing legal holds.")
        if form.is_valid():
            try:
                hold = retention.hold_place(actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _save_service_errors(form, exc)
            else:
                messages.success(request, f"Legal hold placed on {hold.scope}.")
                return redirect("governance:retention-holds")
        return _page(request, form, status=400)
    return _page(request, form)


@require_POST
@perms_required(VIEW, retention.MANAGE)
def retention_hold_release(request: HttpRequest, pk: int) -> HttpResponse:
    hold = get_object_or_404(LegalHold, pk=pk)
    form = ReleaseForm(request.POST)
    if form.is_valid():
        try:
            retention.hold_release(
                actor=request.user, hold=hold, reason=form.cleaned_data["release_reason"]
            )
        except ValidationError as exc:
            _save_service_errors(form, exc)
        else:
            messages.success(request, f"Legal hold on {hold.scope} released.")
            return redirect("governance:retention-holds")
    return _page(request, HoldForm(), release_form=form, release_pk=hold.pk, status=400)


def _page(request: HttpRequest, form: HoldForm, status: int = 200, **extra: Any) -> HttpResponse:
    last = retention.last_purge()
    context = {
        "form": form,
        "can_manage": has_perms(request.user, [retention.MANAGE]),
        "periods": retention.periods(),
        "cutoff": retention.cutoff_of(),
        "holds": LegalHold.objects.select_related("model", "site", "placed_by", "released_by"),
        "last_purge": last,
        "last_report": last.payload if last else None,
        **extra,
    }
    return render(request, "governance/retention/holds.html", context, status=status)
