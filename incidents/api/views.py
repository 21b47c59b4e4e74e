"""Incident API: alerts (list, suppress) and incidents (list, detail, one POST action per
transition, impact, runbook steps, review). Every write is input serializer → service →
output serializer; the services' ``ValidationError`` becomes a 400 with field messages and
their ``PermissionDenied`` a 403 (``accounts.api.exception_handler``)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import runbook_services, selectors, services
from incidents.alerts import suppress
from incidents.api import serializers as s
from incidents.drills import incident_stats, start_drill
from incidents.models import Alert, AlertStatus, Incident, IncidentStatus, Runbook, Severity
from monitoring.models import Band, Layer
from registry.api.serializers import validate_input
from registry.api.views import Pagination
from registry.models import Deployment, ModelVersion

WORK = {"POST": ["incidents.work_incident"]}
CLOSE = {"POST": ["incidents.close_incident"]}
FREEZE = {"POST": ["registry.freeze_deployment"]}


class AlertFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__slug", help_text="Model slug.")
    site = django_filters.CharFilter(field_name="site__code", help_text="Site code.")
    slice = django_filters.CharFilter(field_name="slice_key", help_text="all, site=CODE, ...")
    metric = django_filters.CharFilter(help_text="psi:lactate, auc, ...")
    layer = django_filters.ChoiceFilter(choices=Layer.choices)
    band = django_filters.MultipleChoiceFilter(choices=Band.choices)
    status = django_filters.ChoiceFilter(choices=AlertStatus.choices)

    class Meta:
        model = Alert
        fields: list[str] = []


class AlertViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Alerts, newest first: what changed, for whom, how sure and what to do (aggregates)."""

    serializer_class = s.AlertSerializer
    pagination_class = Pagination
    filterset_class = AlertFilter
    required_perms = {"read": ["incidents.view_alert"]}

    def get_queryset(self) -> QuerySet[Alert]:
        return selectors.alerts_visible_to(user=self.request.user).order_by("-last_seen_at", "pk")

    @extend_schema(request=s.SuppressSerializer, responses={201: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], required_perms={"POST": ["incidents.suppress_alert"]})
    def suppress(self, request: Request, pk: str) -> Response:
        """The owner validated this alert as noise: no alert for its fingerprint for ``days``."""
        alert = self.get_object()
        data = validate_input(s.SuppressSerializer, request.data)
        sup = suppress(actor=request.user, alert=alert, reason=data["reason"], days=data["days"])
        body = {"fingerprint": sup.fingerprint, "expires_at": sup.expires_at, "reason": sup.reason}
        return Response(body, status=status.HTTP_201_CREATED)


class IncidentFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__slug", help_text="Model slug.")
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    routed_role = django_filters.CharFilter()
    mine = django_filters.BooleanFilter(
        method="filter_mine",
        help_text="Only incidents where I am commander, scribe, clinical lead or model owner.",
    )

    class Meta:
        model = Incident
        fields: list[str] = []

    def filter_mine(self, qs: QuerySet[Incident], name: str, value: bool) -> Any:
        return selectors.filter_incidents(qs, user=self.request.user, mine=bool(value))


NUMBER = [OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH)]


@extend_schema(parameters=NUMBER)
class IncidentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Incidents, most severe first then oldest. The detail carries the alerts, the timeline,
    the runbook steps with their checks, the impact assessment and the review."""

    serializer_class = s.IncidentSerializer
    pagination_class = Pagination
    filterset_class = IncidentFilter
    lookup_field = "number"
    lookup_value_regex = r"\d+"
    required_perms = {"read": ["incidents.view_incident"]}

    def get_queryset(self) -> QuerySet[Incident]:
        found = selectors.incidents_visible_to(user=self.request.user)
        return found.order_by("severity", "triggered_at", "number")

    def get_serializer_class(self) -> Any:
        return s.IncidentSerializer if self.action == "list" else s.IncidentDetailSerializer

    def get_object(self) -> Incident:
        number = self.kwargs["number"]
        found = self.get_queryset().filter(number=number).first()
        if found is None:
            raise NotFound(f"No incident INC-{number}.")
        return found

    def _detail(self, incident: Incident) -> Response:
        incident = self.get_queryset().get(pk=incident.pk)
        return Response(
            s.IncidentDetailSerializer(incident, context=self.get_serializer_context()).data
        )

    def _move(self, request: Request, to: str) -> Response:
        incident = self.get_object()
        data = validate_input(s.TransitionSerializer, request.data)
        moved = services.transition(
            actor=request.user, incident=incident, to=to, reason=data["reason"]
        )
        return self._detail(moved)

    @extend_schema(request=s.TransitionSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=WORK)
    def acknowledge(self, request: Request, number: str) -> Response:
        return self._move(request, IncidentStatus.ACKNOWLEDGED)

    @extend_schema(request=s.TransitionSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=WORK)
    def investigate(self, request: Request, number: str) -> Response:
        return self._move(request, IncidentStatus.INVESTIGATING)

    @extend_schema(request=s.TransitionSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=WORK)
    def mitigate(self, request: Request, number: str) -> Response:
        return self._move(request, IncidentStatus.MITIGATED)

    @extend_schema(request=s.TransitionSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=CLOSE)
    def resolve(self, request: Request, number: str) -> Response:
        """Refused while the band's closure evidence is missing (see ``closure_gaps``)."""
        return self._move(request, IncidentStatus.RESOLVED)

    @extend_schema(request=s.TransitionSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=CLOSE)
    def close(self, request: Request, number: str) -> Response:
        """A red incident closes only after its post-incident review."""
        return self._move(request, IncidentStatus.CLOSED)

    @extend_schema(request=s.TransitionSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=WORK)
    def cancel(self, request: Request, number: str) -> Response:
        """A false positive: ``reason`` is required."""
        return self._move(request, IncidentStatus.CANCELLED)

    @extend_schema(request=s.MergeSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=WORK)
    def merge(self, request: Request, number: str) -> Response:
        incident = self.get_object()
        data = validate_input(s.MergeSerializer, request.data)
        into = Incident.objects.filter(number=data["into"]).first()
        if into is None:
            raise_field("into", f"No incident INC-{data['into']}.")
        moved = services.transition(
            actor=request.user, incident=incident, to=IncidentStatus.MERGED,
            reason=data["reason"], into=into,
        )  # fmt: skip
        return self._detail(moved)

    @extend_schema(request=s.ImpactSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=WORK)
    def impact(self, request: Request, number: str) -> Response:
        """The patient-impact assessment; the gate's counts for the window are recorded with it
        (``GET`` the detail for the counts recorded so far)."""
        incident = self.get_object()
        data = validate_input(s.ImpactSerializer, request.data)
        done = services.assess_impact(actor=request.user, incident=incident, **data)
        return self._detail(done)

    @extend_schema(
        request=s.EvidenceSerializer,
        responses=s.IncidentDetailSerializer,
        parameters=[OpenApiParameter("step", OpenApiTypes.INT, OpenApiParameter.PATH)],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"steps/(?P<step>\d+)",
        url_name="step",
        required_perms=WORK,
    )
    def step(self, request: Request, number: str, step: str) -> Response:
        """Check off runbook step ``step`` (0-based) with its evidence."""
        incident = self.get_object()
        data = validate_input(s.EvidenceSerializer, request.data)
        services.check_step(
            actor=request.user, incident=incident, step=int(step), evidence=data["evidence"]
        )
        return self._detail(incident)

    @extend_schema(request=s.ReviewSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=CLOSE)
    def review(self, request: Request, number: str) -> Response:
        """The post-incident review: a summary and corrective actions (action, owner, due)."""
        incident = self.get_object()
        data = validate_input(s.ReviewSerializer, request.data)
        actions = [
            {"action": a["action"], "owner": a["owner"], "due": a["due"].isoformat()}
            for a in data["corrective_actions"]
        ]
        done = services.record_review(
            actor=request.user, incident=incident, summary=data["summary"],
            corrective_actions=actions,
        )  # fmt: skip
        return self._detail(done)

    @extend_schema(request=s.AssignSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=WORK)
    def assign(self, request: Request, number: str) -> Response:
        """Give a person an incident role: ``commander``, ``scribe``, ``clinical_lead`` or
        ``model_owner`` (recorded on the timeline)."""
        incident = self.get_object()
        data = validate_input(s.AssignSerializer, request.data)
        done = services.assign_role(
            actor=request.user, incident=incident, role=data["role"], user=data["username"]
        )
        return self._detail(done)

    def _deployment_at(self, incident: Incident, site: str) -> Deployment:
        found = selectors.live_deployments(incident).filter(site__code=site).first()
        if found is None:
            raise_field("site", f"No live deployment of {incident.model.slug} at {site} that "
                        f"INC-{incident.number} reaches.")  # fmt: skip
        return found  # type: ignore[return-value]

    @extend_schema(request=s.FreezeSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=FREEZE)
    def freeze(self, request: Request, number: str) -> Response:
        """The kill switch: the deployment at ``site`` defers every case to a human."""
        incident = self.get_object()
        data = validate_input(s.FreezeSerializer, request.data)
        deployment = self._deployment_at(incident, data["site"])
        services.freeze(actor=request.user, incident=incident, deployment=deployment,
                        reason=data["reason"])  # fmt: skip
        return self._detail(incident)

    @extend_schema(request=s.UnfreezeSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], required_perms=FREEZE)
    def unfreeze(self, request: Request, number: str) -> Response:
        """Only a medical director, re-entering their password, puts the model back to acting.
        A wrong password is a 400 and changes nothing."""
        if not request.user.groups.filter(name="medical_director").exists():
            raise PermissionDenied("Only a medical director may unfreeze a deployment.")
        incident = self.get_object()
        data = validate_input(s.UnfreezeSerializer, request.data)
        deployment = self._deployment_at(incident, data["site"])
        services.unfreeze(actor=request.user, incident=incident, deployment=deployment,
                          reason=data["reason"], password=data["password"])  # fmt: skip
        return self._detail(incident)

    @extend_schema(
        parameters=[OpenApiParameter("model", OpenApiTypes.STR, description="Model slug.")],
        responses=s.IncidentStatsSerializer(many=True),
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def stats(self, request: Request) -> Response:
        """Per model and severity: incidents, and the median and worst hours to detect,
        acknowledge, mitigate and resolve. Drills do not count."""
        model = request.query_params.get("model", "").strip() or None
        return Response(s.IncidentStatsSerializer(incident_stats(model_slug=model), many=True).data)


class DrillViewSet(viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Tabletop drills: an injected alert that runs the real incident path; its notifications
    reach no one and it never freezes a deployment."""

    serializer_class = s.DrillSerializer
    required_perms = {"POST": ["incidents.view_incident", "incidents.close_incident"]}

    @extend_schema(request=s.DrillSerializer, responses={201: s.IncidentDetailSerializer})
    def create(self, request: Request) -> Response:
        data = validate_input(s.DrillSerializer, request.data)
        version = ModelVersion.objects.filter(model=data["model"], version=data["version"]).first()
        if version is None:
            raise_field("version", f"{data['model'].slug} has no version {data['version']!r}.")
        try:
            incident = start_drill(
                actor=request.user, version=version, slice_key=data["slice"],
                metric=data["metric"], band=data["band"], scenario=data["scenario"],
            )  # fmt: skip
        except DjangoValidationError as exc:
            errors = exc.message_dict
            if "slice_key" in errors:
                errors["slice"] = errors.pop("slice_key")
            raise DjangoValidationError(errors) from exc
        found = selectors.incidents_visible_to(user=request.user).get(pk=incident.pk)
        context = {"request": request, "view": self}
        body = s.IncidentDetailSerializer(found, context=context).data
        return Response(body, status=status.HTTP_201_CREATED)


class RunbookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Runbooks per alert type (a layer, or one of its metrics): steps with the evidence each
    needs. ``PUT`` replaces the title and steps with a ``reason``; every version stays in the
    ``history`` of the detail."""

    serializer_class = s.RunbookSerializer
    pagination_class = Pagination
    required_perms = {
        "read": ["incidents.view_runbook"],
        "PUT": ["incidents.view_runbook", "incidents.change_runbook"],
    }

    def get_queryset(self) -> QuerySet[Runbook]:
        return selectors.runbooks_visible_to(user=self.request.user)

    def get_serializer_class(self) -> Any:
        return s.RunbookSerializer if self.action == "list" else s.RunbookDetailSerializer

    @extend_schema(request=s.RunbookInputSerializer, responses=s.RunbookDetailSerializer)
    def update(self, request: Request, pk: str) -> Response:
        runbook = self.get_object()
        data = validate_input(s.RunbookInputSerializer, request.data)
        saved = runbook_services.runbook_save(actor=request.user, runbook=runbook, **data)
        found = self.get_queryset().get(pk=saved.pk)
        return Response(s.RunbookDetailSerializer(found).data)


def raise_field(field: str, message: str) -> None:
    from rest_framework.exceptions import ValidationError

    raise ValidationError({field: [message]})
