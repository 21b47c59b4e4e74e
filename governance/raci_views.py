"""The RACI grid pages: the health-system default and each model's matrix. Everyone may read
them; medical directors and compliance officers edit them. Thin: the rules are in
``governance.raci``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.permissions import has_perms, perms_required
from governance import raci
from governance.raci_forms import RaciGridForm
from registry.models import ClinicalModel

VIEW = "governance.view_racimatrix"
CHANGE = "governance.change_racimatrix"


@perms_required(VIEW)
def raci_default(request: HttpRequest) -> HttpResponse:
    return _grid(request, model=None)


@perms_required(VIEW)
def raci_model(request: HttpRequest, slug: str) -> HttpResponse:
    return _grid(request, model=get_object_or_404(ClinicalModel, slug=slug))


def _grid(request: HttpRequest, *, model: ClinicalModel | None) -> HttpResponse:
    can_edit = has_perms(request.user, [CHANGE])
    effective = raci.effective(model)
    form_kwargs: dict[str, Any] = {"effective": effective, "is_default": model is None}
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Your role does not allow editing the RACI matrix.")
        form = RaciGridForm(request.POST, **form_kwargs)
        if _save(request, form, model):
            return redirect(request.path)
    else:
        form = RaciGridForm(**form_kwargs)
    context = {
        "model": model,
        "form": form,
        "grid": form.grid(),
        "can_edit": can_edit,
        "matrix": raci.matrix_of(model),
        "history": raci.raci_history(model),
        "letters": [raci.LETTER_NAMES[letter] for letter in raci.LETTERS],
    }
    return render(request, "governance/raci/matrix.html", context)


def _save(request: HttpRequest, form: RaciGridForm, model: ClinicalModel | None) -> bool:
    """Save the grid, or put every refusal on its cell (the form checks only the reason)."""
    valid = form.is_valid()
    entries = form.entries()
    if not valid:
        form.mark_cells(raci.cell_errors(entries))
        return False
    try:
        raci.raci_save(
            actor=request.user, model=model, entries=entries, reason=form.cleaned_data["reason"]
        )
    except ValidationError as exc:
        cells = raci.cell_errors(entries)
        form.mark_cells(cells)
        rest = {k: v for k, v in exc.message_dict.items() if k not in cells}
        if rest:
            form.add_service_errors(ValidationError(rest))
        return False
    scope = model.name if model is not None else "the health-system default"
    messages.success(request, f"RACI matrix for {scope} saved: the change is in its history.")
    return True
